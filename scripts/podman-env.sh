# Sourced (". scripts/podman-env.sh"): points podman at a private setup under
# $PODPLEX_PODMAN_DIR (default .tools/podman/) with the containers.conf settings this kind of
# machine needs (DESIGN.md): runc, cgroupfs, file events, ulimits runc may set, the CNI
# backend; its own storage (overlay where the kernel has it, else vfs) and no registries, so
# images are only ever the ones made here (scripts/base-images.sh) and never pulled;
# containers share the host's network unless told otherwise.
_pp_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
PODPLEX_PODMAN_DIR=${PODPLEX_PODMAN_DIR:-$_pp_root/.tools/podman}
mkdir -p "$PODPLEX_PODMAN_DIR/tmp"
if grep -qw overlay /proc/filesystems; then _pp_driver=overlay; else _pp_driver=vfs; fi
cat > "$PODPLEX_PODMAN_DIR/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
# The host's network, as the DaemonSet's pod has it: a container on podman's default CNI
# network would leave cni-podman0 and CNI-FORWARD rules on the host.
netns = "host"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$PODPLEX_PODMAN_DIR/events.log"
tmp_dir = "$PODPLEX_PODMAN_DIR/tmp"

[network]
network_backend = "cni"
CONF
cat > "$PODPLEX_PODMAN_DIR/storage.conf" <<CONF
[storage]
driver = "$_pp_driver"
graphroot = "$PODPLEX_PODMAN_DIR/storage"
runroot = "$PODPLEX_PODMAN_DIR/runroot"
CONF
: > "$PODPLEX_PODMAN_DIR/registries.conf"
export CONTAINERS_CONF=$PODPLEX_PODMAN_DIR/containers.conf
export CONTAINERS_STORAGE_CONF=$PODPLEX_PODMAN_DIR/storage.conf
export CONTAINERS_REGISTRIES_CONF=$PODPLEX_PODMAN_DIR/registries.conf
unset _pp_root _pp_driver
