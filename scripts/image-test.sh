#!/usr/bin/env bash
# `make test-image`: builds deploy/Dockerfile for real with buildah (no Docker
# engine needed) and runs the image's filesystem as its non-root user.
#
#   1. debian:bookworm-slim   made locally with debootstrap (cached in .tools/image)
#   2. rust:1.95-bookworm     that base plus this machine's Rust toolchain
#   3. sparta:test            `buildah bud --isolation chroot -f deploy/Dockerfile .`
#   4. the image's rootfs, extracted, runs `sparta serve` as uid 10001 in a
#      chroot: /healthz, the HEALTHCHECK command, a `go build` through it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SPARTA_IMAGE_CACHE:-$ROOT/.tools/image}"
RELEASE="$(sed -n 's/^ARG DEBIAN_RELEASE=//p' "$ROOT/deploy/Dockerfile")"
RUST_VERSION="$(sed -n 's/^ARG RUST_VERSION=//p' "$ROOT/deploy/Dockerfile")"
BASE="debian:$RELEASE-slim"
BUILDER="rust:$RUST_VERSION-$RELEASE"
IMAGE="localhost/sparta:test"
die() { echo "image-test: $*" >&2; exit 1; }
log() { echo "image-test: $*" >&2; }

command -v buildah >/dev/null && command -v debootstrap >/dev/null || {
    apt-get install -y --no-install-recommends buildah debootstrap >&2 || die "needs buildah and debootstrap"
}
mkdir -p "$CACHE"

# The mirror the machine's apt uses, so nothing names a host here.
mirror() {
    local m
    m="$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2; exit}')"
    [[ -n "$m" ]] || m="$(awk '$1=="deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)"
    [[ -n "$m" ]] || die "no apt mirror configured"
    echo "$m"
}

# 1. The base: a minimal debootstrap, cached.
if [[ ! -d "$CACHE/rootfs" ]]; then
    log "debootstrap $RELEASE (minbase) into $CACHE/rootfs"
    rm -rf "$CACHE/rootfs.tmp"
    debootstrap --variant=minbase "$RELEASE" "$CACHE/rootfs.tmp" "$(mirror)" >"$CACHE/debootstrap.log" 2>&1 \
        || die "debootstrap failed, see $CACHE/debootstrap.log"
    mv "$CACHE/rootfs.tmp" "$CACHE/rootfs"
fi

image_exists() { buildah inspect --type image "$1" >/dev/null 2>&1; }

# Commits a container made from a directory tree under the name $2.
import_tree() {
    local dir=$1 name=$2 ctr mnt
    ctr="$(buildah from scratch)"
    mnt="$(buildah mount "$ctr")"
    cp -a "$dir/." "$mnt/"
    buildah umount "$ctr" >/dev/null
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
    buildah commit --quiet "$ctr" "$name" >/dev/null
    buildah rm "$ctr" >/dev/null
}

if ! image_exists "$BASE"; then
    log "importing $BASE"
    import_tree "$CACHE/rootfs" "$BASE"
fi

# 2. The builder: the base plus the machine's toolchain at the Dockerfile's
# paths (/usr/local/cargo, /usr/local/rustup), as the official image has it.
if ! image_exists "$BUILDER"; then
    have="$(rustc --version | awk '{print $2}')"
    [[ "$have" == "$RUST_VERSION"* ]] || die "the Dockerfile wants Rust $RUST_VERSION, this machine has $have"
    log "making $BUILDER from this machine's toolchain ($have)"
    sysroot="$(rustc --print sysroot)"
    ctr="$(buildah from "$BASE")"
    mnt="$(buildah mount "$ctr")"
    mkdir -p "$mnt/usr/local/rustup/toolchains" "$mnt/usr/local/cargo/bin"
    cp -a "$sysroot" "$mnt/usr/local/rustup/toolchains/"
    tc="$(basename "$sysroot")"
    for b in cargo rustc rustdoc; do ln -sf "../../rustup/toolchains/$tc/bin/$b" "$mnt/usr/local/cargo/bin/$b"; done
    buildah umount "$ctr" >/dev/null
    # A C toolchain for build scripts (ring, aws-lc-sys), as the official image has.
    buildah run --isolation chroot "$ctr" -- sh -c \
        'apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev make ca-certificates binutils >/dev/null && rm -rf /var/lib/apt/lists/*'
    buildah config --env CARGO_HOME=/usr/local/cargo --env RUSTUP_HOME=/usr/local/rustup \
        --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
    buildah commit --quiet "$ctr" "$BUILDER" >/dev/null
    buildah rm "$ctr" >/dev/null
fi

# 3. The image itself. The crates are vendored into the context first: the
# build's chroot reaches no registry, and an offline build is reproducible.
log "cargo vendor into vendor/ (the build runs offline)"
(cd "$ROOT" && cargo vendor --locked vendor >"$CACHE/vendor.log" 2>&1) \
    || die "cargo vendor failed, see $CACHE/vendor.log"
