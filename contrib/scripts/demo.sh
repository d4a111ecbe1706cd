#!/usr/bin/env bash
# demo.sh: lxcri end to end, against a private containerd on a temporary root.
#
#   make demo            (builds first, then runs this script)
#
# Steps: start containerd v2 (from `make setup`'s tools folder) with the lxcri shim first on
# its PATH; build the busybox image offline and import it; run a detached container through
# the lxcri shim; exec into it; checkpoint and restore it; kill and delete it; stop
# containerd and remove everything (also on failure or ^C).
#
# Environment:
#   DEMO_RUNTIME     runtime to run the container with (default io.containerd.lxcri.v2;
#                    io.containerd.runc.v2 runs the same demo on containerd's runc shim)
#   DEMO_BACKEND     lxcri backend for the container (runtime options, as an operator's
#                    handler would set it), e.g. lxc or crun; default: lxcri's configured default
#   LXCRI_TOOLS_DIR  folder with containerd and ctr (default ${XDG_CACHE_HOME:-~/.cache}/lxcri/tools/bin)
#   LXCRI_SHIM_DIR   folder with containerd-shim-lxcri-v2 (default <repo>/bin)
#   DEMO_KEEP=1      keep the temporary folder (containerd is stopped all the same)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RUNTIME=${DEMO_RUNTIME:-io.containerd.lxcri.v2}
BACKEND=${DEMO_BACKEND:-}
NS=lxcri-demo
IMAGE=docker.io/library/busybox:lxcri
ID=demo
CKPT_REF=localhost/lxcri-demo-checkpoint:1

TOOLS=${LXCRI_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lxcri/tools/bin}
[ -x "$TOOLS/containerd" ] || { [ -x "$TOOLS/bin/containerd" ] && TOOLS=$TOOLS/bin; }
SHIM_DIR=$(cd "${LXCRI_SHIM_DIR:-$REPO/bin}" 2>/dev/null && pwd || echo "${LXCRI_SHIM_DIR:-$REPO/bin}")

bold=$(tput bold 2>/dev/null || true)
norm=$(tput sgr0 2>/dev/null || true)
step() { echo; echo "${bold}==> $*${norm}"; }
die() { echo "demo: $*" >&2; exit 1; }

for b in containerd ctr; do
  [ -x "$TOOLS/$b" ] || die "$b not found in $TOOLS; run 'make setup' (or contrib/scripts/setup-host.sh)"
done
if [ "$RUNTIME" = io.containerd.lxcri.v2 ]; then
  [ -x "$SHIM_DIR/containerd-shim-lxcri-v2" ] || die "containerd-shim-lxcri-v2 not found in $SHIM_DIR; run 'make build' (or set LXCRI_SHIM_DIR)"
fi
[ "$(id -u)" -eq 0 ] || die "containerd needs root; run as root (sudo make demo)"

# short path: unix socket paths are limited to 108 bytes
TMP=$(mktemp -d /tmp/lxcri-demo.XXXXXX)
SOCK=$TMP/containerd.sock
LOG=$TMP/containerd.log
CTD_PID=

ctr() { "$TOOLS/ctr" -a "$SOCK" -n "$NS" "$@" 2> >(grep -v 'cgroup v1 is deprecated' >&2); }
# show a ctr command, then run it
run() { echo "+ ctr $*"; ctr "$@"; }

