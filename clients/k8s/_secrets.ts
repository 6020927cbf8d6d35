/**
 * Keeping credentials out of messages. CNI errors land in kubelet logs and pod events, and
 * podplex's log in files others read: every message about the Kubernetes API goes through a
 * {@linkcode Redactor} that knows the call's secrets (tokens, passwords, client keys, the
 * basic-auth of a server URL) and removes them, plus the shapes of secrets it was not told
 * about (a `Bearer`/`Basic` credential, a URL's userinfo, a PEM private key).
 *
 * @module
 */

const MASK = "[redacted]";
/** Shorter values are not hunted for in text: they would match ordinary words. */
const MIN_SECRET_LENGTH = 4;

const SHAPES: Array<[RegExp, string]> = [
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g, MASK],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi, `$1 ${MASK}`],
  [/(\b[a-z][a-z0-9+.-]*:\/\/)[^/@\s"']*@/gi, `$1${MASK}@`],
];

// Kubeconfig keys whose values are secrets, for a text that did not parse.
const SECRET_KEYS =
  /^\s*-?\s*"?(token|password|client-key-data|client-key|auth-provider|id-token|refresh-token|access-token)"?\s*:\s*(.*)$/i;

/** Removes known secrets and secret-shaped text from messages. */
export class Redactor {
  #secrets = new Set<string>();

  /** Remembers `value` (and its base64 and URL-encoded forms) as a secret. */
  add(value: string | undefined): void {
    const v = value?.trim();
    if (!v || v.length < MIN_SECRET_LENGTH) return;
    this.#secrets.add(v);
    this.#secrets.add(encodeURIComponent(v));
    try {
      this.#secrets.add(btoa(v));
    } catch { /* not Latin-1: no base64 form to look for */ }
  }

  /**
   * Remembers the values of secret keys (`token:`, `password:`, `client-key-data:`...) in a
   * kubeconfig's raw text, line by line: a text that does not parse still has its secrets
   * known, and a parser's message quoting a line is then cleaned.
   */
  addFromKubeconfigText(text: string): void {
    for (const line of text.split(/\r?\n/)) {
      const m = SECRET_KEYS.exec(line);
      if (!m) continue;
      const value = m[2].trim().replace(/^["']|["']$/g, "");
      this.add(value);
      // A value a parser cut elsewhere (`token: a: b`) is still hidden piece by piece.
      for (const part of value.split(/[\s:,{}[\]]+/)) this.add(part);
    }
  }

  /** `text` without any secret (known or by shape). */
  redact(text: string): string;
  redact(text: string | undefined): string | undefined;
  redact(text: string | undefined): string | undefined {
    if (text === undefined) return undefined;
    let out = text;
    // Longest first: a secret that contains another is masked whole.
    for (const s of [...this.#secrets].sort((a, b) => b.length - a.length)) {
      out = out.replaceAll(s, MASK);
    }
    for (const [re, to] of SHAPES) out = out.replace(re, to);
    return out;
  }
}

/**
 * A server URL without its userinfo, and the basic-auth credentials it held.
 *
 * @example
 * ```ts
 * splitUserinfo("https://admin:hunter22@10.0.0.1:6443/");
 * // { server: "https://10.0.0.1:6443/", username: "admin", password: "hunter22" }
 * ```
 */
export function splitUserinfo(
  server: string,
): { server: string; username?: string; password?: string } {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/@]*)@(.*)$/i.exec(server);
  if (!m) return { server };
  const [user, ...rest] = m[2].split(":");
  const decode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  const out: { server: string; username?: string; password?: string } = {
    server: `${m[1]}${m[3]}`,
    username: decode(user),
  };
  if (rest.length) out.password = decode(rest.join(":"));
  return out;
}
