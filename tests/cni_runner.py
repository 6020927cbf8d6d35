#!/usr/bin/env python3
"""A libcni-style CNI runtime for tests that must run without Deno or node.

It does what containerd's CNI layer (libcni) does with a conf dir, and nothing of podplex:
picks the first .conf/.conflist/.json in the conf dir by name, injects the list's `name` and
`cniVersion` into each plugin, gives each plugin the runtimeConfig its `capabilities` ask for
out of the capability args, chains prevResult through ADD, caches the final result as
`<cache>/results/<network>-<containerID>-<ifname>`, runs CHECK in order and DEL in reverse
with the cached result as prevResult (CNI >= 0.4.0), and removes the cache after DEL. Plugins
are found in CNI_PATH and exec'd with the CNI_* environment and the conf on stdin.

usage: cni_runner.py ADD|CHECK|DEL --conf-dir D --cni-path P1:P2 --cache-dir C
         --netns PATH --container-id ID [--ifname eth0] [--args K=V;K=V] [--cap NAME=JSON]...
         [--env NAME=VALUE]...   (more variables for the plugins, e.g. PODPLEX_SOCKET)
Prints the result (ADD) or nothing; a plugin's error JSON and exit 1 on failure.
"""
import argparse
import json
import os
import subprocess
import sys


def version_tuple(v):
    return tuple(int(x) for x in v.split("."))


def load_conflist(conf_dir):
    names = sorted(n for n in os.listdir(conf_dir) if n.endswith((".conf", ".conflist", ".json")))
    if not names:
        sys.exit(f"cni_runner: no network conf in {conf_dir}")
    with open(os.path.join(conf_dir, names[0]), "rb") as f:
        conf = json.loads(f.read())
    if "plugins" not in conf:  # a single .conf is a list of one
        conf = {"cniVersion": conf.get("cniVersion", "0.1.0"), "name": conf["name"], "plugins": [conf]}
    return conf


def plugin_conf(lst, plugin, caps, prev):
    conf = dict(plugin)
    conf["name"] = lst["name"]
    conf["cniVersion"] = lst["cniVersion"]
    wanted = {k: caps[k] for k, on in (plugin.get("capabilities") or {}).items() if on and k in caps}
    if wanted:
        conf["runtimeConfig"] = wanted
    if prev is not None:
        conf["prevResult"] = prev
    return conf


def find_plugin(name, cni_path):
    for d in cni_path.split(":"):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    sys.exit(f'cni_runner: plugin "{name}" not found in {cni_path}')


def exec_plugin(cmd, plugin, conf, a):
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_COMMAND": cmd,
        "CNI_CONTAINERID": a.container_id,
        "CNI_NETNS": a.netns,
        "CNI_IFNAME": a.ifname,
        "CNI_ARGS": a.args,
        "CNI_PATH": a.cni_path,
    }
    env.update(kv.split("=", 1) for kv in a.env)
    out = subprocess.run([find_plugin(plugin["type"], a.cni_path)], input=json.dumps(conf).encode(),
                         env=env, stdout=subprocess.PIPE, cwd="/")
    if out.returncode != 0:
        sys.stdout.write(out.stdout.decode())
        sys.exit(1)
    return json.loads(out.stdout) if out.stdout.strip() else None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["ADD", "CHECK", "DEL"])
    for flag in ["--conf-dir", "--cni-path", "--cache-dir", "--netns", "--container-id"]:
        p.add_argument(flag, required=True)
    p.add_argument("--ifname", default="eth0")
    p.add_argument("--args", default="")
    p.add_argument("--cap", action="append", default=[])
    p.add_argument("--env", action="append", default=[])
    a = p.parse_args()
    caps = {k: json.loads(v) for k, v in (c.split("=", 1) for c in a.cap)}
    lst = load_conflist(a.conf_dir)
    cache = os.path.join(a.cache_dir, "results", f"{lst['name']}-{a.container_id}-{a.ifname}")
    if a.command == "ADD":
        prev = None
        for plugin in lst["plugins"]:
            prev = exec_plugin("ADD", plugin, plugin_conf(lst, plugin, caps, prev), a)
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        with open(cache, "w") as f:
            json.dump({"kind": "cniCacheV1", "containerId": a.container_id, "ifName": a.ifname,
                       "networkName": lst["name"], "cniArgs": a.args, "capabilityArgs": caps,
                       "result": prev}, f)
        os.chmod(cache, 0o600)
        print(json.dumps(prev))
        return
    cached = None
    if os.path.exists(cache):
        with open(cache) as f:
            cached = json.load(f)["result"]
    with_prev = version_tuple(lst["cniVersion"]) >= (0, 4, 0)
    plugins = lst["plugins"] if a.command == "CHECK" else list(reversed(lst["plugins"]))
    if a.command == "CHECK" and cached is None:
        sys.exit("cni_runner: no cached ADD result to CHECK")
    for plugin in plugins:
        exec_plugin(a.command, plugin, plugin_conf(lst, plugin, caps, cached if with_prev else None), a)
    if a.command == "DEL" and os.path.exists(cache):
        os.remove(cache)


if __name__ == "__main__":
    main()
