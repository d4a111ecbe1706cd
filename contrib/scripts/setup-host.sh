#!/usr/bin/env bash
# setup-host.sh: install everything lxcri needs to build, demo and test on a Debian 12 host.
#
#   - Debian packages: container runtimes, LXC and its headers, zfs-fuse, CNI plugins, image tools;
#   - containerd v2.4.2 + ctr + containerd-shim-runc-v2, crictl and nerdctl, built from the Go
#     module proxy into a cached tools folder (TOOLS_DIR), since Debian ships none of them at
#     the versions we support.
#
# Idempotent: a second run with everything present takes well under a second.
set -euo pipefail

# LXCRI_TOOLS_DIR (as the integration harness reads it) may name the tools folder or its bin/.
if [ -z "${TOOLS_DIR:-}" ] && [ -n "${LXCRI_TOOLS_DIR:-}" ]; then
  TOOLS_DIR=${LXCRI_TOOLS_DIR%/}
  [ "$(basename "$TOOLS_DIR")" = bin ] && TOOLS_DIR=$(dirname "$TOOLS_DIR")
fi
TOOLS_DIR=${TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lxcri/tools}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2}
CRICTL_VERSION=${CRICTL_VERSION:-v1.37.0}
NERDCTL_VERSION=${NERDCTL_VERSION:-v1.7.7}

PACKAGES=(runc crun criu busybox-static containernetworking-plugins lxc lxc-dev
  zfs-fuse pkg-config gcc libc6-dev jq iptables xz-utils iproute2 procps psmisc)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-host: missing Debian packages ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  echo "setup-host: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

export PATH=/usr/local/go/bin:$PATH
if ! command -v go >/dev/null; then
  echo "setup-host: Go is not installed (looked in /usr/local/go/bin and PATH); install Go first" >&2
  exit 1
fi
mkdir -p "$TOOLS_DIR/bin"
export GOBIN="$TOOLS_DIR/bin"
export GOFLAGS=-buildvcs=false

stamp() { [ -f "$TOOLS_DIR/.$1-$2" ]; }
mark() { touch "$TOOLS_DIR/.$1-$2"; }

if ! stamp containerd "$CONTAINERD_VERSION"; then
  echo "setup-host: building containerd $CONTAINERD_VERSION (takes a minute or two)"
  go install "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
  mark containerd "$CONTAINERD_VERSION"
fi
if ! stamp crictl "$CRICTL_VERSION"; then
  echo "setup-host: building crictl $CRICTL_VERSION"
  go install "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
  mark crictl "$CRICTL_VERSION"
fi
if ! stamp nerdctl "$NERDCTL_VERSION"; then
  # nerdctl is not installable with `go install` from the proxy (its module list is refused);
  # building it inside a scratch module works.
  echo "setup-host: building nerdctl $NERDCTL_VERSION"
  work=$(mktemp -d)
  (cd "$work" && go mod init lxcri.local/nerdctlbuild >/dev/null 2>&1 &&
    go get "github.com/containerd/nerdctl/cmd/nerdctl@$NERDCTL_VERSION" &&
    go build -o "$GOBIN/nerdctl" github.com/containerd/nerdctl/cmd/nerdctl)
  rm -rf "$work"
  mark nerdctl "$NERDCTL_VERSION"
fi
echo "setup-host: ready; tools in $TOOLS_DIR/bin"