commit="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
log "buildah bud deploy/Dockerfile (release build inside; this takes a while)"
buildah bud --isolation chroot --layers --pull-never --build-arg "SPARTA_BUILD_COMMIT=$commit" \
    --ignorefile "$ROOT/deploy/Dockerfile.dockerignore" \
    -f "$ROOT/deploy/Dockerfile" -t "$IMAGE" "$ROOT" >"$CACHE/bud.log" 2>&1 \
    || { tail -30 "$CACHE/bud.log" >&2; die "buildah bud failed, see $CACHE/bud.log"; }
size="$(buildah inspect --type image --format '{{.Size}}' "$IMAGE" 2>/dev/null || true)"

# 4. Run it: extract the filesystem and start the entrypoint as the image's user.
run="$(mktemp -d)"
ctr="$(buildah from --pull-never "$IMAGE")"
cleanup() {
    [[ -n "${pid:-}" ]] && kill "$pid" 2>/dev/null || true
    buildah rm "$ctr" >/dev/null 2>&1 || true
    umount "$run/rootfs/proc" 2>/dev/null || true
    rm -rf "$run"
}
trap cleanup EXIT
mnt="$(buildah mount "$ctr")"
mkdir -p "$run/rootfs"
cp -a "$mnt/." "$run/rootfs/"
buildah umount "$ctr" >/dev/null
user="$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' "$IMAGE")"
[[ "$user" == "10001:10001" ]] || die "image user is $user, not 10001:10001"
bin_info="$(file -b "$run/rootfs/usr/local/bin/sparta" 2>/dev/null || true)"
case "$bin_info" in *"not stripped"*) die "the binary in the image is not stripped: $bin_info";; esac
bin_size="$(stat -c %s "$run/rootfs/usr/local/bin/sparta")"
mount -t proc proc "$run/rootfs/proc"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"

# The fixture upstream on the host, reached over loopback from the chroot.
fixture="$ROOT/target/debug/fixture"
[[ -x "$fixture" ]] || (cd "$ROOT/tests/fixture" && "${GO:-/usr/local/go/bin/go}" build -o "$fixture" .)
"$fixture" --listen 127.0.0.1:0 --addr-file "$run/fixture.addr" >"$run/fixture.log" 2>&1 &
fpid=$!
trap 'kill $fpid 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 1 100); do [[ -s "$run/fixture.addr" ]] && break; sleep 0.1; done
upstream="http://$(cat "$run/fixture.addr")"

env -i PATH=/usr/local/bin:/usr/bin:/bin SPARTA_LISTEN="127.0.0.1:$port" SPARTA_STORAGE=/var/lib/sparta \
    SPARTA_SPOOL_DIR=/var/tmp/sparta SPARTA_LOG_FORMAT=json SPARTA_UPSTREAM="$upstream" SPARTA_SUMDB_VERIFY=false \
    chroot --userspec=10001:10001 "$run/rootfs" /bin/sh -c 'cd /var/lib/sparta && exec sparta serve' \
    >"$run/sparta.log" 2>&1 &
pid=$!
ok=0
for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.2
done
[[ $ok == 1 ]] || { cat "$run/sparta.log" >&2; die "/healthz did not answer"; }
log "/healthz answers as uid 10001"

# The HEALTHCHECK command, as the image declares it, inside the image.
hc="$(buildah inspect --type image --format '{{json .Docker.Config.Healthcheck.Test}}' "$IMAGE")"
hc_cmd="$(python3 -c 'import json,sys; t=json.loads(sys.argv[1]); assert t[0]=="CMD", t; print(t[3])' "$hc")"
env -i PATH=/usr/local/bin:/usr/bin:/bin SPARTA_LISTEN="127.0.0.1:$port" \
    chroot --userspec=10001:10001 "$run/rootfs" bash -c "$hc_cmd" || die "HEALTHCHECK failed"
log "HEALTHCHECK passes"

# A go build through the proxy in the image.
work="$run/gowork"; mkdir -p "$work"
cat > "$work/go.mod" <<GOMOD
module example.com/imagecheck

go 1.21

require fixture.test/graph/a v1.0.0
GOMOD
cat > "$work/main.go" <<'GO'
package main

import _ "fixture.test/graph/a"

func main() {}
GO
GO="${GO:-/usr/local/go/bin/go}"
(cd "$work" && GOPROXY="http://127.0.0.1:$port" GOSUMDB=off GOFLAGS=-mod=mod GOMODCACHE="$run/modcache" \
    GOPATH="$run/gopath" "$GO" build -o /dev/null .) || die "go build through the image failed"
log "go build through the image works"
chmod -R u+w "$run/modcache" 2>/dev/null || true

echo "image-test: ok: $IMAGE, image size $size bytes, binary $bin_size bytes ($bin_info)"
