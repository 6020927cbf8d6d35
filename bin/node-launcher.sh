#!/bin/sh
# podplex @VERSION@: the entry of the node artifact (`deno task artifact` writes it as
# dist/node/podplex; `podplex install` copies it into a host's CNI bin dir). kubelet's runtime,
# podman or a user execs it, also through a symlink named after a built-in delegate type
# (/opt/cni/bin/bridge -> podplex). It runs the bundle in podplex.d/@VERSION@/ beside it with
# the Deno binary shipped there: no Deno, npm cache, checkout or libnl needed on the host, and
# never the network (--cached-only, no remote or npm modules). The version is in the path, so
# an install adds the new payload beside the old one and renames this file over the previous
# launcher: a call that already started keeps its own payload.
# Every CNI call starts here, so it forks nothing: parameter expansion, no dirname/basename.
self=$0
while [ -L "$self" ]; do
  link=$(readlink "$self")
  case $link in /*) self=$link ;; *) self=${self%/*}/$link ;; esac
done
case $self in */*) dir=${self%/*} ;; *) dir=. ;; esac
lib=$dir/podplex.d/@VERSION@

# The name the delegate was called by; bin/podplex of a checkout hands its own over once.
PODPLEX_ARGV0=${PODPLEX_ENTRY_NAME:-${0##*/}}
export PODPLEX_ARGV0
unset PODPLEX_ENTRY_NAME

# `podplex --ready` (the thick DaemonSet's probe): is a daemon of this build ready?
if [ "${1:-}" = "--ready" ] && [ $# -eq 1 ]; then
  exec "$lib/podplex-client" --ready
fi

# The resident daemon's memory: two malloc arenas instead of one per thread, V8's GC on the
# main thread only, and a young generation of 2 MiB semi-spaces: after a burst of 20 pods
# V8 had grown its semi-spaces and kept them, so 1,000 ADD/DEL cycles later the daemon held
# 93 MiB of anonymous memory; with the cap it holds 46-50 MiB throughout, for the same CPU
# per call. --expose-gc lets the daemon free at once the buffers of requests a client began
# and abandoned (cli/serve/frames.ts): an idle daemon would otherwise keep them until its
# next allocation. A per-call run exits before any of it matters.
v8=
if [ "${1:-}" = serve ]; then
  MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2}
  export MALLOC_ARENA_MAX
  v8=--v8-flags=--single-threaded-gc,--max-semi-space-size=2,--expose-gc
fi

nargs=$#
set -- "$lib/deno" run $v8 --allow-all --no-config --no-prompt --cached-only --no-remote --no-npm \
  --quiet "$lib/main.js" "$@"

# A resident `podplex serve` takes CNI calls when its socket exists: a warm process answers in
# a few ms instead of a Deno start (in thick mode the daemon runs in the DaemonSet's pod and
# this is the host's shim). The client runs the command above itself whenever the daemon
# cannot have started the call (none, not ready, another build, another netns, paths it does
# not share). Subcommands never go through it. The @PP_*@ names come from the protocol's
# definition (cli/serve/protocol.ts).
if [ -n "${CNI_COMMAND:-}" ] && [ "$nargs" -eq 0 ] && [ -x "$lib/podplex-client" ] &&
  [ -S "${@PP_SOCKET_ENV@:-@PP_DEFAULT_SOCKET@}" ]; then
  exec "$lib/podplex-client" -- "$@"
fi
exec "$@"