cleanup() {
  local rc=$?
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
    kill -TERM "$CTD_PID" 2>/dev/null
    for i in $(seq 1 100); do kill -0 "$CTD_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$CTD_PID" 2>/dev/null; then
      echo "containerd did not stop in 10s: SIGKILL"
      kill -KILL "$CTD_PID" 2>/dev/null
    fi
    wait "$CTD_PID" 2>/dev/null
  fi
  # shims of this containerd that outlived it
  for p in /proc/[0-9]*; do
    if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q -- "-address $SOCK"; then
      echo "+ kill -9 ${p#/proc/} (leftover shim)"
      kill -KILL "${p#/proc/}" 2>/dev/null
    fi
  done
  # anything still mounted under the temporary root, deepest first
  awk -v d="$TMP" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
    awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2- |
    while read -r m; do echo "+ umount -l $m"; umount -l "$m"; done
  # runc's per-namespace state folder (empty once its containers are gone)
  rmdir "/run/containerd/runc/$NS" 2>/dev/null
  if [ "${DEMO_KEEP:-}" = 1 ]; then
    echo "kept $TMP (containerd log: $LOG)"
  else
    [ $rc -ne 0 ] && [ -f "$LOG" ] && { echo "--- last lines of the containerd log ---"; tail -n 40 "$LOG"; }
    rm -rf "$TMP"
  fi
  [ $rc -eq 0 ] && echo "${bold}demo finished${norm}" || echo "${bold}demo failed (exit $rc)${norm}"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "starting a private containerd in $TMP"
mkdir -p "$TMP"/{root,state,opt,cni/net.d,nri}
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
echo "PATH of containerd: $SHIM_DIR (lxcri shim) : $TOOLS : system PATH"
# own session: a ^C reaches this script (which cleans up in order), not containerd
PATH="$SHIM_DIR:$TOOLS:$PATH" setsid "$TOOLS/containerd" --config "$TMP/config.toml" --log-level debug >"$LOG" 2>&1 </dev/null &
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
run images ls

step "running container '$ID' detached with --runtime $RUNTIME${BACKEND:+ (backend $BACKEND)}"
extra=()
if [ -n "$BACKEND" ]; then
  printf 'backend = "%s"\n' "$BACKEND" >"$TMP/lxcri-backend.toml"
  extra+=(--runtime-config-path "$TMP/lxcri-backend.toml")
fi
run run -d --runtime "$RUNTIME" "${extra[@]}" "$IMAGE" "$ID" \
  sh -c 'trap "exit 0" TERM; echo "init started"; while :; do sleep 1; done'
for i in $(seq 1 50); do
  ctr task ls 2>/dev/null | awk -v id="$ID" '$1 == id && $3 == "RUNNING" { ok=1 } END { exit !ok }' && break
  sleep 0.1
done
run task ls

step "exec into '$ID'"
run task exec --exec-id hello "$ID" sh -c 'echo "hello from $(hostname), inside the container: $(cat /proc/1/cmdline | tr "\0" " ")"; id; uname -r'
run task ps "$ID"

step "checkpoint and restore '$ID'"
echo "+ ctr containers checkpoint --task --rw $ID $CKPT_REF"
if out=$(ctr containers checkpoint --task --rw "$ID" "$CKPT_REF" 2>&1); then
  echo "$out"
  echo "checkpoint stored as image $CKPT_REF; replacing the container by its restored copy"
  run task kill -s SIGKILL "$ID"
  for i in $(seq 1 50); do
    ctr task ls 2>/dev/null | awk -v id="$ID" '$1 == id && $3 == "STOPPED" { ok=1 } END { exit !ok }' && break
    sleep 0.1
  done
  run task rm "$ID"
  run containers rm "$ID"
  run containers restore --live --rw "$ID" "$CKPT_REF"
  run task ls
  run task exec --exec-id after-restore "$ID" echo "hello again, after the restore"
else
  echo "$out"
  if grep -qi 'not implemented' <<<"$out"; then
    echo "${bold}checkpoint/restore is not implemented in lxcri yet: it arrives with the ZFS issue" \
      "(ZFS snapshots of the container's root filesystem). Continuing.${norm}"
  else
    echo "${bold}checkpoint failed with $RUNTIME (see above); continuing.${norm}"
  fi
  # the checkpoint paused the task before failing; make sure it runs again
  ctr task resume "$ID" >/dev/null 2>&1 || true
fi

step "killing and deleting '$ID'"
run task kill -s SIGKILL "$ID"
for i in $(seq 1 50); do
  ctr task ls 2>/dev/null | awk -v id="$ID" '$1 == id && $3 == "STOPPED" { ok=1 } END { exit !ok }' && break
  sleep 0.1
done
run task ls
run task rm "$ID"
run containers rm "$ID"
run containers ls
