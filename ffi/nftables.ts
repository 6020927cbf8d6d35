/**
 * libnftables (the `libnftables1` package) through FFI: one nft script applied in a netns as
 * one transaction, in-process. `nft -f -` does the same in a child process; bench/ measures
 * both (see the README's network policy section for the figures).
 *
 * @module
 */
import { cstr, lazyGroup } from "./_lib.ts";
import { type NetNs, withNetns } from "./netns.ts";

const nft = lazyGroup(
  "nft",
  {
    // struct nft_ctx *nft_ctx_new(uint32_t flags);
    nft_ctx_new: { parameters: ["u32"], result: "pointer" },
    // void nft_ctx_free(struct nft_ctx *ctx);
    nft_ctx_free: { parameters: ["pointer"], result: "void" },
    // int nft_ctx_buffer_output(struct nft_ctx *ctx);
    nft_ctx_buffer_output: { parameters: ["pointer"], result: "i32" },
    // int nft_ctx_buffer_error(struct nft_ctx *ctx);
    nft_ctx_buffer_error: { parameters: ["pointer"], result: "i32" },
    // const char *nft_ctx_get_error_buffer(struct nft_ctx *ctx);
    nft_ctx_get_error_buffer: { parameters: ["pointer"], result: "pointer" },
    // const char *nft_ctx_get_output_buffer(struct nft_ctx *ctx);
    nft_ctx_get_output_buffer: { parameters: ["pointer"], result: "pointer" },
    // int nft_run_cmd_from_buffer(struct nft_ctx *nft, const char *buf);
    nft_run_cmd_from_buffer: { parameters: ["pointer", "buffer"], result: "i32" },
  } as const,
);

/** NFT_CTX_DEFAULT. */
const CTX_DEFAULT = 0;

function text(p: Deno.PointerValue): string {
  return p ? Deno.UnsafePointerView.getCString(p) : "";
}

/**
 * Runs an nft script in the current netns: the context (and its netlink socket) is made and
 * freed inside, so a caller inside a netns window gets that netns.
 *
 * @returns what nft printed (list commands)
 * @throws {Error} with nft's own error text when the script fails (nothing applied)
 */
export function runNft(script: string): string {
  const s = nft();
  const ctx = s.nft_ctx_new(CTX_DEFAULT);
  if (!ctx) throw new Error("Cannot create an nftables context");
  try {
    s.nft_ctx_buffer_output(ctx);
    s.nft_ctx_buffer_error(ctx);
    const rc = s.nft_run_cmd_from_buffer(ctx, cstr(script));
    if (rc !== 0) {
      const err = text(s.nft_ctx_get_error_buffer(ctx)).trim();
      throw new Error(`Cannot apply the nftables script: ${err || `rc ${rc}`}`);
    }
    return text(s.nft_ctx_get_output_buffer(ctx));
  } finally {
    s.nft_ctx_free(ctx);
  }
}

/**
 * Runs an nft script inside the netns `ns` (an open NetNs or a path): one transaction.
 *
 * @example
 * ```ts
 * runNftIn("/run/netns/pod1", "table inet t\ndelete table inet t\n");
 * ```
 */
export function runNftIn(ns: NetNs | string, script: string): string {
  return withNetns(ns, () => runNft(script));
}
