#!/usr/bin/env bash
# demo.sh: lxcri end to end, against a private containerd on a temporary root.
#
#   make demo            (host set-up and build first, then this script)
#
# Steps: start containerd v2 (from `make setup`'s tools folder) with the lxcri shim first on
# its PATH and lxcri's configuration putting root filesystems on a ZFS pool the demo makes
# on a sparse file (kernel ZFS where loaded, else zfs-fuse); build the busybox image offline
# and import it; run a detached container on the default backend; exec into it, show its
# log and its stats; write a file, checkpoint it through containerd's checkpoint API (ctr),
# write another file, replace the container by its restore and show that the first file is
# there and the second is not; delete everything, destroy the pool, and check that no mount,
# dataset, LXC container, cgroup or process of the demo is left.
#
# With PVESIM=1 the same steps run on the proxmox-lxc backend against the PVE emulator
# (cmd/pvesim, built into the temporary folder and started on a free loopback port with a
# directory of its own): the shim's configuration is the emulator's lxcri.toml ([proxmox]),
# each container is a CT of the emulated node (a real LXC container in the emulator's LXC
# path), a checkpoint is a PVE snapshot of the CT and a restore a new CT cloned from it; no
# ZFS pool is made. The emulator is stopped at the end, which removes its CTs, and the
# cleanup checks that none, nor their cgroups, is left.
#
# Every step it shows must succeed: the demo exits non-zero at the first that does not.
#
# Environment:
#   DEMO_BACKEND     lxcri backend for the container (runtime options, as an operator's
#                    handler would set it), e.g. lxc or crun; default: lxcri's default (lxc)
#   PVESIM=1         the same demo on the proxmox-lxc backend against the PVE emulator
#                    (needs go on PATH to build cmd/pvesim; make demo puts it there)
#   LXCRI_TOOLS_DIR  folder with containerd and ctr (default ${XDG_CACHE_HOME:-~/.cache}/lxcri/tools/bin)
#   LXCRI_SHIM_DIR   folder with containerd-shim-lxcri-v2 and lxcri-start (default <repo>/bin)
#   DEMO_KEEP=1      keep the temporary folder (containerd and the pool are removed all the same)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RUNTIME=io.containerd.lxcri.v2
BACKEND=${DEMO_BACKEND:-}
NS=lxcri-demo
IMAGE=docker.io/library/busybox:lxcri
ID=demo
RID=demo-restored
CKPT_REF=localhost/lxcri-demo-checkpoint:1
POOL=lxcri-demo-$$
POOL_SIZE=256M

TOOLS=${LXCRI_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lxcri/tools/bin}
[ -x "$TOOLS/containerd" ] || { [ -x "$TOOLS/bin/containerd" ] && TOOLS=$TOOLS/bin; }
SHIM_DIR=$(cd "${LXCRI_SHIM_DIR:-$REPO/bin}" 2>/dev/null && pwd || echo "${LXCRI_SHIM_DIR:-$REPO/bin}")
# zfs, zpool and zfs-fuse live in sbin, which a user's PATH may lack
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

bold= norm=
if [ -t 1 ]; then # no escape codes in logs
  bold=$(tput bold 2>/dev/null || true)
  norm=$(tput sgr0 2>/dev/null || true)
fi
step() { echo; echo "${bold}==> $*${norm}"; }
die() { echo "${bold}demo: $*${norm}" >&2; exit 1; }
ms() { echo $(($(date +%s%N) / 1000000)); }

# PVESIM=1: the proxmox-lxc backend against the PVE emulator, which pvesim_start starts
# once the temporary folder exists; the steps below are the same for every backend.
PVESIM_ON=
if [ "${PVESIM:-}" = 1 ]; then
  [ -z "$BACKEND" ] || [ "$BACKEND" = proxmox-lxc ] || die "PVESIM=1 runs the demo on proxmox-lxc, not DEMO_BACKEND=$BACKEND"
  PVESIM_ON=1
  BACKEND=proxmox-lxc
  command -v go >/dev/null || die "PVESIM=1 builds the emulator (cmd/pvesim) with go, which is not on PATH"
  command -v lxc-ls >/dev/null || die "lxc-ls not found; run 'make setup' (installs lxc)"
