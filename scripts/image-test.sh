#!/usr/bin/env bash
# `make test-image`: builds deploy/Dockerfile for real with buildah (no Docker
# engine needed) and runs the image's filesystem as its non-root user.
#
#   1. debian:bookworm-slim   made locally with debootstrap, slimmed as Debian's
#                             slim images are (cached in .tools/image)
#   2. rust:1.95-bookworm     that base plus this machine's Rust toolchain
#   3. sparta:test            `buildah bud --isolation chroot --layers --format docker` (the
#                             docker format keeps HEALTHCHECK) of deploy/Dockerfile
#                             from a `cargo vendor`ed context (the build is offline)
#   4. the image's rootfs, extracted, runs its ENTRYPOINT/CMD as its USER in a
#      chroot: /healthz, the HEALTHCHECK command (and that it fails with nothing
#      listening), a `go build` through it; the binary must be stripped.
#
# Prints a report and writes it to bench/results/image-<date>.md
# (SPARTA_IMAGE_RESULTS=path to write elsewhere, =none for no file).
# A second run reuses the base, the builder and buildah's layer cache.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SPARTA_IMAGE_CACHE:-$ROOT/.tools/image}"
RELEASE="$(sed -n 's/^ARG DEBIAN_RELEASE=//p' "$ROOT/deploy/Dockerfile")"
RUST_VERSION="$(sed -n 's/^ARG RUST_VERSION=//p' "$ROOT/deploy/Dockerfile")"
BASE="debian:$RELEASE-slim"
BUILDER="rust:$RUST_VERSION-$RELEASE"
IMAGE="localhost/sparta:test"
RESULTS="${SPARTA_IMAGE_RESULTS:-$ROOT/bench/results/image-$(date -u +%Y-%m-%d).md}"
# Bump when the way the base or the builder is made changes: cached ones made
# another way are made again. Apart, because a new builder means a new cargo
# build in the image, and a new base does not need one.
BASE_RECIPE=3
BUILDER_RECIPE=2
LABEL=sparta.image-test.recipe
export DEBIAN_FRONTEND=noninteractive
die() { echo "image-test: FAIL: $*" >&2; exit 1; }
log() { echo "image-test: $*" >&2; }
[[ -n "$RELEASE" && -n "$RUST_VERSION" ]] || die "no DEBIAN_RELEASE or RUST_VERSION ARG in deploy/Dockerfile"

missing=()
for t in buildah:buildah debootstrap:debootstrap file:file readelf:binutils curl:curl; do
    command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2 \
        || die "needs ${missing[*]}"
fi
CHROOT="$(command -v chroot)" || die "no chroot command"
GO="${GO:-$(command -v go || true)}"
[[ -x "$GO" ]] || die "no go command on PATH (make go-toolchain)"
mkdir -p "$CACHE"
start_all=$SECONDS
declare -A took

# The mirror the machine's apt uses, so nothing names a host here.
mirror() {
    local m
    m="$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2; exit}')"
    [[ -n "$m" ]] || m="$(awk '$1=="deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)"
    [[ -n "$m" ]] || die "no apt mirror configured"
    echo "$m"
}

