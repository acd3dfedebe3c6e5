# shellcheck shell=bash
# Bench rows for modules straight from git (issue #10), sourced by bench/run.sh
# with its helpers in scope. A git host is `git http-backend` behind
# tests/gitserver on loopback; the go command reaches it through a git
# `insteadOf`, Sparta through `--vcs-map` (as in tests/support/git.rs).
#   a. a cold private module through Sparta vs `go mod download` with
#      GOPROXY=direct on the same repository (target <= 1.0x)
#   b. a second version of a repository Sparta has mirrored (the first
#      request fetched one tag, the mirror was completed in the background),
#      beside the first one cold: Sparta's time for .info, .mod and .zip (<= 0.3x)
#   c. Sparta's peak RSS while it builds a 100 MiB module zip from git
# VCS_COMMITS, VCS_KIB and VCS_ZIP_MIB resize the repositories.

need_fixture
VCS_DIR=$WORK/vcs
VCS_HOST=git.sparta.test
VCS_COMMITS=${VCS_COMMITS:-300}
VCS_KIB=${VCS_KIB:-48}
VCS_ZIP_MIB=${VCS_ZIP_MIB:-100}
VCS_RUNS=3
[ "$QUICK" = 1 ] && VCS_RUNS=1
mkdir -p "$VCS_DIR/repos"

vcs_setup() {
  (cd "$ROOT/tests/gitserver" && GOPROXY=off GOFLAGS=-mod=mod go build -o "$VCS_DIR/gitserver" .) ||
    return 1
  "$VCS_DIR/gitserver" --listen 127.0.0.1:0 --root "$VCS_DIR/repos" --host "$VCS_HOST" \
    >"$VCS_DIR/gitserver.out" 2>"$VCS_DIR/gitserver.log" &
  VCS_GIT_PID=$!
  PIDS+=("$VCS_GIT_PID")
  wait_file "$VCS_DIR/gitserver.out" "$VCS_GIT_PID" || return 1
  VCS_GIT_URL=http://$(sed -n 's/^listening on //p' "$VCS_DIR/gitserver.out")
  printf '[url "%s/"]\n\tinsteadOf = https://%s/\n[protocol]\n\tallow = always\n' \
    "$VCS_GIT_URL" "$VCS_HOST" >"$VCS_DIR/gitconfig"
  # The history repository: VCS_COMMITS commits, a tag every 30.
  git init -q --bare -b main "$VCS_DIR/repos/big.git"
  python3 "$BENCH/sections/vcs_repo.py" "$VCS_HOST/big.git" "$VCS_COMMITS" "$VCS_KIB" 40 30 |
    git -C "$VCS_DIR/repos/big.git" fast-import --quiet || return 1
  # The zip repository: one commit of VCS_ZIP_MIB files of 1 MiB.
  git init -q --bare -b main "$VCS_DIR/repos/zip.git"
  python3 "$BENCH/sections/vcs_repo.py" "$VCS_HOST/zip.git" "$VCS_ZIP_MIB" 1024 100000 0 raw |
    git -C "$VCS_DIR/repos/zip.git" fast-import --quiet || return 1
}

# vcs_sparta NAME: a fresh Sparta (own store and mirrors) routing the host to git.
vcs_sparta() {
  SPARTA_N=$((SPARTA_N + 1))
  local ready=$WORK/sparta-$SPARTA_N.addr d=$VCS_DIR/$1
  rm -rf "$d"
  mkdir -p "$d/store" "$d/spool"
  "$SPARTA" serve --listen 127.0.0.1:0 --ready-file "$ready" --storage "$d/store" \
    --upstream "$FX" --spool-dir "$d/spool" --nosumdb "$NOSUMDB" \
    --route "$VCS_HOST=direct" --vcs-map "$VCS_HOST/*=$VCS_GIT_URL/{rest}" \
    --vcs-allow-loopback --vcs-insecure "$VCS_HOST" --vcs-cache-dir "$d/mirrors" \
    >"$WORK/sparta-$SPARTA_N.log" 2>&1 &
  SPARTA_PID=$!
  PIDS+=("$SPARTA_PID")
  wait_file "$ready" "$SPARTA_PID" || return 1
  SP=http://$(cat "$ready")
}