fi
# it goes into a TOML file: a name, nothing else (lxcri itself says which names are valid)
[[ "$BACKEND" =~ ^[a-z0-9-]*$ ]] || die "DEMO_BACKEND=$BACKEND is not a backend name"

for b in containerd ctr; do
  [ -x "$TOOLS/$b" ] || die "$b not found in $TOOLS; run 'make setup' (or contrib/scripts/setup-host.sh)"
done
[ -x "$SHIM_DIR/containerd-shim-lxcri-v2" ] || die "containerd-shim-lxcri-v2 not found in $SHIM_DIR; run 'make build' (or set LXCRI_SHIM_DIR)"
[ "$(id -u)" -eq 0 ] || die "containerd, LXC and ZFS need root; run as root (sudo make demo)"
if [ -z "$PVESIM_ON" ]; then
  for b in zfs zpool; do command -v $b >/dev/null || die "$b not found; run 'make setup' (installs zfs-fuse)"; done
fi

# short path: unix socket paths are limited to 108 bytes
TMP=$(mktemp -d /tmp/lxcri-demo.XXXXXX)
SOCK=$TMP/containerd.sock
LOG=$TMP/containerd.log
STATE=$TMP/lxcri       # lxcri's state_dir: LXC containers live in $STATE/<namespace>/<id>
CTLOG=$TMP/$ID.log     # the container's stdout and stderr (ctr --log-uri file://)
CTD_PID=
ZFSD_PID=              # zfs-fuse daemon, when the demo started it
POOL_MADE=
ZFS_KIND=
PVEDIR=$TMP/pvesim     # the emulator's directory: storages, LXC path, ca.pem, token_secret, lxcri.toml
PVESIM_PID=
PVESIM_CGROUP=         # the cgroup below which the emulator's CTs run

ctr() { "$TOOLS/ctr" -a "$SOCK" -n "$NS" "$@" 2> >(grep -v 'cgroup v1 is deprecated' >&2); }
# show a ctr command, then run it
run() { echo "+ ctr $*"; ctr "$@"; }
# show a command run inside a container (inside CONTAINER EXEC-ID SCRIPT), then run it
inside() {
  local c=$1 eid=$2
  shift 2
  echo "+ ctr task exec --exec-id $eid $c sh -c '$*'"
  ctr task exec --exec-id "$eid" "$c" sh -c "$*"
}
task_status() { ctr task ls 2>/dev/null | awk -v id="$1" '$1 == id { print $3 }'; }
wait_status() {
  local i
  for i in $(seq 1 100); do
    [ "$(task_status "$1")" = "$2" ] && return 0
    sleep 0.1
  done
  die "task $1 is $(task_status "$1"), not $2, after 10s"
}

# stop_pid NAME PID TRIES PAUSE LIMIT: SIGTERM to PID, and SIGKILL when it is still there after
# TRIES checks PAUSE seconds apart (LIMIT says how long that is); fails when it was killed.
stop_pid() {
  local i
  kill -TERM "$2" 2>/dev/null
  for i in $(seq 1 "$3"); do kill -0 "$2" 2>/dev/null || return 0; sleep "$4"; done
  kill -0 "$2" 2>/dev/null || return 0
  echo "$1 did not stop in $5: SIGKILL"
  kill -KILL "$2" 2>/dev/null
  return 1
}

