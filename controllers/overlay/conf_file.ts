/**
 * Reading the cluster network's conf from a file (`podplex serve --cluster-network FILE`,
 * `podplex net`): a conf of type `podplex-cluster` (or none), or a conflist holding one.
 *
 * @module
 */
import { CniError, Code } from "../../conf/errors.ts";
import { isObject } from "../../conf/json.ts";
import { type ClusterNetConf, parseClusterNetConf } from "../../delegates/main/overlay/conf.ts";

/** The type of podplex's cluster network. */
export const CLUSTER_TYPE = "podplex-cluster";

/**
 * Reads a cluster network conf file: a conf (type `podplex-cluster` or none) or a conflist
 * holding one.
 *
 * @throws {CniError} code 7 naming the file and the problem
 */
export async function loadClusterNetConf(path: string): Promise<ClusterNetConf> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new CniError(
      Code.InvalidConfig,
      `Cannot read the cluster network conf "${path}": ${(err as Error).message}`,
    );
  }
  return clusterNetConfOf(text, `"${path}"`);
}

/**
 * The cluster network conf in a conf or conflist text (`where` names it in messages).
 *
 * @throws {CniError} code 7 when it is not JSON or holds no `podplex-cluster` conf
 */
export function clusterNetConfOf(text: string, where: string): ClusterNetConf {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (err) {
    throw new CniError(Code.InvalidConfig, `${where} is not JSON: ${(err as Error).message}`);
  }
  if (!isObject(j)) throw new CniError(Code.InvalidConfig, `${where} is not a JSON object`);
  let conf = j;
  if (Array.isArray(j.plugins)) {
    const p = j.plugins.find((x) => isObject(x) && x.type === CLUSTER_TYPE);
    if (!isObject(p)) {
      throw new CniError(Code.InvalidConfig, `${where} has no plugin of type "${CLUSTER_TYPE}"`);
    }
    conf = { ...p, name: j.name, cniVersion: j.cniVersion };
  } else if (j.type !== undefined && j.type !== CLUSTER_TYPE) {
    throw new CniError(
      Code.InvalidConfig,
      `Invalid "type" in ${where}: "${j.type}" is not "${CLUSTER_TYPE}"`,
    );
  }
  return parseClusterNetConf(conf);
}