# As Debian's slim images: no docs (but copyrights), man pages or
# translations, now or from later installs; no package lists or .debs.
slim() {
    local r=$1
    cat >"$r/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
    find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    rm -rf "$r"/usr/share/{man,groff,info,lintian,linda}/*
    find "$r/var/cache/apt" -name '*.bin' -delete
    find "$r/var/cache/apt/archives" "$r/var/lib/apt/lists" -maxdepth 1 -type f ! -name lock -delete
    # apt as the official image sets it: no package caches or .debs kept
    # after an install, so `rm -rf /var/lib/apt/lists/*` is all a RUN needs.
    cat >"$r/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::Languages "none";' >"$r/etc/apt/apt.conf.d/docker-no-languages"
    echo 'Acquire::GzipIndexes "true";' >"$r/etc/apt/apt.conf.d/docker-gzip-indexes"
    echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$r/etc/apt/apt.conf.d/docker-autoremove-suggests"
    # The machine's apt sources when it runs the same release (updates and
    # security too, as the official image has), else debootstrap's one line.
    local codename
    codename="$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release 2>/dev/null)"
    if [[ "$codename" == "$RELEASE" ]] && compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
        cp /etc/apt/sources.list.d/*.sources "$r/etc/apt/sources.list.d/"
        rm -f "$r/etc/apt/sources.list"
    fi
}

image_exists() { buildah inspect --type image "$1" >/dev/null 2>&1; }
image_recipe() {
    buildah inspect --type image --format "{{index .OCIv1.Config.Labels \"$LABEL\"}}" "$1" 2>/dev/null || true
}
PATH_ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# 1. The base: a minimal debootstrap, slimmed, cached as a tree and an image.
t0=$SECONDS
rootfs="$CACHE/rootfs-$RELEASE-r$BASE_RECIPE"
if [[ ! -d "$rootfs" ]]; then
    log "debootstrap $RELEASE (minbase) into $rootfs"
    rm -rf "$rootfs.tmp"
    debootstrap --variant=minbase "$RELEASE" "$rootfs.tmp" "$(mirror)" >"$CACHE/debootstrap.log" 2>&1 \
        || die "debootstrap failed, see $CACHE/debootstrap.log"
    slim "$rootfs.tmp"
    mv "$rootfs.tmp" "$rootfs"
fi
find "$CACHE" -mindepth 1 -maxdepth 1 -name 'rootfs*' ! -name "${rootfs##*/}" -exec rm -rf {} +
if [[ "$(image_recipe "$BASE")" != "$BASE_RECIPE" ]]; then
    log "importing $rootfs as $BASE"
    ctr="$(buildah from scratch)"
    mnt="$(buildah mount "$ctr")"
    cp -a "$rootfs/." "$mnt/"
    buildah umount "$ctr" >/dev/null
    buildah config --env "$PATH_ENV" --cmd bash --label "$LABEL=$BASE_RECIPE" "$ctr"
    buildah commit --quiet "$ctr" "$BASE" >/dev/null
    buildah rm "$ctr" >/dev/null
fi
took[base]=$((SECONDS - t0))

# 2. The builder: the base plus the machine's toolchain at the official
# image's paths (/usr/local/cargo, /usr/local/rustup) and a C toolchain for
# build scripts (ring, aws-lc-sys), as the official image has.
t0=$SECONDS
have="$(rustc --version | awk '{print $2}')"
[[ "$have" == "$RUST_VERSION" || "$have" == "$RUST_VERSION".* ]] \
    || die "the Dockerfile wants Rust $RUST_VERSION, this machine has $have"
builder_recipe="$BUILDER_RECIPE rustc-$(rustc -vV | sed -n 's/^commit-hash: //p')"
if [[ "$(image_recipe "$BUILDER")" != "$builder_recipe" ]]; then
    log "making $BUILDER from this machine's toolchain ($have)"
    sysroot="$(rustc --print sysroot)"
    tc="$have-$(rustc -vV | sed -n 's/^host: //p')"
    ctr="$(buildah from --pull-never "$BASE")"
    mnt="$(buildah mount "$ctr")"
    mkdir -p "$mnt/usr/local/rustup/toolchains/$tc" "$mnt/usr/local/cargo/bin"
    # Not share/doc: the toolchain's HTML docs are most of its size.
    tar -C "$sysroot" --exclude=./share/doc -cf - . | tar -C "$mnt/usr/local/rustup/toolchains/$tc" -xf -
    for b in "$mnt/usr/local/rustup/toolchains/$tc/bin/"*; do
        ln -sf "../../rustup/toolchains/$tc/bin/${b##*/}" "$mnt/usr/local/cargo/bin/${b##*/}"
    done
    buildah umount "$ctr" >/dev/null
    buildah run --isolation chroot "$ctr" -- sh -c \
        'export DEBIAN_FRONTEND=noninteractive && apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev make ca-certificates binutils && rm -rf /var/lib/apt/lists/*' \
        >"$CACHE/builder.log" 2>&1 || die "apt-get in the builder failed, see $CACHE/builder.log"
    buildah run --isolation chroot "$ctr" -- /usr/local/cargo/bin/cargo --version >/dev/null 2>&1 \
        || die "cargo does not run in the builder"
    buildah config --env CARGO_HOME=/usr/local/cargo --env RUSTUP_HOME=/usr/local/rustup \
        --env "PATH=/usr/local/cargo/bin:${PATH_ENV#PATH=}" --label "$LABEL=$builder_recipe" "$ctr"
    buildah commit --quiet "$ctr" "$BUILDER" >/dev/null
    buildah rm "$ctr" >/dev/null