cleanup() {
  local rc=$?
  leaked() { [ "$rc" -ne 0 ] || rc=1; }
  set +e
  trap - EXIT
  trap '' INT TERM # a second ^C must not cut the cleanup short
  step "cleaning up"
  if [ -n "$CTD_PID" ] && kill -0 "$CTD_PID" 2>/dev/null; then
    for t in $(ctr task ls -q 2>/dev/null); do
      echo "+ ctr task kill -s SIGKILL $t; ctr task rm -f $t"
      ctr task kill -s SIGKILL "$t" >/dev/null 2>&1
    done
    for i in $(seq 1 20); do
      [ -z "$(ctr task ls 2>/dev/null | awk 'NR>1 && $3 != "STOPPED"')" ] && break
      sleep 0.25
    done
    for t in $(ctr task ls -q 2>/dev/null); do ctr task rm -f "$t" >/dev/null 2>&1; done
    for c in $(ctr container ls -q 2>/dev/null); do
      echo "+ ctr container rm $c"
      ctr container rm "$c" >/dev/null 2>&1
    done
    echo "+ stopping containerd (pid $CTD_PID)"
    stop_pid containerd "$CTD_PID" 100 0.1 10s
    wait "$CTD_PID" 2>/dev/null
  fi
  if [ -n "$PVESIM_PID" ]; then
    # the emulator stops and removes its CTs when it stops
    echo "+ stopping pvesim (pid $PVESIM_PID), which removes its CTs"
    stop_pid pvesim "$PVESIM_PID" 600 0.2 "2 minutes" || leaked
    wait "$PVESIM_PID" 2>/dev/null || { echo "pvesim failed to remove its CTs:"; tail -n 5 "$TMP/pvesim.log"; leaked; }
    ctleft=$(lxc-ls -P "$PVEDIR/lxc" 2>/dev/null)
    [ -n "$ctleft" ] && { echo "CTs (LXC containers) left behind in $PVEDIR/lxc: $ctleft"; leaked; }
    for p in /proc/[0-9]*; do
      if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q -- "$PVEDIR/"; then
        echo "+ kill -9 ${p#/proc/} (leftover process of a CT: $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null))"
        kill -KILL "${p#/proc/}" 2>/dev/null
        leaked
      fi
    done
    if [ -n "$PVESIM_CGROUP" ]; then
      cgleft=$(find /sys/fs/cgroup -mindepth 1 -maxdepth 2 -type d -name "$PVESIM_CGROUP" 2>/dev/null)
      [ -n "$cgleft" ] && { echo "cgroups of the emulator's CTs left behind:"; echo "$cgleft"; leaked; }
    fi
  fi
  # shims of this containerd that outlived it
  for p in /proc/[0-9]*; do
    if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q -- "-address $SOCK"; then
      echo "+ kill -9 ${p#/proc/} (leftover shim)"
      kill -KILL "${p#/proc/}" 2>/dev/null
      leaked
    fi
  done
  if [ "$ZFS_KIND" = zfs-fuse ] && [ -n "$POOL_MADE$ZFSD_PID" ]; then
    exec 9<"$(command -v zfs-fuse)"
    flock 9
  fi
  if [ -n "$POOL_MADE" ]; then
    left=$(zfs list -H -r -t all -o name "$POOL" 2>/dev/null | grep -vx -e "$POOL" -e "$POOL/lxcri")
    if [ -n "$left" ]; then
      echo "datasets left behind by the containers:"; echo "$left"
      leaked
    fi
    echo "+ zpool destroy -f $POOL"
    for i in $(seq 1 50); do # zfs-fuse: "pool is busy" right after the last destroy
      out=$(zpool destroy -f "$POOL" 2>&1) && break
      grep -q busy <<<"$out" || { echo "$out"; break; }
      sleep 0.1
    done
  fi
  if [ -n "$ZFSD_PID" ]; then
    if [ -z "$(zpool list -H -o name 2>/dev/null)" ]; then
      echo "+ stopping zfs-fuse (pid $ZFSD_PID)"
      kill -TERM "$ZFSD_PID" 2>/dev/null
      for i in $(seq 1 50); do kill -0 "$ZFSD_PID" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$ZFSD_PID" 2>/dev/null && kill -KILL "$ZFSD_PID" 2>/dev/null
      wait "$ZFSD_PID" 2>/dev/null
    else
      echo "zfs-fuse (pid $ZFSD_PID) keeps running: other pools use it"
    fi
  fi
  # anything still mounted under the temporary root, deepest first
  mounts=$(awk -v d="$TMP" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo)
  if [ -n "$mounts" ]; then
    echo "mounts left behind:"; echo "$mounts"
    leaked
    awk '{ print length($0) " " $0 }' <<<"$mounts" | sort -rn | cut -d' ' -f2- |
      while read -r m; do echo "+ umount -l $m"; umount -l "$m"; done
  fi
  if [ -n "$CTD_PID" ]; then
    # LXC containers (their state folders) and cgroups of the demo's namespace
    lxcleft=$(find "$STATE" -mindepth 2 -maxdepth 2 2>/dev/null)
    [ -n "$lxcleft" ] && { echo "LXC containers left behind:"; echo "$lxcleft"; leaked; }
    cgleft=$(find /sys/fs/cgroup -mindepth 2 -type d \( -path "*/$NS/*" -o -name "$NS--*" \) 2>/dev/null)
    [ -n "$cgleft" ] && { echo "cgroups left behind:"; echo "$cgleft"; leaked; }
    # the namespace's own (empty) cgroup and runc's state folder
    find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d -name "$NS" -exec rmdir {} + 2>/dev/null
    rmdir "/run/containerd/runc/$NS" 2>/dev/null
    if [ $rc -eq 0 ]; then
      if [ -n "$PVESIM_ON" ]; then
        echo "nothing left behind: no container, task, shim, CT, LXC container, cgroup or mount"
      else
        echo "nothing left behind: no container, task, shim, LXC container, cgroup, mount, dataset or pool"
      fi
    fi
  fi
  if [ "${DEMO_KEEP:-}" = 1 ]; then
    echo "kept $TMP (containerd log: $LOG)"
  else
    [ $rc -ne 0 ] && [ -f "$LOG" ] && { echo "--- last lines of the containerd log ---"; tail -n 40 "$LOG"; }
    rm -rf "$TMP"
  fi
  if [ $rc -eq 0 ]; then
    echo "${bold}demo finished${norm}"
    cat <<EOF

Where to go next:
  make install                 the shim, lxcri-start and lxcri in /usr/local/bin, contrib/config.toml
                               as /etc/lxcri/config.toml
  lxcri check                  is this host ready for each backend?
  docs/README.md               architecture, configuration reference, guides (ctr, nerdctl,
                               Kubernetes, ZFS checkpointing), troubleshooting
  contrib/                     containerd snippets, RuntimeClasses, host set-up notes
EOF
  else
    echo "${bold}demo failed (exit $rc)${norm}"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pvesim_start() {
  step "starting the PVE emulator (pvesim) on a free loopback port"
  echo "+ go build -o $TMP/bin/pvesim ./cmd/pvesim"
  (cd "$REPO" && go build -trimpath -o "$TMP/bin/pvesim" ./cmd/pvesim)
  # the CTs are unprivileged: their root (host uid 100000) must reach their root
  # filesystems in the emulator's directory
  chmod 711 "$TMP"
  mkdir -m 755 "$PVEDIR"
  echo "+ pvesim --listen 127.0.0.1:0 --dir $PVEDIR &"
  setsid "$TMP/bin/pvesim" --listen 127.0.0.1:0 --dir "$PVEDIR" >"$TMP/pvesim.log" 2>&1 </dev/null &
  PVESIM_PID=$!
  for i in $(seq 1 100); do
    grep -q 'serving' "$TMP/pvesim.log" 2>/dev/null && [ -f "$PVEDIR/lxcri.toml" ] && break
    kill -0 "$PVESIM_PID" 2>/dev/null || die "pvesim exited: $(cat "$TMP/pvesim.log")"
    sleep 0.1
  done
  [ -f "$PVEDIR/lxcri.toml" ] || die "pvesim did not come up within 10s: $(cat "$TMP/pvesim.log")"
  PVESIM_CGROUP=$(sed -n 's/.*cgroups under \([^ ;]*\).*/\1/p' "$TMP/pvesim.log")
  sed 's/^/    /' "$TMP/pvesim.log"
}

# the emulator's CTs, as LXC lists them in its LXC path
show_cts() {
  echo "+ lxc-ls --fancy -P $PVEDIR/lxc"
  lxc-ls --fancy -P "$PVEDIR/lxc"
}

if [ -n "$PVESIM_ON" ]; then
  mkdir -p "$TMP"/{root,state,opt,cni/net.d,nri,bin}
  pvesim_start
else
  step "making a ZFS pool on a sparse file"
  mkdir -p "$TMP"/{root,state,opt,cni/net.d,nri,zfs,bin}
  ZFS_PATH=
  if [ -e /dev/zfs ]; then
    ZFS_KIND="kernel ZFS"
  else
    ZFS_KIND="zfs-fuse"
    # go-zfs speaks OpenZFS's command line; lxcri's translation layer for zfs-fuse goes first
    # on the PATH of containerd (and so of the shims)
    cp "$REPO/integration/zfstest/compat/zfs" "$REPO/integration/zfstest/compat/zpool" "$TMP/bin/"
    ZFS_PATH=$TMP/bin
    command -v zfs-fuse >/dev/null || die "no kernel ZFS and no zfs-fuse; run 'make setup'"
    # lxcri's ZFS tests start, share and stop one zfs-fuse daemon under an flock on its
    # executable; the demo takes the same lock to start it and make its pool, and to stop it
    exec 9<"$(command -v zfs-fuse)"
    flock 9
    if ! zpool list >/dev/null 2>&1; then
      echo "+ zfs-fuse --no-daemon --no-kstat-mount &"
      # LXCRI_ZFSTEST_DAEMON: lxcri's ZFS tests may share this daemon, and the last user of it
      # stops it (this demo too, below, when no pool is left)
      # (not with fd 9: a daemon holding the lock would lock everyone out for its lifetime)
      LXCRI_ZFSTEST_DAEMON=1 setsid zfs-fuse --no-daemon --no-kstat-mount >"$TMP/zfs-fuse.log" 2>&1 </dev/null 9<&- &
      ZFSD_PID=$!
      for i in $(seq 1 100); do
        zpool list >/dev/null 2>&1 && break
        kill -0 "$ZFSD_PID" 2>/dev/null || die "zfs-fuse exited: $(cat "$TMP/zfs-fuse.log")"
        sleep 0.1
      done
      zpool list >/dev/null 2>&1 || die "zfs-fuse does not answer after 10s"
    fi
  fi
  echo "+ truncate -s $POOL_SIZE $TMP/pool.img"
  truncate -s "$POOL_SIZE" "$TMP/pool.img"
  echo "+ zpool create -o cachefile=none -m $TMP/zfs $POOL $TMP/pool.img   ($ZFS_KIND)"
  zpool create -o cachefile=none -m "$TMP/zfs" "$POOL" "$TMP/pool.img"
  POOL_MADE=1
  if [ "$ZFS_KIND" = zfs-fuse ]; then flock -u 9; exec 9<&-; fi
fi
{
  [ -z "$BACKEND" ] || printf 'backend = "%s"\n' "$BACKEND"
  printf 'state_dir = "%s"\n' "$STATE"
  if [ -n "$PVESIM_ON" ]; then
    # the emulator's own file: its [proxmox] section (url, node, token, CA, storages, LXC path)
    cat "$PVEDIR/lxcri.toml"
  else
    printf '\n[zfs]\ndataset = "%s"\n' "$POOL/lxcri"
  fi
} >"$TMP/lxcri.toml"
echo "lxcri configuration (LXCRI_CONFIG in containerd's environment, which the shims inherit):"
sed 's/^/    /' "$TMP/lxcri.toml"
if [ -n "$PVESIM_ON" ]; then
  # the operator's check of a [proxmox] section: node reachable, token, node, storages
  echo "+ lxcri check --backend proxmox"
  out=$(LXCRI_CONFIG=$TMP/lxcri.toml PATH="$SHIM_DIR:$PATH" "$SHIM_DIR/lxcri" check --backend proxmox 2>&1 || true)
  grep '^[a-z]* *proxmox:' <<<"$out" || true
  grep -q '^fail *proxmox:' <<<"$out" && die "lxcri check finds the emulated node unusable: $out"
  grep -q '^ok *proxmox: permissions' <<<"$out" || die "lxcri check did not check the emulated node: $out"
fi

step "starting a private containerd in $TMP"
"$TOOLS/containerd" config default |
  sed -e "s#/run/containerd/containerd.sock#$SOCK#g" \
    -e "s#/var/lib/containerd#$TMP/root#g" \
    -e "s#/run/containerd#$TMP/state#g" \
    -e "s#/opt/containerd#$TMP/opt#g" \
    -e "s#/opt/cni/bin#/usr/lib/cni#g" \
    -e "s#/etc/cni/net.d#$TMP/cni/net.d#g" \
    -e "s#/var/run/nri/nri.sock#$TMP/nri/nri.sock#g" \
    -e "s#restrict_oom_score_adj = false#restrict_oom_score_adj = true#" >"$TMP/config.toml"
echo "config:  $TMP/config.toml"
echo "log:     $LOG"
echo "PATH of containerd: ${ZFS_PATH:+$ZFS_PATH (zfs-fuse translation) : }$SHIM_DIR (lxcri shim) : $TOOLS : system PATH"
# own session: a ^C reaches this script (which cleans up in order), not containerd
PATH="${ZFS_PATH:+$ZFS_PATH:}$SHIM_DIR:$TOOLS:$PATH" LXCRI_CONFIG=$TMP/lxcri.toml \
  setsid "$TOOLS/containerd" --config "$TMP/config.toml" --log-level debug >"$LOG" 2>&1 </dev/null &
CTD_PID=$!
for i in $(seq 1 100); do
  [ -S "$SOCK" ] && "$TOOLS/ctr" -a "$SOCK" version >/dev/null 2>&1 && break
  kill -0 "$CTD_PID" 2>/dev/null || die "containerd exited; see $LOG"
  sleep 0.1
done
[ -S "$SOCK" ] || die "containerd did not come up within 10s"
echo "containerd $("$TOOLS/containerd" --version | awk '{print $3}') is up, pid $CTD_PID, socket $SOCK"

step "building the busybox image offline and importing it"
"$REPO/contrib/scripts/build-image.sh" "$TMP/busybox.oci.tar" "$IMAGE"
run images import "$TMP/busybox.oci.tar"

step "running container '$ID' detached (runtime $RUNTIME, backend ${BACKEND:-lxc, the default})"
run run -d --runtime "$RUNTIME" --log-uri "file://$CTLOG" "$IMAGE" "$ID" \
  sh -c 'trap "exit 0" TERM; echo "init started"; while :; do sleep 1; done'
wait_status "$ID" RUNNING
run task ls
if [ -n "$PVESIM_ON" ]; then
  echo "it is a CT of the emulated node, a real LXC container in the emulator's LXC path:"
  show_cts
else
  echo "its root filesystem is a ZFS dataset of its own:"
  echo "+ zfs list -r $POOL/lxcri"
  zfs list -r -o name,used,mountpoint "$POOL/lxcri"
fi

step "exec into '$ID'"
inside "$ID" hello 'echo "hello from $(hostname), PID 1 is: $(tr "\0" " " </proc/1/cmdline)"; id'
run task ps "$ID"

step "logs and stats of '$ID'"
if [ -n "$PVESIM_ON" ]; then
  # a CT's PID 1 is its init (lxcri-pause), the task's process its child: write to the
  # stdout of the process containerd shows, a host pid on this node
  tpid=$(ctr task ls | awk -v id="$ID" '$1 == id { print $2 }')
  echo "+ echo \"a line for the log\" >>/proc/$tpid/fd/1   (on the host: the stdout of task $ID)"
  echo "a line for the log" >>"/proc/$tpid/fd/1"
else
  inside "$ID" tolog 'echo "a line for the log" >>/proc/1/fd/1'
fi
for i in $(seq 1 50); do grep -q "a line for the log" "$CTLOG" 2>/dev/null && break; sleep 0.1; done
echo "+ cat $CTLOG"
cat "$CTLOG"
grep -q "a line for the log" "$CTLOG" || die "the container's log lacks the line written to it"
run task metrics "$ID"

if [ -n "$PVESIM_ON" ]; then
  step "checkpoint '$ID' through containerd's checkpoint API (a PVE snapshot of its CT)"
else
  step "checkpoint '$ID' through containerd's checkpoint API (ZFS snapshot of its root filesystem)"
fi
inside "$ID" before 'echo "written before the checkpoint" >/before.txt; ls -l /before.txt'
echo "+ ctr containers checkpoint --task $ID $CKPT_REF"
t0=$(ms)
ctr containers checkpoint --task "$ID" "$CKPT_REF"
t1=$(ms)
echo "${bold}checkpoint took $((t1 - t0)) ms${norm} (ctr's whole call: pause, snapshot, descriptor, checkpoint image, resume)"
run images ls -q
if [ -z "$PVESIM_ON" ]; then
  echo "+ zfs list -t snapshot -r $POOL/lxcri"
  zfs list -t snapshot -r -o name,creation "$POOL/lxcri"
fi
[ "$(task_status "$ID")" = RUNNING ] || die "after the checkpoint the task is $(task_status "$ID"), not RUNNING"
inside "$ID" after 'echo "written after the checkpoint" >/after.txt; ls /*.txt'

step "restoring $CKPT_REF as container '$RID'"
echo "+ ctr containers restore --live $RID $CKPT_REF"
t0=$(ms)
ctr containers restore --live "$RID" "$CKPT_REF" >/dev/null
wait_status "$RID" RUNNING
t1=$(ms)
if [ -n "$PVESIM_ON" ]; then
  echo "${bold}restore took $((t1 - t0)) ms${norm} (to RUNNING: a new CT cloned from the checkpoint's PVE snapshot; the process starts afresh)"
  run task ls
  show_cts
else
  echo "${bold}restore took $((t1 - t0)) ms${norm} (to RUNNING: a ZFS clone of the checkpoint's snapshot; the process starts afresh)"
  run task ls
  echo "+ zfs list -r -o name,origin $POOL/lxcri"
  zfs list -r -o name,origin "$POOL/lxcri"
fi
inside "$RID" check 'ls /*.txt; cat /before.txt'
ctr task exec --exec-id check-before "$RID" test -f /before.txt ||
  die "/before.txt, written before the checkpoint, is missing after the restore"
if ctr task exec --exec-id check-after "$RID" test -e /after.txt; then
  die "/after.txt, written after the checkpoint, is there after the restore"
fi
echo "${bold}/before.txt is there, /after.txt is not: the restore has the files of the checkpoint${norm}"

step "deleting '$ID', then '$RID', then the checkpoint"
for c in "$ID" "$RID"; do
  run task kill -s SIGKILL "$c"
  wait_status "$c" STOPPED
  run task rm "$c" 2> >(grep -v 'exit with non-zero exit code 137' >&2)
  run containers rm "$c"
  # deleting the original first (on ZFS it promotes the restore's clone): the restore's
  # files stay
  [ "$c" = "$ID" ] && inside "$RID" still 'cat /before.txt'
done
run images rm "$CKPT_REF"
if [ -n "$PVESIM_ON" ]; then
  # the checkpoint's PVE snapshot went with its CT
  run containers ls
  show_cts
else
  # containerd's garbage collector does not reach ZFS: the checkpoint's dataset goes with a prune
  echo "+ lxcri prune --min-age 0"
  LXCRI_CONFIG=$TMP/lxcri.toml PATH="${ZFS_PATH:+$ZFS_PATH:}$PATH" "$SHIM_DIR/lxcri" prune --address "$SOCK" --min-age 0
  run containers ls
  echo "+ zfs list -r -t all $POOL"
  zfs list -r -t all -o name "$POOL"
fi
