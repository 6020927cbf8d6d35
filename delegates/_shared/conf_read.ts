/**
 * Reading the fields of a built-in link delegate's config (bridge, vxlan, macvlan, ipvlan):
 * typed getters that fail with code 7 naming the field and the value, the `ipam.type`, the
 * conf's own `dns`, and the MAC requested for the container interface.
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import { ifnameProblem } from "../../conf/ifname.ts";
import { parseMac } from "../../conf/mac.ts";
import type { CniDns } from "../../conf/types.ts";
import type { DelegateContext } from "../types.ts";

type Obj = Record<string, unknown>;

function badField(key: string, value: unknown, want: string): CniError {
  return new CniError(
    Code.InvalidConfig,
    `Invalid "${key}": ${JSON.stringify(value)} is not ${want}`,
  );
}

/** A boolean field (missing → `dflt`). @throws {CniError} code 7 when not a boolean */
export function confBool(raw: Obj, key: string, dflt = false): boolean {
  const v = raw[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "boolean") throw badField(key, v, "a boolean");
  return v;
}

/** An integer field within [min, max] (missing → undefined). @throws {CniError} code 7 */
export function confInt(raw: Obj, key: string, min: number, max: number): number | undefined {
  const v = raw[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v)) throw badField(key, v, "an integer");
  if (v < min || v > max) {
    throw new CniError(
      Code.InvalidConfig,
      `Invalid "${key}": ${v} is not between ${min} and ${max}`,
    );
  }
  return v;
}

/** A string field (missing or empty → undefined). @throws {CniError} code 7 */
export function confString(raw: Obj, key: string): string | undefined {
  const v = raw[key];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") throw badField(key, v, "a string");
  return v;
}

/**
 * A link-name field (a bridge, a master, an underlay, a vxlan device): a string the kernel
 * takes as a link name (missing or empty → undefined).
 *
 * @throws {CniError} code 7 naming the field, the value and the rule broken
 */
export function confLinkName(raw: Obj, key: string): string | undefined {
  const v = confString(raw, key);
  if (v === undefined) return undefined;
  const why = ifnameProblem(v);
  if (why) {
    throw new CniError(
      Code.InvalidConfig,
      `Invalid "${key}": ${JSON.stringify(v)} is not a link name (${why})`,
    );
  }
  return v;
}

/** The `ipam.type` of a conf, or undefined for an L2-only attachment. */
export function ipamType(raw: Obj): string | undefined {
  const ipam = raw.ipam;
  if (ipam === undefined || ipam === null) return undefined;
  if (typeof ipam !== "object" || Array.isArray(ipam)) throw badField("ipam", ipam, "an object");
  return confString(ipam as Obj, "type");
}

/** The conf's `dns` when it sets anything (the reference's `dnsConfSet`). */
export function confDns(raw: Obj): CniDns | undefined {
  const d = raw.dns as CniDns | undefined;
  if (!d || typeof d !== "object") return undefined;
  const set = d.nameservers?.length || d.search?.length || d.options?.length || d.domain;
  return set ? d : undefined;
}

/**
 * The MAC requested for the container interface: `runtimeConfig.mac` over `args.cni.mac` over
 * CNI_ARGS `MAC=` over the conf's own `field` (macvlan's `mac`), in any form Go's
 * `net.ParseMAC` reads (colon, hyphen, dotted), normalised to lower-case colon form.
 *
 * @throws {CniError} code 7 when the value is not a MAC address, or is one of 8 or 20 octets
 *   (an Ethernet link takes 6)
 */
export function requestedMac(raw: Obj, ctx: DelegateContext, field?: string): string | undefined {
  const rc = (raw.runtimeConfig ?? {}) as Obj;
  const cni = ((raw.args ?? {}) as Obj).cni as Obj | undefined;
  const mac =
    (rc.mac || cni?.mac || ctx.cniArgs.get("MAC") || (field ? raw[field] : undefined)) as unknown;
  if (mac === undefined || mac === "") return undefined;
  const hw = parseMac(mac);
  if (!hw) throw badField(field ?? "mac", mac, "a MAC address");
  if (hw.octets !== 6) {
    throw new CniError(
      Code.InvalidConfig,
      `Invalid "${field ?? "mac"}": ${JSON.stringify(mac)} is a ${hw.octets}-octet hardware ` +
        `address; an Ethernet link takes a 6-octet MAC`,
    );
  }
  return hw.text;
}
