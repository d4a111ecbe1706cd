#!/usr/bin/env bash
# setup-conformance.sh: build the public conformance suites `make conformance` runs, and the
# registry that serves their images, from the Go module proxy into the cached tools folder:
#
#   containerd-client.test  containerd's integration/client test package (`go test -c`); it
#                           starts its own containerd and picks the runtime from TEST_RUNTIME
#   critest                 cri-tools' CRI validation suite (a ginkgo `go test -c` binary)
#   registry                distribution's OCI registry (cmd/registry), serving the suites'
#                           images on localhost, since the tests cannot reach the internet
#
# Separate from setup-host.sh so that `make setup` does not pay for them. Each tool is
# rebuilt only when its version changes (a stamp file per version, as setup-host.sh).
#
#   setup-conformance.sh [client] [critest] [registry]   (default: all three)
set -euo pipefail

WANT=" ${*:-client critest registry} "
for w in $WANT; do
  case $w in
    client | critest | registry) ;;
    *) echo "setup-conformance: unknown tool $w (want client, critest, registry)" >&2; exit 2 ;;
  esac
done
want() { [[ $WANT == *" $1 "* ]]; }

if [ -z "${TOOLS_DIR:-}" ] && [ -n "${LXCRI_TOOLS_DIR:-}" ]; then
  TOOLS_DIR=${LXCRI_TOOLS_DIR%/}
  [ "$(basename "$TOOLS_DIR")" = bin ] && TOOLS_DIR=$(dirname "$TOOLS_DIR")
fi
TOOLS_DIR=${TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lxcri/tools}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2}
CRITOOLS_VERSION=${CRITOOLS_VERSION:-v1.37.0}
REGISTRY_VERSION=${REGISTRY_VERSION:-v3.1.2}

export PATH=/usr/local/go/bin:$PATH
if ! command -v go >/dev/null; then
  echo "setup-conformance: Go is not installed (looked in /usr/local/go/bin and PATH); install Go first" >&2
  exit 1
fi
mkdir -p "$TOOLS_DIR/bin"
export GOFLAGS=-buildvcs=false

stamp() { [ -f "$TOOLS_DIR/.$1-$2" ] && [ -x "$TOOLS_DIR/bin/$1" ]; }
mark() { touch "$TOOLS_DIR/.$1-$2"; }

# test_binary MODULE VERSION PACKAGE OUT [PATCH]: `go test -c -trimpath` (failure messages
# then name source files by module path, not by the temporary copy) of PACKAGE inside a writable
# copy of MODULE's source (the module cache is read-only, and the test package needs the
# module's own go.mod and go.sum, with their test-only requirements). PATCH, a function, runs
# in the copy before the build.
test_binary() {
  local module=$1 version=$2 pkg=$3 out=$4 patch=${5:-} dir work
  dir=$(go mod download -json "$module@$version" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  if [ -z "$dir" ] || [ ! -d "$dir" ]; then
    echo "setup-conformance: go mod download $module@$version gave no source folder" >&2
    return 1
  fi
  work=$(mktemp -d)
  cp -r "$dir/." "$work/src"
  chmod -R u+w "$work/src"
  if [ -n "$patch" ] && ! (cd "$work/src" && "$patch"); then
    rm -rf "$work"
    return 1
  fi
  if ! (cd "$work/src" && go test -c -trimpath -o "$TOOLS_DIR/bin/$out.tmp" "$pkg"); then
    rm -rf "$work"
    return 1
  fi
  rm -rf "$work"
  mv -f "$TOOLS_DIR/bin/$out.tmp" "$TOOLS_DIR/bin/$out"
}

# containerd's client tests name their images in package variables, which are set before
# TestMain parses -image-list, so that flag never reaches them. The one change made to the
# suite: the flag's default comes from TEST_IMAGE_LIST in the environment, which is read in
# time. Nothing else in the suite is touched.
image_list_from_env() {
  local f=integration/images/image_list.go
  grep -q 'flag.String("image-list", "",' "$f" || {
    echo "setup-conformance: $f does not declare -image-list as expected; update image_list_from_env" >&2
    return 1
  }
  sed -i 's/flag.String("image-list", "",/flag.String("image-list", os.Getenv("TEST_IMAGE_LIST"),/' "$f"
}
# (stamps name the build's variant too, so that a change here rebuilds)
CLIENT_STAMP=$CONTAINERD_VERSION-imagelistenv-trimpath
CRITEST_STAMP=$CRITOOLS_VERSION-trimpath
if want client && ! stamp containerd-client.test "$CLIENT_STAMP"; then
  echo "setup-conformance: building containerd $CONTAINERD_VERSION integration/client tests"
  test_binary github.com/containerd/containerd/v2 "$CONTAINERD_VERSION" ./integration/client containerd-client.test image_list_from_env
  mark containerd-client.test "$CLIENT_STAMP"
fi
if want critest && ! stamp critest "$CRITEST_STAMP"; then
  echo "setup-conformance: building critest $CRITOOLS_VERSION"
  test_binary sigs.k8s.io/cri-tools "$CRITOOLS_VERSION" ./cmd/critest critest
  mark critest "$CRITEST_STAMP"
fi
if want registry && ! stamp registry "$REGISTRY_VERSION"; then
  echo "setup-conformance: building the distribution registry $REGISTRY_VERSION"
  GOBIN="$TOOLS_DIR/bin" go install "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION"
  mark registry "$REGISTRY_VERSION"
fi
echo "setup-conformance: ready; suites in $TOOLS_DIR/bin"