fi
took[builder]=$((SECONDS - t0))

# 3. The image itself. The crates are vendored into the context first: the
# build's chroot reaches no registry, and an offline build is reproducible.
t0=$SECONDS
lock_sum="$(sha256sum "$ROOT/Cargo.lock" | cut -d' ' -f1)"
if [[ -d "$ROOT/vendor" && "$(cat "$CACHE/vendor.lock-sha256" 2>/dev/null)" == "$lock_sum" ]]; then
    log "vendor/ is up to date with Cargo.lock"
else
    log "cargo vendor into vendor/ (the build runs offline)"
    rm -f "$CACHE/vendor.lock-sha256"
    (cd "$ROOT" && cargo vendor --locked vendor >"$CACHE/vendor.log" 2>&1) \
        || die "cargo vendor failed, see $CACHE/vendor.log"
    echo "$lock_sum" >"$CACHE/vendor.lock-sha256"
fi
took[vendor]=$((SECONDS - t0))
t0=$SECONDS
commit="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
log "buildah bud deploy/Dockerfile (a release build inside; minutes when the sources changed)"
buildah bud --isolation chroot --layers --format docker --pull-never --build-arg "SPARTA_BUILD_COMMIT=$commit" \
    --ignorefile "$ROOT/deploy/Dockerfile.dockerignore" \
    -f "$ROOT/deploy/Dockerfile" -t "$IMAGE" "$ROOT" >"$CACHE/bud.log" 2>&1 \
    || { tail -30 "$CACHE/bud.log" >&2; die "buildah bud failed, see $CACHE/bud.log"; }
took[bud]=$((SECONDS - t0))
cached_steps="$(grep -c '^--> Using cache' "$CACHE/bud.log" || true)"
image_id="$(buildah inspect --type image --format '{{.FromImageID}}' "$IMAGE" | cut -c1-12)"

# 4. Run it: extract the filesystem and start the entrypoint as the image's user.
t0=$SECONDS
run="$(mktemp -d)"
pids=()
ctr=""
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [[ -n "$ctr" ]]; then buildah rm "$ctr" >/dev/null 2>&1 || true; fi
    if mountpoint -q "$run/rootfs/proc" 2>/dev/null; then umount -l "$run/rootfs/proc" || true; fi
    mountpoint -q "$run/rootfs/proc" 2>/dev/null || rm -rf --one-file-system "$run"
}
trap cleanup EXIT
ctr="$(buildah from --pull-never "$IMAGE")"
mnt="$(buildah mount "$ctr")"
mkdir -p "$run/rootfs"
cp -a "$mnt/." "$run/rootfs/"
buildah umount "$ctr" >/dev/null
buildah rm "$ctr" >/dev/null
ctr=""

