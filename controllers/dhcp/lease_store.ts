/**
 * The lease keeper's records on disk: one JSON file per lease in a 0700 directory, written
 * atomically (temp file + rename, 0600), so a restarted daemon resumes every lease it held.
 *
 * @module
 */
import type { Lease } from "../../delegates/ipam/dhcp/client.ts";
import { decodeMessage, leaseOptions } from "../../delegates/ipam/dhcp/message.ts";
import { fromHex } from "../../delegates/ipam/dhcp/_hex.ts";
import type { LeaseRequest } from "../../delegates/ipam/dhcp/protocol.ts";
import { writeFileAtomic } from "../../conf/io.ts";

/** What the keeper must remember of one lease to renew and release it after a restart. */
export interface LeaseRecord extends LeaseRequest {
  /** The last ACK, hex. */
  ack: string;
  /** When that ACK came (ms since the epoch). */
  boundAt: number;
  serverId: string;
  address: string;
  /** The interface's MAC, hex with colons. */
  mac: string;
}

/** The lease a record holds. @throws when its ACK does not decode */
export function recordLease(r: LeaseRecord): Lease {
  const ack = fromHex(r.ack);
  return {
    address: r.address,
    serverId: r.serverId,
    ack,
    options: leaseOptions(decodeMessage(ack)),
    boundAt: r.boundAt,
  };
}

/** The leases of a keeper, one file each under `dir`. */
export class LeaseStore {
  /** @param dir created (0700) on the first write */
  constructor(readonly dir: string) {}

  #file(clientId: string): string {
    return `${this.dir}/${encodeURIComponent(clientId)}.json`;
  }

  /**
   * Every readable record; an unreadable one is reported through `onBad` and left alone.
   */
  async list(onBad: (file: string, err: unknown) => void): Promise<LeaseRecord[]> {
    const out: LeaseRecord[] = [];
    let names: string[];
    try {
      names = [];
      for await (const e of Deno.readDir(this.dir)) {
        if (e.isFile && e.name.endsWith(".json")) names.push(e.name);
      }
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return [];
      throw e;
    }
    for (const name of names.sort()) {
      try {
        const r = JSON.parse(await Deno.readTextFile(`${this.dir}/${name}`)) as LeaseRecord;
        recordLease(r);
        out.push(r);
      } catch (e) {
        onBad(`${this.dir}/${name}`, e);
      }
    }
    return out;
  }

  /** Writes (or replaces) a record atomically. */
  put(r: LeaseRecord): Promise<void> {
    return writeFileAtomic(this.#file(r.clientId), JSON.stringify(r) + "\n", { dirMode: 0o700 });
  }

  /** Removes a record; a missing one is fine. */
  async remove(clientId: string): Promise<void> {
    await Deno.remove(this.#file(clientId)).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }
}