# vcs_download PROXY TARGET OUT: `go mod download -json` into an empty module
# cache; prints the seconds it took; the JSON is left in OUT. GONOSUMDB, not
# GOPRIVATE: GOPRIVATE also sets GONOPROXY, and the go command would go to
# git itself instead of through Sparta.
vcs_download() {
  local proxy=$1 target=$2 out=$3 cache t0 t1
  cache=$(mktemp -d "$VCS_DIR/modcache.XXXXXX")
  t0=$(now_ms)
  (cd "$VCS_DIR" && GOPROXY=$proxy GONOSUMDB=$VCS_HOST GOMODCACHE=$cache \
    GIT_CONFIG_GLOBAL=$VCS_DIR/gitconfig GIT_TERMINAL_PROMPT=0 go mod download -json "$target" >"$out" 2>&1) ||
    { rm -rf "$cache"; echo fail; return 0; }
  t1=$(now_ms)
  rm -rf "$cache"
  calc "($t1 - $t0) / 1000" 3
}
# vcs_files VERSION: seconds for Sparta to answer .info, .mod and .zip of
# VERSION one after the other on one kept-alive connection (as the go
# command asks them), or fail. One curl for the three: three curl starts
# (~7 ms each here) would be timed too, and that is not the proxy's time.
vcs_files() {
  local t0 t1 u=$SP/$VCS_MOD/@v/$1 codes
  t0=$(now_ms)
  codes=$(curl -s -o /dev/null -o /dev/null -o /dev/null -w '%{http_code} ' "$u.info" "$u.mod" "$u.zip" || true)
  t1=$(now_ms)
  [ "$codes" = "200 200 200 " ] || { echo fail; return 0; }
  calc "($t1 - $t0) / 1000" 3
}
# vcs_mirrored: waits until Sparta has completed the mirror in the
# background after the first (one-tag, shallow) fetch: two fetches done.
vcs_mirrored() {
  local n
  for _ in $(seq 1200); do
    n=$(curl -s "$SP/metrics" | awk '/^sparta_vcs_operations_total\{.*op="fetch".*outcome="ok"/ {s += $2} END {print s + 0}')
    [ "$n" -ge 2 ] && return 0
    sleep 0.1
  done
  return 1
}
vcs_sum() { sed -nE 's/^\s*"Sum": "([^"]*)".*/\1/p' "$1"; }

if ! vcs_setup; then
  check_fail "vcs: git host and repositories" "see $VCS_DIR/gitserver.log"
