/**
 * The `dhcp` IPAM config, read as the reference plugin reads it (plugins/ipam/dhcp main.go,
 * lease.go, options.go): `ipam.daemonSocketPath`, `ipam.provide` [{option, value, fromArg}],
 * `ipam.request` [{option, skipDefault}], `ipam.priority` (route metric).
 *
 * @module
 */
import { CniError, Code } from "../../../conf/errors.ts";
import {
  confVersion,
  field,
  ipamSection,
  isObject,
  type Json,
  optArray,
  optString,
} from "../_conf.ts";
import { OPT } from "./message.ts";

/**
 * Where podplex's lease keeper (`podplex serve`) listens unless `daemonSocketPath` says, or
 * the call's PODPLEX_SOCKET points at a daemon elsewhere ({@linkcode keeperSockets}).
 */
export const DEFAULT_DAEMON_SOCKET = "/run/podplex/dhcp.sock";

/** The keeper's socket's name beside the daemon's socket (serve's `--dhcp-socket` default). */
export const KEEPER_SOCKET_NAME = "dhcp.sock";

/**
 * The sockets to ask, in order: `daemonSocketPath` alone when the conf gives it; else the
 * keeper beside the daemon the caller was pointed at (PODPLEX_SOCKET), then the default.
 */
export function keeperSockets(conf: DhcpConf, daemonSocket?: string): string[] {
  if (conf.socketPath !== undefined) return [conf.socketPath];
  const beside = daemonSocket
    ? `${daemonSocket.slice(0, daemonSocket.lastIndexOf("/")) || ""}/${KEEPER_SOCKET_NAME}`
    : undefined;
  return beside && beside !== DEFAULT_DAEMON_SOCKET
    ? [beside, DEFAULT_DAEMON_SOCKET]
    : [DEFAULT_DAEMON_SOCKET];
}

/** An option to send: a fixed value, or the value of a CNI_ARGS key. */
export interface ProvideOption {
  code: number;
  value?: string;
  fromArg?: string;
}

/** The parsed `dhcp` IPAM config. */
export interface DhcpConf {
  name: string;
  cniVersion: string;
  /** `ipam.daemonSocketPath`: the lease keeper's socket (else {@linkcode keeperSockets}). */
  socketPath?: string;
  provide: ProvideOption[];
  /** Codes for the parameter request list, defaults included unless skipped. */
  request: number[];
  /** The metric of every route of the result (0: none). */
  priority: number;
}

/** The option names the reference accepts (besides numbers 0-255). */
const OPTION_NAMES: Record<string, number> = {
  "dhcp-client-identifier": OPT.CLIENT_ID,
  "subnet-mask": OPT.SUBNET_MASK,
  "routers": OPT.ROUTER,
  "host-name": OPT.HOST_NAME,
  "user-class": OPT.USER_CLASS,
  "vendor-class-identifier": OPT.VENDOR_CLASS,
};

/** What the reference asks for unless a `request` entry has `skipDefault`. */
const DEFAULT_REQUEST = [OPT.ROUTER, OPT.SUBNET_MASK];

/** An option name or number, as the reference's parseOptionName. */
export function parseOptionName(text: string, path: string): number {
  if (Object.hasOwn(OPTION_NAMES, text)) return OPTION_NAMES[text];
  if (/^\d{1,3}$/.test(text) && Number(text) <= 255) return Number(text);
  throw new CniError(
    Code.InvalidConfig,
    `Invalid "${path}": "${text}" is neither a number 0-255 nor one of ` +
      Object.keys(OPTION_NAMES).join(", "),
  );
}

function entries(ipam: Json, key: string): Json[] {
  const list = optArray(ipam, key, `ipam.${key}`) ?? [];
  return list.map((e, i) => {
    if (!isObject(e)) {
      throw new CniError(Code.InvalidConfig, `Invalid "ipam.${key}[${i}]": ${JSON.stringify(e)}`);
    }
    return e;
  });
}

