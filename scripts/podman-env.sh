# Sourced by the container scripts: a project-local podman config (no edits to /etc).
# Every line is needed on CI's machines (Debian 12, no systemd, hybrid cgroups):
# runc (crun fails on hybrid cgroups), cgroupfs and file events (no systemd/journald),
# ulimits within the hard limit (podman's default nofile=1048576 fails setrlimit).
_conf_dir="${CLAWGATE_STATE:-$(pwd)/.clawgate}/podman"
mkdir -p "$_conf_dir"
_nofile=$(ulimit -Hn)
[ "$_nofile" = unlimited ] && _nofile=1048576
cat > "$_conf_dir/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$_nofile:$_nofile", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF="$_conf_dir/containers.conf"
export CLAWGATE_CACHE="${CLAWGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clawgate}"
unset _conf_dir _nofile