else
  VCS_SIZE=$(du -sk "$VCS_DIR/repos/big.git" | awk '{printf "%.1f", $1 / 1024}')
  VCS_MOD=$VCS_HOST/big.git
  VCS_FIRST=v1.0.4
  VCS_SECOND=v1.0.8
  : >"$VCS_DIR/direct.txt"
  : >"$VCS_DIR/cold.txt"
  : >"$VCS_DIR/first.txt"
  : >"$VCS_DIR/second.txt"
  VCS_BAD=
  for r in $(seq "$VCS_RUNS"); do
    # a: the go command, direct and through a cold Sparta.
    d=$(vcs_download direct "$VCS_MOD@$VCS_FIRST" "$VCS_DIR/direct.json")
    vcs_sparta "vcs-$r" || { VCS_BAD="sparta starts"; break; }
    c=$(vcs_download "$SP" "$VCS_MOD@$VCS_FIRST" "$VCS_DIR/cold.json")
    s2=$(vcs_download "$SP" "$VCS_MOD@$VCS_SECOND" "$VCS_DIR/second.json")
    d2=$(vcs_download direct "$VCS_MOD@$VCS_SECOND" "$VCS_DIR/direct2.json")
    stop_sparta
    # b: Sparta's own time for the three files the go command asks
    # (.info, .mod, .zip), a first version cold, then a second one.
    vcs_sparta "vcs-files-$r" || { VCS_BAD="sparta starts"; break; }
    f1=$(vcs_files "$VCS_FIRST")
    vcs_mirrored || { VCS_BAD="the mirror was not completed within 120 s"; break; }
    f2=$(vcs_files "$VCS_SECOND")
    stop_sparta
    log "   vcs round $r: direct $d s, cold through Sparta $c s; Sparta's files: first $f1 s, second version $f2 s"
    echo "$d" >>"$VCS_DIR/direct.txt"
    echo "$c" >>"$VCS_DIR/cold.txt"
    echo "$f1" >>"$VCS_DIR/first.txt"
    echo "$f2" >>"$VCS_DIR/second.txt"
    if [[ "$d $c $s2 $d2 $f1 $f2" == *fail* ]]; then
      VCS_BAD="a download failed: $(tail -c 300 "$VCS_DIR/cold.json" "$VCS_DIR/second.json" | tr '\n' ' ')"
      break
    fi
    if [ "$(vcs_sum "$VCS_DIR/cold.json")" != "$(vcs_sum "$VCS_DIR/direct.json")" ] ||
      [ "$(vcs_sum "$VCS_DIR/second.json")" != "$(vcs_sum "$VCS_DIR/direct2.json")" ]; then
      VCS_BAD="h1: through Sparta differs from GOPROXY=direct"
      break
    fi
  done
  if [ -n "$VCS_BAD" ]; then
    check_fail "vcs: private module through Sparta equals GOPROXY=direct" "$VCS_BAD"
  else
    check_ok "vcs: private module through Sparta equals GOPROXY=direct" "$VCS_MOD $VCS_FIRST, $VCS_SECOND: same h1: for zip and go.mod"
  fi
  VCS_D=$(median <"$VCS_DIR/direct.txt")
  VCS_C=$(median <"$VCS_DIR/cold.txt")
  VCS_F1=$(median <"$VCS_DIR/first.txt")
  VCS_S=$(median <"$VCS_DIR/second.txt")
  VCS_RC=$(ratio "$VCS_C" "$VCS_D")
  VCS_RS=$(ratio "$VCS_S" "$VCS_F1")
  extra_row "vcs" "cold private module from git, $VCS_SIZE MiB / $VCS_COMMITS commits (s)" "$VCS_C" "GOPROXY=direct $VCS_D" "$VCS_RC" "<= 1.0" "$(met_ratio "$VCS_RC" '<=' 1.0)"
  extra_row "vcs" "second version of a mirrored repository: .info+.mod+.zip (s)" "$VCS_S" "first version, cold $VCS_F1" "$VCS_RS" "<= 0.3x first" "$(met_ratio "$VCS_RS" '<=' 0.3)"
  chart_point "vcs cold private module vs direct" "$VCS_RC" 1.0 le
  chart_point "vcs second version vs first" "$VCS_RS" 0.3 le

  # c. Peak RSS: a fresh Sparta builds one VCS_ZIP_MIB module zip.
  if vcs_sparta vcs-zip; then
    z0=$(hwm_kib "$SPARTA_PID")
    code=$(curl -s -o "$VCS_DIR/zip.zip" -w '%{http_code}' "$SP/$VCS_HOST/zip.git/@v/v1.0.0.zip" || true)
    z1=$(hwm_kib "$SPARTA_PID")
    zbytes=$(stat -c %s "$VCS_DIR/zip.zip" 2>/dev/null || echo 0)
    stop_sparta
    if [ "$code" = 200 ] && [ "$zbytes" -gt $((VCS_ZIP_MIB * 1000000)) ]; then
      check_ok "vcs: ${VCS_ZIP_MIB} MiB module zip built from git" "$zbytes bytes"
    else
      check_fail "vcs: ${VCS_ZIP_MIB} MiB module zip built from git" "status $code, $zbytes bytes"
    fi
    VCS_ZIP_PEAK=$(mib "$z1")
    extra_row "vcs" "peak RSS building a $(mib "$((zbytes / 1024))") MiB module zip from git (MiB)" "$VCS_ZIP_PEAK" "before: $(mib "$z0")" "" "<= 64 (streamed)" "$(met_ratio "$VCS_ZIP_PEAK" '<=' 64)"
  else
    check_fail "vcs: sparta starts for the zip row" "see $WORK/sparta-$SPARTA_N.log"
  fi
  stop_pid "$VCS_GIT_PID"
fi