function parseProvide(ipam: Json): ProvideOption[] {
  return entries(ipam, "provide").map((e, i) => {
    const path = `ipam.provide[${i}]`;
    const out: ProvideOption = {
      code: parseOptionName(optString(e, "option", `${path}.option`) ?? "", `${path}.option`),
    };
    const value = optString(e, "value", `${path}.value`);
    if (value) {
      if (value.length > 255) {
        throw new CniError(Code.InvalidConfig, `Invalid "${path}.value": longer than 255 bytes`);
      }
      out.value = value;
    }
    const fromArg = optString(e, "fromArg", `${path}.fromArg`);
    if (fromArg) out.fromArg = fromArg;
    return out;
  });
}

function parseRequest(ipam: Json): number[] {
  const codes: number[] = [];
  let skipDefault = false;
  entries(ipam, "request").forEach((e, i) => {
    const path = `ipam.request[${i}]`;
    const skip = field(e, "skipDefault");
    if (skip !== undefined && skip !== null && typeof skip !== "boolean") {
      throw new CniError(
        Code.InvalidConfig,
        `Invalid "${path}.skipDefault": ${JSON.stringify(skip)} is not a boolean`,
      );
    }
    if (skip) skipDefault = true;
    const name = optString(e, "option", `${path}.option`);
    if (!name) return;
    const code = parseOptionName(name, `${path}.option`);
    if (!codes.includes(code)) codes.push(code);
  });
  if (!skipDefault) { for (const c of DEFAULT_REQUEST) if (!codes.includes(c)) codes.push(c); }
  return codes;
}

/**
 * Parses the whole network conf for `dhcp`.
 *
 * @throws {CniError} code 7 naming the field at fault
 */
export function parseDhcpConf(raw: Json): DhcpConf {
  const ipam = ipamSection(raw);
  const priority = field(ipam, "priority");
  if (priority !== undefined && priority !== null && !Number.isInteger(priority)) {
    throw new CniError(
      Code.InvalidConfig,
      `Invalid "ipam.priority": ${JSON.stringify(priority)} is not an integer`,
    );
  }
  return {
    name: optString(raw, "name", "name") ?? "",
    cniVersion: confVersion(raw),
    socketPath: optString(ipam, "daemonSocketPath", "ipam.daemonSocketPath") || undefined,
    provide: parseProvide(ipam),
    request: parseRequest(ipam),
    priority: (priority as number | undefined) ?? 0,
  };
}

const enc = new TextEncoder();

/**
 * The options every request of this attachment carries: the `provide` values (a CNI_ARGS
 * value of `fromArg` after the fixed one, so it wins) and the parameter request list.
 *
 * @throws {CniError} code 7 when a CNI_ARGS value is longer than 255 bytes
 */
export function requestOptions(
  conf: DhcpConf,
  cniArgs: Map<string, string>,
): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  for (const [i, p] of conf.provide.entries()) {
    if (p.value) out.set(p.code, enc.encode(p.value));
    const arg = p.fromArg !== undefined ? cniArgs.get(p.fromArg) : undefined;
    if (arg === undefined) continue;
    if (arg.length > 255) {
      throw new CniError(
        Code.InvalidConfig,
        `Invalid "ipam.provide[${i}]": CNI_ARGS "${p.fromArg}" is longer than 255 bytes`,
      );
    }
    out.set(p.code, enc.encode(arg));
  }
  if (conf.request.length) out.set(OPT.PARAM_REQUEST_LIST, Uint8Array.from(conf.request));
  return out;
}

/**
 * The client identifier, as the reference's generateClientID: `containerID/netName/ifName`
 * cut to 254 bytes, sent as option 61 with type byte 0.
 */
export function clientId(containerId: string, netName: string, ifname: string): string {
  return `${containerId}/${netName}/${ifname}`.slice(0, 254);
}
