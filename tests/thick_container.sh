#!/bin/sh
# A container as the DaemonSet makes it, for tests and the bench: run under
# `unshare -m --propagation slave` (its own mount namespace, the host's netns and pid
# namespace: hostNetwork, hostPID). It mounts a fresh root on $ROOT: the host's /usr
# read-only (the image's userland), /proc, /dev and /sys, a private /tmp, the artifact
# copied to /podplex (the image's), each of $HOST_PATHS (colon-separated) bind-mounted from
# the host at the same path (the hostPath volumes), /run/netns from the host with
# host-to-container propagation (netns made after the start appear), /var/run -> /run;
# then chroots into it and execs "$@" (e.g. /podplex/podplex serve ...).
#
#   ROOT=dir ARTIFACT=dist/node HOST_PATHS=/a:/b unshare -m --propagation slave \
#     sh tests/thick_container.sh /podplex/podplex serve --socket ...
set -eu
: "${ROOT:?}" "${ARTIFACT:?}" "${HOST_PATHS:=}"
mount -t tmpfs -o mode=0755 podplex-container "$ROOT"
cd "$ROOT"
mkdir -p usr proc dev sys tmp etc run/netns podplex var
mount --rbind /usr usr
mount -o remount,bind,ro usr
ln -s usr/bin bin
ln -s usr/sbin sbin
ln -s usr/lib lib
ln -s usr/lib64 lib64
ln -s ../run var/run
mount --rbind /proc proc
mount --rbind /dev dev
mount --rbind /sys sys
mount -t tmpfs -o mode=1777 tmpfs tmp
cp -a "$ARTIFACT/." podplex/
IFS=:
for p in $HOST_PATHS; do
  [ -n "$p" ] || continue
  mkdir -p "$ROOT$p"
  mount --bind "$p" "$ROOT$p"
done
unset IFS
# The host's /run/netns is a shared mount (ip netns makes it so): this copy is its slave.
mount --rbind /run/netns run/netns
exec chroot "$ROOT" "$@"
