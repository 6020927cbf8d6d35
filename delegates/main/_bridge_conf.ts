/**
 * The `bridge` config (every field of the reference plugin's NetConf), shared by the bridge
 * and vxlan delegates: parsing with defaults, and the combinations ADD refuses.
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import type { CniDns } from "../../conf/types.ts";
import {
  confBool,
  confDns,
  confInt,
  confLinkName,
  confString,
  ipamType,
} from "../_shared/conf_read.ts";

type Obj = Record<string, unknown>;

/** The parsed `bridge` config (every field of the reference plugin). */
export interface BridgeConf {
  /** The network `name` (for masquerade chain names). */
  name: string;
  bridge: string;
  mtu?: number;
  isGateway: boolean;
  isDefaultGateway: boolean;
  forceAddress: boolean;
  ipMasq: boolean;
  hairpinMode: boolean;
  promiscMode: boolean;
  /** Access VLAN of the host veth (PVID, untagged); 0 for none. */
  vlan: number;
  /** Trunk VLAN ids of the host veth (tagged), sorted. */
  vlanTrunk: number[];
  /** Keep VLAN 1 on the port besides `vlan`/`vlanTrunk` (default true, as the reference). */
  preserveDefaultVlan: boolean;
  enabledad: boolean;
  macspoofchk: boolean;
  disableContainerInterface: boolean;
  portIsolation: boolean;
  /** `ipam.type`, absent for an L2-only attachment. */
  ipamType?: string;
  /** The conf's own `dns` when set (it overrides IPAM's, as the reference does). */
  dns?: CniDns;
  /** The whole conf object (for `runtimeConfig.mac` / `args.cni.mac`). */
  raw: Obj;
}

function badTrunk(msg: string): CniError {
  return new CniError(Code.InvalidConfig, `Invalid "vlanTrunk": ${msg}`);
}

/** The VLAN ids of one `vlanTrunk` entry ({id} or {minID, maxID}, or both). */
function trunkEntryIds(item: Obj): number[] {
  const ids: number[] = [];
  const min = confInt(item, "minID", 1, 4094);
  const max = confInt(item, "maxID", 1, 4094);
  if ((min === undefined) !== (max === undefined)) {
    throw badTrunk("minID and maxID must be set together");
  }
  if (min !== undefined && max !== undefined) {
    if (max < min) throw badTrunk(`minID ${min} is greater than maxID ${max}`);
    for (let id = min; id <= max; id++) ids.push(id);
  }
  const id = confInt(item, "id", 1, 4094);
  if (id !== undefined) ids.push(id);
  return ids;
}

/**
 * Parses `vlanTrunk` ([{id} | {minID, maxID}]) into a sorted list of VLAN ids, as the
 * reference's `collectVlanTrunk`.
 *
 * @throws {CniError} code 7 naming the bad entry
 */
export function parseVlanTrunk(v: unknown): number[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw badTrunk(`${JSON.stringify(v)} is not a list`);
  const ids = new Set((v as Obj[]).flatMap(trunkEntryIds));
  return [...ids].sort((a, b) => a - b);
}

/**
 * Validates and defaults a bridge config.
 *
 * @param dfltBridge the bridge name when `bridge` is not set (`cni0` for the bridge plugin)
 * @throws {CniError} code 7 naming the field and value
 */
export function parseBridgeConf(raw: Obj, dfltBridge = "cni0"): BridgeConf {
  const isDefaultGateway = confBool(raw, "isDefaultGateway");
  return {
    name: confString(raw, "name") ?? "",
    bridge: confLinkName(raw, "bridge") ?? dfltBridge,
    mtu: confInt(raw, "mtu", 0, 65535) || undefined,
    // isDefaultGateway implies isGateway (reference cmdAdd).
    isGateway: confBool(raw, "isGateway") || isDefaultGateway,
    isDefaultGateway,
    forceAddress: confBool(raw, "forceAddress"),
    ipMasq: confBool(raw, "ipMasq"),
    hairpinMode: confBool(raw, "hairpinMode"),
    promiscMode: confBool(raw, "promiscMode"),
    vlan: confInt(raw, "vlan", 0, 4094) ?? 0,
    vlanTrunk: parseVlanTrunk(raw.vlanTrunk),
    // The reference defaults it to true ("to maintain existing behavior"): the port keeps
    // VLAN 1 besides its own unless the conf says false.
    preserveDefaultVlan: confBool(raw, "preserveDefaultVlan", true),
    enabledad: confBool(raw, "enabledad"),
    macspoofchk: confBool(raw, "macspoofchk"),
    disableContainerInterface: confBool(raw, "disableContainerInterface"),
    portIsolation: confBool(raw, "portIsolation"),
    ipamType: ipamType(raw),
    dns: confDns(raw),
    raw,
  };
}

/**
 * Rejects combinations ADD cannot do (checked on ADD only, so DEL always works).
 *
 * @throws {CniError} code 7 for contradictory fields
 */
export function requireAddable(c: BridgeConf): void {
  const bad = (msg: string) => new CniError(Code.InvalidConfig, msg);
  if (c.hairpinMode && c.promiscMode) {
    throw bad(`Invalid "hairpinMode" with "promiscMode": they cannot be set at the same time`);
  }
  if (c.ipamType && c.disableContainerInterface) {
    throw bad(`Invalid "disableContainerInterface": it cannot be used with "ipam"`);
  }
  // A port is either an access port (untagged) or a trunk (tagged), as in the reference
  // (which refuses this on every verb; here DEL still works, as for the checks above).
  if (c.vlan && c.vlanTrunk.length) {
    throw bad(`Invalid "vlan" with "vlanTrunk": they cannot be set at the same time`);
  }
}