# What the image declares, read back from it rather than assumed.
buildah inspect --type image "$IMAGE" >"$run/inspect.json"
field() {
    python3 - "$run/inspect.json" "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
oci, docker = d["OCIv1"]["config"], d["Docker"]["config"]
out = {
    "user": [oci.get("User") or ""],
    "workdir": [oci.get("WorkingDir") or "/"],
    "env": oci.get("Env") or [],
    "entry": (oci.get("Entrypoint") or []) + (oci.get("Cmd") or []),
    # HEALTHCHECK is Docker-format only: ["CMD", argv...] or ["CMD-SHELL", cmd].
    "healthcheck": (lambda t: t[1:] if t[:1] == ["CMD"] else ["/bin/sh", "-c"] + t[1:] if t[:1] == ["CMD-SHELL"] else [])(
        (docker.get("Healthcheck") or {}).get("Test") or []),
}[sys.argv[2]]
for a in out:
    print(a, end="\0")
PY
}
mapfile -d '' -t user_a < <(field user)
mapfile -d '' -t workdir_a < <(field workdir)
mapfile -d '' -t image_env < <(field env)
mapfile -d '' -t entry < <(field entry)
mapfile -d '' -t hc < <(field healthcheck)
user="${user_a[0]}" workdir="${workdir_a[0]}"
[[ "$user" == "10001:10001" ]] || die "image user is '$user', not 10001:10001"
((${#entry[@]})) || die "the image has no ENTRYPOINT/CMD"
((${#hc[@]})) || die "the image has no HEALTHCHECK (buildah keeps it only in the docker format)"

# The binary: stripped (no symbol table, no debug sections).
bin="$run/rootfs/usr/local/bin/sparta"
[[ -x "$bin" ]] || die "no /usr/local/bin/sparta in the image"
bin_info="$(file -b "$bin")"
[[ "$bin_info" == *", stripped"* ]] || die "the binary in the image is not stripped: $bin_info"
debug_sections="$(readelf -SW "$bin" | grep -cE ' \.(symtab|debug_[a-z]+) ' || true)"
[[ "$debug_sections" == 0 ]] || die "the binary in the image has $debug_sections .symtab/.debug_* sections"
bin_size="$(stat -c %s "$bin")"
rootfs_bytes="$(du -sb "$run/rootfs" | awk '{print $1}')"
image_human="$(buildah images --format '{{.Size}}' "$IMAGE" | head -n 1)"
buildah push --quiet "$IMAGE" "oci-archive:$run/image.tar" >/dev/null 2>"$run/push.log" \
    || { cat "$run/push.log" >&2; die "buildah push to an OCI archive failed"; }
archive_bytes="$(stat -c %s "$run/image.tar")"
rm -f "$run/image.tar"

mount -t proc proc "$run/rootfs/proc"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"

# The fixture upstream on the host, reached over loopback from the chroot.
fixture="$CACHE/fixture"
(cd "$ROOT/tests/fixture" && "$GO" build -o "$fixture" .) >"$CACHE/fixture-build.log" 2>&1 \
    || die "building tests/fixture failed, see $CACHE/fixture-build.log"
"$fixture" --listen 127.0.0.1:0 --addr-file "$run/fixture.addr" >"$run/fixture.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [[ -s "$run/fixture.addr" ]] && break; sleep 0.1; done
[[ -s "$run/fixture.addr" ]] || { cat "$run/fixture.log" >&2; die "the fixture did not start"; }
upstream="http://$(cat "$run/fixture.addr")"

# In the chroot, as `docker run` would start it: the image's env (listening
# on loopback here, not 0.0.0.0), its working dir, its user and entrypoint.
# env, chroot and sh all exec, so $! is sparta itself.
run_env=("${image_env[@]}" HOME="$workdir")
# shellcheck disable=SC2016 # $0 and $@ are the inner shell's.
env -i "${run_env[@]}" SPARTA_LISTEN="127.0.0.1:$port" SPARTA_UPSTREAM="$upstream" SPARTA_SUMDB_VERIFY=false \
    "$CHROOT" --userspec="$user" "$run/rootfs" /bin/sh -c 'cd "$0" && exec "$@"' "$workdir" "${entry[@]}" \
    >"$run/sparta.log" 2>&1 &
spid=$!
pids+=("$spid")
healthz=""
for _ in $(seq 1 150); do
    if healthz="$(curl -fsS "http://127.0.0.1:$port/healthz" 2>/dev/null)"; then break; fi
    kill -0 "$spid" 2>/dev/null || { cat "$run/sparta.log" >&2; die "sparta exited in the image"; }
    sleep 0.2
done
curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" || { cat "$run/sparta.log" >&2; die "/healthz did not answer"; }
comm="$(cat "/proc/$spid/comm")"
uid="$(awk '/^Uid:/ {print $2}' "/proc/$spid/status")"
[[ "$comm" == sparta && "$uid" == "${user%%:*}" ]] || die "the server is '$comm' as uid $uid, not sparta as ${user%%:*}"
log "/healthz answers (${healthz:-empty body}) from the image, as uid $uid"

# The HEALTHCHECK command, as the image declares it, inside the image; and
# that it can fail: with nothing on its port it must.
env -i "${run_env[@]}" SPARTA_LISTEN="127.0.0.1:$port" "$CHROOT" --userspec="$user" "$run/rootfs" "${hc[@]}" || die "HEALTHCHECK failed"
free_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
if env -i "${run_env[@]}" SPARTA_LISTEN="127.0.0.1:$free_port" "$CHROOT" --userspec="$user" "$run/rootfs" "${hc[@]}" 2>/dev/null; then
    die "HEALTHCHECK passes with nothing listening on its port"
fi
log "HEALTHCHECK passes, and fails with nothing listening"

# A go build through the proxy in the image: GOPROXY is only the image (no
# direct), the module cache is empty, so every module comes through it.
work="$run/gowork"
mkdir -p "$work"
cat >"$work/go.mod" <<GOMOD
module example.com/imagecheck

go 1.21

require fixture.test/graph/a v1.0.0
GOMOD
cat >"$work/main.go" <<'GO'
package main

import _ "fixture.test/graph/a"

func main() {}
GO
(cd "$work" && env GOPROXY="http://127.0.0.1:$port" GOSUMDB=off GOFLAGS=-mod=mod GOTOOLCHAIN=local \
    GOPRIVATE= GONOPROXY= GONOSUMDB= GOMODCACHE="$run/modcache" GOPATH="$run/gopath" \
    "$GO" build -o /dev/null . >"$run/gobuild.log" 2>&1) \
    || { cat "$run/gobuild.log" >&2; cat "$run/sparta.log" >&2; die "go build through the image failed"; }
chmod -R u+w "$run/modcache" 2>/dev/null || true
stored="$(find "$run/rootfs$workdir" -name '*.zip' -user "${user%%:*}" | wc -l)"
((stored >= 3)) || die "the image's store holds $stored module zips after the go build (want graph/a, b, c)"
log "go build through the image works ($stored zips in its store, written as uid ${user%%:*})"
took[run]=$((SECONDS - t0))
took[total]=$((SECONDS - start_all))

mb() { python3 -c 'import sys; print("%.1f MB" % (int(sys.argv[1]) / 1e6))' "$1"; }
report="# Container image: \`make test-image\` ($(date -u +%Y-%m-%d))

deploy/Dockerfile built with \`buildah bud --isolation chroot --layers --format docker\` (buildah $(buildah --version | awk '{print $3}')),
base \`$BASE\` from debootstrap, builder \`$BUILDER\` from the machine's rustc $have; commit ${commit:0:12}.

| what | result |
| --- | --- |
| image $IMAGE | $image_human (\`buildah images\`); files $(mb "$rootfs_bytes"); OCI archive (gzip layers) $(mb "$archive_bytes") |
| binary /usr/local/bin/sparta | $(mb "$bin_size") ($bin_size bytes) |
| stripped | yes (\`file\`: stripped; readelf: no .symtab, no .debug_*) |
| user | $user; sparta ran as uid $uid |
| /healthz | 200 |
| HEALTHCHECK | passes; fails with nothing listening |
| go build through the image | ok (fixture.test/graph/a -> b -> c; $stored zips stored) |
| time | total ${took[total]} s: base ${took[base]} s, builder ${took[builder]} s, vendor ${took[vendor]} s, bud ${took[bud]} s ($cached_steps steps from cache), run and checks ${took[run]} s |
"
printf '%s\n' "$report"
if [[ "$RESULTS" != none ]]; then
    mkdir -p "$(dirname "$RESULTS")"
    printf '%s\n' "$report" >"$RESULTS"
    log "wrote ${RESULTS#"$ROOT"/}"
fi
log "ok: $IMAGE ($image_id)"
