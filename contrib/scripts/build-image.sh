#!/usr/bin/env bash
# build-image.sh: build a tiny busybox OCI image offline, as an OCI image-layout tarball.
#
#   build-image.sh OUT_TAR REF [CMD_JSON]
#
#   OUT_TAR   where to write the tarball (its directory is created)
#   REF       image name stored in the io.containerd.image.name annotation,
#             e.g. docker.io/library/busybox:lxcri
#   CMD_JSON  the image's Cmd, default '["/bin/sh"]'
#
# Optional environment, for images that test suites expect with a given content:
#   IMAGE_USER       the image config's User (e.g. 1002, www-data, 1003:1003)
#   IMAGE_EXTRA_DIR  a folder copied over the root filesystem (extra files, /etc/passwd lines)
#   IMAGE_ENV        one more KEY=VALUE in the config's Env (a distinct image of the same files)
#
# The image holds /bin/busybox from Debian's busybox-static, one symlink per applet, and a
# minimal /etc. No registry, docker or umoci is involved, and the output is deterministic:
# the same busybox binary, REF and CMD always give the same digests.
#
# Import it with `ctr -a SOCK -n NS images import OUT_TAR` (or `nerdctl load -i OUT_TAR`).
set -euo pipefail
umask 022

OUT=${1:?usage: build-image.sh OUT_TAR REF [CMD_JSON]}
REF=${2:?usage: build-image.sh OUT_TAR REF [CMD_JSON]}
CMD=${3:-'["/bin/sh"]'}
BB=${BUSYBOX:-/bin/busybox}

if [ ! -x "$BB" ]; then
  echo "build-image: $BB not found; run 'make setup' (or contrib/scripts/setup-host.sh) to install busybox-static" >&2
  exit 1
fi
if ! "$BB" --list-full >/dev/null 2>&1; then
  echo "build-image: $BB does not list its applets; is it busybox-static?" >&2
  exit 1
fi

case "$(uname -m)" in
  x86_64) ARCH=amd64 ;;
  aarch64) ARCH=arm64 ;;
  armv7l) ARCH=arm ;;
  ppc64le) ARCH=ppc64le ;;
  s390x) ARCH=s390x ;;
  riscv64) ARCH=riscv64 ;;
  *) echo "build-image: unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
R=$WORK/rootfs
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,run,var/tmp}
chmod 1777 "$R/tmp" "$R/var/tmp"
chmod 0700 "$R/root"
chmod 0755 "$R"
cp "$BB" "$R/bin/busybox"
chmod 0755 "$R/bin/busybox"
# `busybox --install` needs /proc/self/exe of the image's binary; --list-full does not.
for a in $("$BB" --list-full); do
  [ -e "$R/$a" ] || [ -L "$R/$a" ] || ln -s /bin/busybox "$R/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/etc/group"
printf 'nameserver 127.0.0.1\n' >"$R/etc/resolv.conf"
printf '127.0.0.1 localhost\n' >"$R/etc/hosts"
if [ -n "${IMAGE_EXTRA_DIR:-}" ]; then
  cp -a "$IMAGE_EXTRA_DIR/." "$R/"
fi
USER_JSON=
if [ -n "${IMAGE_USER:-}" ]; then
  case "$IMAGE_USER" in
    *[!A-Za-z0-9_.:-]*) echo "build-image: IMAGE_USER $IMAGE_USER: only letters, digits and _.:- are allowed" >&2; exit 1 ;;
  esac
  USER_JSON=',"User":"'"$IMAGE_USER"'"'
fi
ENV_JSON=
if [ -n "${IMAGE_ENV:-}" ]; then
  case "$IMAGE_ENV" in
    *[!A-Za-z0-9_.:/=-]* | =* | [!A-Za-z_]*) echo "build-image: IMAGE_ENV $IMAGE_ENV: want KEY=VALUE of letters, digits and _.:/=-" >&2; exit 1 ;;
  esac
  ENV_JSON=',"'"$IMAGE_ENV"'"'
fi

B=$WORK/layout/blobs/sha256
mkdir -p "$B"
EPOCH='2020-01-01 00:00Z'
# deterministic layer: sorted names, fixed owner and mtime, gzip without name or timestamp
find "$R" -exec touch -h -d "$EPOCH" {} +
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="$EPOCH" \
  --format=gnu -C "$R" -cf "$WORK/layer.tar" .
DIFFID=$(sha256sum "$WORK/layer.tar" | cut -d' ' -f1)
gzip -n -9 -c "$WORK/layer.tar" >"$WORK/layer.tar.gz"
LDIG=$(sha256sum "$WORK/layer.tar.gz" | cut -d' ' -f1)
LSIZE=$(stat -c %s "$WORK/layer.tar.gz")
cp "$WORK/layer.tar.gz" "$B/$LDIG"

blob() { # blob FILE -> copies FILE into the layout, prints "DIGEST SIZE"
  local d s
  d=$(sha256sum "$1" | cut -d' ' -f1)
  s=$(stat -c %s "$1")
  cp "$1" "$B/$d"
  echo "$d $s"
}

printf '%s' '{"created":"2020-01-01T00:00:00Z","architecture":"'"$ARCH"'","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"'"$ENV_JSON"'],"Cmd":'"$CMD"',"WorkingDir":"/"'"$USER_JSON"'},"rootfs":{"type":"layers","diff_ids":["sha256:'"$DIFFID"'"]},"history":[{"created":"2020-01-01T00:00:00Z","created_by":"lxcri build-image.sh"}]}' >"$WORK/config.json"
read -r CDIG CSIZE < <(blob "$WORK/config.json")

printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'"$CDIG"'","size":'"$CSIZE"'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:'"$LDIG"'","size":'"$LSIZE"'}]}' >"$WORK/manifest.json"
read -r MDIG MSIZE < <(blob "$WORK/manifest.json")

TAG=${REF##*:}
[ "$TAG" = "$REF" ] && TAG=latest
printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'"$MDIG"'","size":'"$MSIZE"',"annotations":{"io.containerd.image.name":"'"$REF"'","org.opencontainers.image.ref.name":"'"$TAG"'"},"platform":{"architecture":"'"$ARCH"'","os":"linux"}}]}' >"$WORK/layout/index.json"
printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$WORK/layout/oci-layout"

find "$WORK/layout" -exec touch -h -d "$EPOCH" {} +
mkdir -p "$(dirname "$OUT")"
# write beside OUT first and rename, so that a concurrent reader never sees a partial file
TMP_OUT="$OUT.tmp.$$"
trap 'rm -rf "$WORK" "$TMP_OUT"' EXIT
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="$EPOCH" \
  --format=gnu -C "$WORK/layout" -cf "$TMP_OUT" oci-layout index.json blobs
mv -f "$TMP_OUT" "$OUT"
echo "build-image: $OUT ref=$REF manifest=sha256:$MDIG layer=sha256:$LDIG ($LSIZE bytes)"
