#!/usr/bin/env bash
# `make bench`: Sparta measured side by side with nginx (the practical upper
# bound for serving files) and with going straight to the upstream, in one
# run on one machine, so the ratios hold on a noisy shared machine.
#
# Prints a table and writes bench/results/<date>.md. Never fails on a time;
# fails (exit 1, FAILED rows in the table) when something is broken: a server
# that does not start, a download that fails or differs, a wrong dedup count.
#
# Environment:
#   BENCH_LIVE=1         also download a real public module graph through Sparta
#                        with the machine's Go module proxy as upstream (section 7)
#   BENCH_LIVE_MODULE    the module whose graph section 7 downloads
#                        [github.com/gin-gonic/gin@v1.10.0]
#   BENCH_QUICK=1        short runs, for working on the harness itself
#   BENCH_KEEP=1         keep the work directory (logs, stores) afterwards
#   BENCH_NO_RESULTS=1   print the table only, write no results file
#   BENCH_CORE=0         skip the built-in sections 0-7: only bench/sections/*.sh
#                        run (with BENCH_SECTIONS, one section alone)
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
cd "$ROOT"

QUICK=${BENCH_QUICK:-0}
LIVE=${BENCH_LIVE:-0}
CORE=${BENCH_CORE:-1}
LIVE_MODULE=${BENCH_LIVE_MODULE:-github.com/gin-gonic/gin@v1.10.0}

# Sizes and durations. Rounds alternate the servers so that load from other
# work on the machine falls on both sides alike.
SMALL_CONNS=64
ZIP_CONNS=16
WIDE=64
LATENCY=20ms
LARGE=40MiB
DEDUP_OBJECTS=20
DEDUP_PER_OBJECT=100
if [ "$QUICK" = 1 ]; then
  SMALL_SECS=2 SMALL_ROUNDS=1 ZIP_SECS=3 ROUNDS=1 GRAPH_RUNS=1 DEDUP_RUNS=1 STARTS=3 LIVE_RUNS=1
else
  SMALL_SECS=3 SMALL_ROUNDS=5 ZIP_SECS=6 ROUNDS=3 GRAPH_RUNS=5 DEDUP_RUNS=3 STARTS=10 LIVE_RUNS=3
fi
CACHE_SIZE_MIB=256 # Sparta's default --cache-size; the RSS target adds it

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- checks ---
CHECKS=()
FAILED=0
check_ok() { CHECKS+=("| $1 | ok | ${2:-} |"); }
check_fail() {
  CHECKS+=("| $1 | **FAILED** | ${2:-} |")
  FAILED=1
  log "CHECK FAILED: $1: ${2:-}"
}
# die: a broken harness step that makes the rest meaningless.
die() {
  check_fail "$1" "${2:-}"
  FATAL=1
  log "stopping: $1"
  exit 1
}
FATAL=0

# ------------------------------------------------------ processes, cleanup ---
WORK=$(mktemp -d /tmp/sparta-bench.XXXXXX)
chmod 755 "$WORK" # nginx workers run as an unprivileged user
PIDS=()
SAMPLER_PID=

stop_pid() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  [ -n "$SAMPLER_PID" ] && stop_pid "$SAMPLER_PID"
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  # The S3 sections' own server (scripts/s3-server.sh), data and all.
  [ -d "$WORK/s3" ] && SPARTA_S3_STATE_DIR=$WORK/s3 bash "$ROOT/scripts/s3-server.sh" stop >/dev/null 2>&1
  if [ "$FATAL" = 1 ] && [ "${#CHECKS[@]}" -gt 0 ]; then
    printf '\nChecks:\n| check | result | detail |\n|---|---|---|\n' >&2
    printf '%s\n' "${CHECKS[@]}" >&2
  fi
  if [ "${BENCH_KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
    log "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'log "harness broke at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT TERM

# ----------------------------------------------------------------- tools ---
apt_install() {
  local missing=()
  for cmd_pkg in "$@"; do
    command -v "${cmd_pkg%%:*}" >/dev/null 2>&1 || missing+=("${cmd_pkg#*:}")
  done
  [ "${#missing[@]}" = 0 ] && return 0
  log "installing ${missing[*]} (Debian)"
  local sudo=
  [ "$(id -u)" = 0 ] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  # The package lists may be stale or absent: update once, only if needed.
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    { $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
}
export PATH=$PATH:/usr/sbin:/sbin
apt_install nginx:nginx wrk:wrk curl:curl || die "install nginx, wrk, curl" "apt-get failed"
command -v go >/dev/null || die "go toolchain" "no go on PATH (make bench runs make go-toolchain first)"

# Every go command below runs with the settings it is given here, not with the
# user's go env; the live section reads the machine's GOPROXY first.
MACHINE_GOPROXY=$(go env GOPROXY 2>/dev/null || true)
export GOTOOLCHAIN=local GOENV=off GOWORK=off GOFLAGS=-modcacherw GONOSUMDB= GOPRIVATE= GONOPROXY= GOINSECURE=

log "building sparta (release), the fixture upstream and the bench tool"
t0=$(date +%s)
cargo build --release -q -p sparta || die "build sparta" "cargo build --release -p sparta failed"
BUILD_SECS=$(($(date +%s) - t0))
SPARTA=$ROOT/target/release/sparta
(cd "$BENCH/tool" && GOPROXY=off go build -o "$WORK/benchtool" .) || die "build bench tool" "go build bench/tool failed"
# The fixture needs golang.org/x/mod: from the module cache or the machine's proxy.
(cd "$ROOT/tests/fixture" && GOPROXY=$MACHINE_GOPROXY GOENV= GOFLAGS= go build -o "$WORK/fixture" .) ||
  die "build fixture" "go build tests/fixture failed"
BT=$WORK/benchtool

# --------------------------------------------------------------- helpers ---
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# kv KEY LINE: the value of KEY=value in a line of key=value pairs.
kv() { sed -nE "s/.*(^| )$1=([^ ]*).*/\2/p" <<<"$2"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }
calc() { awk "BEGIN {printf \"%.${2:-2}f\", $1}"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { calc "$1 / 1024" 1; }
# The machine's count of connections dropped because a listen queue was full.
listen_overflows() {
  awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) n[i] = $i; h = 1 } else { for (i = 1; i <= NF; i++) if (n[i] == "ListenOverflows") print $i } }' /proc/net/netstat 2>/dev/null || echo 0
}

# metric_sum URL NAME [LABEL...]: the sum of the series of NAME at URL/metrics
# whose labels contain every LABEL (e.g. 'op="get"').
metric_sum() {
  local url=$1 name=$2
  shift 2
  curl -sf "$url/metrics" | awk -v name="$name" -v want="$*" '
    BEGIN { n = split(want, w, " ") }
    index($0, name) == 1 {
      rest = substr($0, length(name) + 1)
      if (rest !~ /^[{ ]/) next
      for (i = 1; i <= n; i++) if (index(rest, w[i]) == 0) next
      sum += $NF
    }
    END { printf "%d\n", sum }'
}

wait_file() {
  local f=$1 pid=$2
  for _ in $(seq 1000); do
    [ -s "$f" ] && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.01
  done
  return 1
}

FIXTURE_PID=
FX=
start_fixture() {
  rm -f "$WORK/fixture.addr"
  "$WORK/fixture" --listen 127.0.0.1:0 --addr-file "$WORK/fixture.addr" \
    --latency "$LATENCY" --wide "$WIDE" --large-size "$LARGE" >"$WORK/fixture.log" 2>&1 &
  FIXTURE_PID=$!
  PIDS+=("$FIXTURE_PID")
  wait_file "$WORK/fixture.addr" "$FIXTURE_PID" || die "fixture upstream starts" "see $WORK/fixture.log"
  FX=http://$(cat "$WORK/fixture.addr")
}

SPARTA_N=0
SPARTA_PID=
# The fixture's modules are in no checksum database: Sparta verifies the rest,
# as a deployment with private modules would.
NOSUMDB=fixture.test
SP=
# start_sparta STORE [UPSTREAM]: a Sparta with default settings (metrics and
# request logs on, logs to a file) whose upstream is the fixture; STORE is a
# directory or an s3:// URL; flags in SPARTA_EXTRA are added.
SPARTA_EXTRA=()
start_sparta() {
  SPARTA_N=$((SPARTA_N + 1))
  local ready=$WORK/sparta-$SPARTA_N.addr
  case $1 in s3://*) ;; *) mkdir -p "$1" ;; esac
  mkdir -p "$WORK/spool-$SPARTA_N"
  "$SPARTA" serve --listen 127.0.0.1:0 --ready-file "$ready" --storage "$1" \
    --upstream "${2:-$FX}" --spool-dir "$WORK/spool-$SPARTA_N" --nosumdb "$NOSUMDB" \
    "${SPARTA_EXTRA[@]}" >"$WORK/sparta-$SPARTA_N.log" 2>&1 &
  SPARTA_PID=$!
  PIDS+=("$SPARTA_PID")
  wait_file "$ready" "$SPARTA_PID" || die "sparta starts" "see $WORK/sparta-$SPARTA_N.log"
  SP=http://$(cat "$ready")
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' "$SP/readyz" || true)
  [ "$code" = 200 ] || die "sparta /readyz" "status $code"
}
stop_sparta() { stop_pid "$SPARTA_PID"; }

# cpu_ticks PID...: user+system CPU time the processes have used, in clock ticks.
cpu_ticks() {
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo $t
}
CLK_TCK=$(getconf CLK_TCK)
# wrk_run URL PATHS_FILE CONNS SECS [PID...]: prints the WRK line of
# bench/wrk/paths.lua, plus cpu_ticks= used by the server's processes: CPU per
# request holds on a loaded machine where requests per second do not.
wrk_run() {
  local out url=$1 paths=$2 conns=$3 secs=$4 c0 c1
  shift 4
  c0=$(cpu_ticks "$@")
  out=$(wrk -t2 -c"$conns" -d"$secs"s --timeout 30s -s "$BENCH/wrk/paths.lua" "$url" -- "$paths" 2>&1) || {
    echo "WRK failed"
    return 0
  }
  c1=$(cpu_ticks "$@")
  grep '^WRK ' <<<"$out" | sed "s/\$/ cpu_ticks=$((c1 - c0))/" || echo "WRK failed: $(tr '\n' ' ' <<<"$out" | cut -c1-200)"
}
# cpu_per FILE KIND: median over rounds of server CPU per request (us, KIND=req)
# or per GB served (s, KIND=gb).
cpu_per() {
  grep '^WRK requests=' "$1" | while read -r l; do
    if [ "$2" = req ]; then
      calc "$(kv cpu_ticks "$l") * 1e6 / $CLK_TCK / $(kv requests "$l")" 1
    else
      calc "$(kv cpu_ticks "$l") / $CLK_TCK / ($(kv bytes "$l") / 1e9)" 2
    fi
    echo
  done | median
}
wrk_errors() {
  local line=$1 sum=0 k
  for k in err_connect err_read err_write err_status err_timeout; do
    sum=$((sum + $(kv $k "$line")))
  done
  echo $sum
}

# go_download DIR PROXY WANT_SUMS MIN_ZIPS: `go mod download -json all` with an
# empty module cache; prints the seconds it took; fails if any hash differs.
go_download() {
  local dir=$1 proxy=$2 want=$3 min=$4 mc=$WORK/modcache t0 t1
  rm -rf "$mc"
  t0=$(date +%s%N)
  (cd "$dir" && GOMODCACHE=$mc GOPROXY=$proxy GOSUMDB=off GOFLAGS='-modcacherw -mod=mod' \
    go mod download -json all >"$WORK/download.json" 2>"$WORK/download.err") || {
    echo "go mod download failed: $(tail -c 300 "$WORK/download.err" | tr '\n' ' ')" >&2
    return 1
  }
  t1=$(date +%s%N)
  "$BT" sumcheck -want "$want" -min "$min" <"$WORK/download.json" >"$WORK/sumcheck.out" 2>&1 || {
    echo "$(cat "$WORK/sumcheck.out")" >&2
    return 1
  }
  rm -rf "$mc"
  calc "($t1 - $t0) / 1e9" 3
}

# The go command's parallelism for graph loading and downloads: GOMAXPROCS,
# which is the CPU count here. The replay keeps as many requests in flight.
GO_PAR=$(nproc)
log_lines() { wc -l <"$1" 2>/dev/null || echo 0; }
# replay_download LOG FROM_LINE FROM_REQS OUT: the module GET requests Sparta
# logged after line FROM_LINE of LOG (one download's, in order) into OUT, checked
# against Sparta's request counter (FROM_REQS before the download, at $SP);
# then the bench tool sends them again with GO_PAR in flight, 3 times.
# Prints the tool's line (median_ms=...) or why it failed.
replay_download() {
  local log=$1 from=$2 reqs0=$3 out=$4 want n
  want=$(($(proxy_gets "$SP") - reqs0))
  # The request log is written in batches of a few ms.
  for _ in $(seq 50); do
    tail -n +"$((from + 1))" "$log" | grep 'method=GET' | grep 'status=200' |
      sed -nE 's/.* path="?([^" ]+)"?( .*|$)/\1/p' | grep -E '/@v/|/@latest$' >"$out" || true
    n=$(wc -l <"$out")
    [ "$n" -ge "$want" ] && break
    sleep 0.1
  done
  if [ "$n" != "$want" ] || [ "$n" = 0 ]; then
    echo "$n GET 200 lines in the request log, Sparta counted $want requests"
    return 1
  fi
  "$BT" replay -base "$SP" -c "$GO_PAR" -runs 3 <"$out" 2>&1
}
# replay_median FILE: the median of the runs' median_ms, in seconds.
replay_median() { { grep -o 'median_ms=[0-9.]*' "$1" || true; } | cut -d= -f2 | awk '{printf "%.3f\n", $1 / 1000}' | median; }

# rate FILE KIND: one rate per round (req/s, or MB/s of 10^6 bytes).
rate() {
  grep '^WRK requests=' "$1" | while read -r l; do
    if [ "$2" = req ]; then calc "$(kv requests "$l") / ($(kv duration_us "$l") / 1e6)" 0; else calc "$(kv bytes "$l") / $(kv duration_us "$l")" 1; fi
    echo
  done
}
# round_ratio KIND A B [C]: the median over rounds of A's rate over the best
# of B's (and C's) rate in the same round; rounds are side by side in time,
# so the ratio holds better than a ratio of medians when the load drifts.
round_ratio() {
  local kind=$1 a=$2
  shift 2
  local cols=("$a" "$@")
  local files=()
  for f in "${cols[@]}"; do
    rate "$f" "$kind" >"$f.rate"
    files+=("$f.rate")
  done
  paste "${files[@]}" | awk 'NF >= 2 { best = $2; for (i = 3; i <= NF; i++) if ($i > best) best = $i; if (best > 0) printf "%.4f\n", $1 / best }' | median
}

# toxi_start: one toxiproxy server (scripts/install-toxiproxy.sh) for the
# sections that need a slow or failing link; toxi_link adds a proxy to it.
TOXI=
toxi_start() {
  [ -n "$TOXI" ] && return 0
  local port
  TOXI_SERVER=$(bash "$ROOT/scripts/install-toxiproxy.sh") || die "toxiproxy" "scripts/install-toxiproxy.sh failed"
  TOXI_CLI=$(dirname "$TOXI_SERVER")/toxiproxy-cli
  port=$("$BT" freeport)
  "$TOXI_SERVER" -host 127.0.0.1 -port "$port" >"$WORK/toxiproxy.log" 2>&1 &
  PIDS+=("$!")
  TOXI=127.0.0.1:$port
  for _ in $(seq 200); do
    "$TOXI_CLI" -h "$TOXI" list >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  die "toxiproxy starts" "see $WORK/toxiproxy.log"
}
# toxi_link NAME UPSTREAM_HOSTPORT: a proxy; prints its listen address.
toxi_link() {
  local port
  port=$("$BT" freeport)
  "$TOXI_CLI" -h "$TOXI" create -l "127.0.0.1:$port" -u "$2" "$1" >/dev/null || die "toxiproxy link $1" "create failed"
  echo "127.0.0.1:$port"
}
toxi() { "$TOXI_CLI" -h "$TOXI" "$@" >/dev/null; }

S3_LAT_MS=2 # each way: about 4 ms of round trip, as a same-region bucket
# bench_s3_start: one S3 server of the bench's own (state in $WORK), behind
# a toxiproxy link; sets S3_URL_BASE and the AWS_* keys Sparta reads.
S3_STATE=$WORK/s3
bench_s3_start() {
  [ -n "${S3_LINK:-}" ] && return 0
  local env_file
  env_file=$(SPARTA_S3_STATE_DIR=$S3_STATE bash "$ROOT/scripts/s3-server.sh" start) || die "S3 server starts" "scripts/s3-server.sh start failed"
  [ -f "$S3_STATE/pid" ] && PIDS+=("$(cat "$S3_STATE/pid")")
  set -a
  # shellcheck source=/dev/null
  source "$env_file"
  set +a
  export AWS_ACCESS_KEY_ID=$SPARTA_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SPARTA_TEST_S3_SECRET_KEY
  toxi_start
  S3_LINK=$(toxi_link s3 "${SPARTA_TEST_S3_ENDPOINT#http://}")
  toxi toxic add -n s3-down -t latency -a latency=$S3_LAT_MS s3
  toxi toxic add -n s3-up --upstream -t latency -a latency=$S3_LAT_MS s3
  S3_FLAGS=(--s3-endpoint "http://$S3_LINK" --s3-path-style --s3-allow-http --s3-region "$SPARTA_TEST_S3_REGION")
  S3_URL_BASE=s3://$SPARTA_TEST_S3_BUCKET/bench-$(date +%s)-$$
  log "S3: versitygw at $SPARTA_TEST_S3_ENDPOINT via toxiproxy $S3_LINK (+${S3_LAT_MS}ms each way)"
}

# s3_ops URL: "get put head list" storage calls so far.
s3_ops() {
  local op out=
  for op in get put head list; do
    out="$out $(metric_sum "$1" sparta_storage_operation_duration_seconds_count "op=\"$op\"")"
  done
  echo "$out"
}
# lease_ops URL: "<takes> <releases>": lease calls, each one to three S3
# requests (a conditional PUT; a GET and a PUT more to take over; a GET and a
# DELETE to release), which s3_ops does not count.
lease_ops() {
  echo "$(metric_sum "$1" sparta_storage_operation_duration_seconds_count 'op="lease"') $(metric_sum "$1" sparta_storage_operation_duration_seconds_count 'op="release"')"
}
client_reqs() { metric_sum "$1" sparta_http_requests_total; }
# proxy_gets URL: GET requests for module files and answers (not /metrics,
# probes or pages) so far.
proxy_gets() {
  local r n=0
  for r in info mod zip list latest; do
    n=$((n + $(metric_sum "$1" sparta_http_requests_total "route=\"$r\"" 'method="GET"')))
  done
  echo $n
}

# ------------------------------------------------------------- machine ---
CPU_MODEL=$(sed -nE 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1)
CORES=$(nproc)
MEM_GIB=$(awk '/^MemTotal:/ {printf "%.0f", $2/1048576}' /proc/meminfo)
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
RUN_START=$(date -u +%H:%M)
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null || GIT_REV="$GIT_REV+dirty"
NGINX_V=$(nginx -v 2>&1 | sed 's/.*nginx\///')
GO_V=$(go env GOVERSION)
WRK_V=$({ wrk -v 2>&1 || true; } | head -1 | awk '{print $2}')
RUSTC_V=$(rustc --version | awk '{print $2}')
KERNEL=$(uname -r)
log "machine: $CORES cores, $CPU_MODEL, load $LOADAVG"

if [ "$CORE" = 1 ]; then
# ============================================================== section 0 ===
start_fixture
log "fixture upstream at $FX (latency $LATENCY, wide $WIDE, large $LARGE)"
curl -sf "$FX/_fixture/sums" >"$WORK/fixture.sum" || die "fixture sums" "GET /_fixture/sums failed"

# The warm Sparta: fill its store through it, and lay the same bytes out for
# nginx under the URL paths.
STORE=$WORK/store
WWW=$WORK/www
start_sparta "$STORE"
WARM_PID=$SPARTA_PID
WARM_URL=$SP
sleep 0.5
IDLE_START_KIB=$(rss_kib "$WARM_PID")

"$BT" paths -fixture "$FX" -kinds info,mod >"$WORK/small.paths"
LARGE_PATH=/fixture.test/large/@v/v1.0.0.zip
echo "$LARGE_PATH" >"$WORK/zip.paths"
SMALL_FILES=$(wc -l <"$WORK/small.paths")
log "filling Sparta's store: $SMALL_FILES .info/.mod files and a $LARGE zip"
cat "$WORK/small.paths" "$WORK/zip.paths" | "$BT" mirror -base "$SP" -fixture "$FX" -out "$WWW" -c 8 >"$WORK/mirror.out" 2>&1 &&
  check_ok "sparta serves every fixture file byte for byte" "$(cat "$WORK/mirror.out")" ||
  die "sparta serves every fixture file byte for byte" "$(tail -3 "$WORK/mirror.out" | tr '\n' ' ')"
LARGE_BYTES=$(stat -c %s "$WWW$LARGE_PATH")
chmod -R a+rX "$WWW"

NGX=$WORK/nginx
mkdir -p "$NGX"
NGX_ON=$("$BT" freeport)
NGX_OFF=$("$BT" freeport)
while [ "$NGX_OFF" = "$NGX_ON" ]; do NGX_OFF=$("$BT" freeport); done
sed -e "s#@PREFIX@#$NGX#g" -e "s#@ROOT@#$WWW#g" -e "s#@WORKERS@#$CORES#g" \
  -e "s#@PORT_SENDFILE@#$NGX_ON#g" -e "s#@PORT_NOSENDFILE@#$NGX_OFF#g" \
  "$BENCH/nginx.conf.in" >"$NGX/nginx.conf"
nginx -p "$NGX" -c "$NGX/nginx.conf" -e "$NGX/error.log" >"$NGX/stdout.log" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
for _ in $(seq 200); do
  curl -sf -o /dev/null "http://127.0.0.1:$NGX_OFF/" -H 'Connection: close' 2>/dev/null && break
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$NGX_OFF$LARGE_PATH" || true)" = 200 ] && break
  kill -0 "$NGINX_PID" 2>/dev/null || break
  sleep 0.05
done
kill -0 "$NGINX_PID" 2>/dev/null || die "nginx starts" "$(tail -3 "$NGX/error.log" "$NGX/stdout.log" 2>/dev/null | tr '\n' ' ')"
NGINX_ON_URL=http://127.0.0.1:$NGX_ON
NGINX_OFF_URL=http://127.0.0.1:$NGX_OFF
for u in "$NGINX_ON_URL" "$NGINX_OFF_URL"; do
  cat "$WORK/small.paths" "$WORK/zip.paths" | "$BT" mirror -base "$u" -fixture "$FX" -c 8 >"$WORK/nginx-check.out" 2>&1 ||
    die "nginx serves the same files" "$u: $(tail -2 "$WORK/nginx-check.out" | tr '\n' ' ')"
done
check_ok "nginx serves the same files byte for byte" "sendfile on and off"

# ============================================================== section 1 ===
log "1. warm .info/.mod: $SMALL_CONNS connections, ${SMALL_SECS}s x $SMALL_ROUNDS rounds per server"
wrk_run "$WARM_URL" "$WORK/small.paths" "$SMALL_CONNS" 1 >/dev/null
wrk_run "$NGINX_ON_URL" "$WORK/small.paths" "$SMALL_CONNS" 1 >/dev/null
: >"$WORK/small-sparta.txt"
: >"$WORK/small-nginx.txt"
NGINX_PIDS=("$NGINX_PID" $(pgrep -P "$NGINX_PID" || true))
for r in $(seq "$SMALL_ROUNDS"); do
  for side in sparta nginx; do
    url=$WARM_URL
    pids=("$WARM_PID")
    [ $side = nginx ] && url=$NGINX_ON_URL && pids=("${NGINX_PIDS[@]}")
    line=$(wrk_run "$url" "$WORK/small.paths" "$SMALL_CONNS" "$SMALL_SECS" "${pids[@]}")
    log "   round $r $side: $line"
    echo "$line" >>"$WORK/small-$side.txt"
  done
done
small_stats() { # FILE -> "rps p50_ms p99_ms errors"
  local f=$1 rps p50 p99 errs=0 line
  while read -r line; do
    case $line in WRK\ requests=*) ;; *)
      errs=$((errs + 1))
      continue
      ;;
    esac
    errs=$((errs + $(wrk_errors "$line")))
  done <"$f"
  rps=$(grep '^WRK requests=' "$f" | while read -r l; do calc "$(kv requests "$l") / ($(kv duration_us "$l") / 1e6)" 0; echo; done | median)
  p50=$(grep '^WRK requests=' "$f" | while read -r l; do calc "$(kv p50_us "$l") / 1000" 3; echo; done | median)
  p99=$(grep '^WRK requests=' "$f" | while read -r l; do calc "$(kv p99_us "$l") / 1000" 3; echo; done | median)
  echo "$rps $p50 $p99 $errs"
}
read -r S_RPS S_P50 S_P99 S_ERR < <(small_stats "$WORK/small-sparta.txt")
read -r N_RPS N_P50 N_P99 N_ERR < <(small_stats "$WORK/small-nginx.txt")
if [ "$S_ERR" = 0 ] && [ "$N_ERR" = 0 ] && [ "$S_RPS" != nan ] && [ "$N_RPS" != nan ]; then
  check_ok "warm .info/.mod load: no errors, every status 200" "sparta and nginx"
else
  check_fail "warm .info/.mod load: no errors, every status 200" "sparta errors $S_ERR, nginx errors $N_ERR (see $WORK/small-*.txt)"
fi

# ============================================================== section 2 ===
log "2. warm $LARGE zip: $ZIP_CONNS connections, ${ZIP_SECS}s x $ROUNDS rounds per server"
# Peak RSS during the zip runs: reset the high-water mark, and sample too.
echo 5 >"/proc/$WARM_PID/clear_refs" 2>/dev/null || true
: >"$WORK/rss-samples"
(
  for _ in $(seq 20000); do
    [ -e "$WORK/stop-sampler" ] && break
    rss_kib "$WARM_PID" >>"$WORK/rss-samples"
    sleep 0.05
  done
) &
SAMPLER_PID=$!
: >"$WORK/zip-sparta.txt"
: >"$WORK/zip-nginx-on.txt"
: >"$WORK/zip-nginx-off.txt"
for r in $(seq "$ROUNDS"); do
  for side in sparta nginx-on nginx-off; do
    pids=("${NGINX_PIDS[@]}")
    case $side in
    sparta) url=$WARM_URL pids=("$WARM_PID") ;;
    nginx-on) url=$NGINX_ON_URL ;;
    nginx-off) url=$NGINX_OFF_URL ;;
    esac
    line=$(wrk_run "$url" "$WORK/zip.paths" "$ZIP_CONNS" "$ZIP_SECS" "${pids[@]}")
    log "   round $r $side: $line"
    echo "$line" >>"$WORK/zip-$side.txt"
  done
done
touch "$WORK/stop-sampler"
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=
ZIP_PEAK_KIB=$(sort -n "$WORK/rss-samples" | tail -1)
HWM=$(hwm_kib "$WARM_PID")
[ "${HWM:-0}" -gt "${ZIP_PEAK_KIB:-0}" ] && ZIP_PEAK_KIB=$HWM
zip_stats() { # FILE -> "MB/s errors" (MB = 10^6 bytes)
  local f=$1 errs=0 line mbs
  while read -r line; do
    case $line in WRK\ requests=*) ;; *)
      errs=$((errs + 1))
      continue
      ;;
    esac
    errs=$((errs + $(wrk_errors "$line")))
  done <"$f"
  mbs=$(grep '^WRK requests=' "$f" | while read -r l; do calc "$(kv bytes "$l") / $(kv duration_us "$l")" 1; echo; done | median)
  echo "$mbs $errs"
}
read -r Z_S Z_S_ERR < <(zip_stats "$WORK/zip-sparta.txt")
read -r Z_ON Z_ON_ERR < <(zip_stats "$WORK/zip-nginx-on.txt")
read -r Z_OFF Z_OFF_ERR < <(zip_stats "$WORK/zip-nginx-off.txt")
Z_N=$Z_ON
Z_N_MODE=on
awk "BEGIN {exit !($Z_OFF > $Z_ON)}" && {
  Z_N=$Z_OFF
  Z_N_MODE=off
}
if [ $((Z_S_ERR + Z_ON_ERR + Z_OFF_ERR)) = 0 ] && [ "$Z_S" != nan ]; then
  check_ok "warm zip load: no errors, every status 200" "sparta, nginx sendfile on and off"
else
  check_fail "warm zip load: no errors, every status 200" "errors: sparta $Z_S_ERR, nginx on $Z_ON_ERR, off $Z_OFF_ERR"
fi

sleep 1
IDLE_AFTER_KIB=$(rss_kib "$WARM_PID")
stop_pid "$NGINX_PID"
stop_sparta

# ============================================================== section 6 ===
log "6. start-up to first ready /readyz on the local store: $STARTS starts"
if out=$("$BT" startup -n "$STARTS" -ready-file "$WORK/startup.addr" -- \
  "$SPARTA" serve --listen 127.0.0.1:0 --ready-file "$WORK/startup.addr" --storage "$STORE" \
  --upstream "$FX" --spool-dir "$WORK/spool-startup" --nosumdb "$NOSUMDB" 2>&1); then
  STARTUP_MS=$(kv median_ms "$out")
  STARTUP_ALL=$(kv all_ms "$out")
  check_ok "sparta starts and answers /readyz $STARTS times" ""
else
  STARTUP_MS=nan
  STARTUP_ALL=
  check_fail "sparta starts and answers /readyz $STARTS times" "$out"
fi

# ========================================================== sections 3, 4 ===
GRAPH=$WORK/graph
mkdir -p "$GRAPH"
{
  printf 'module bench.local/wide\n\ngo 1.18\n\nrequire (\n'
  "$BT" paths -fixture "$FX" -prefix fixture.test/wide/ -kinds info | sed -E 's#^/(.*)/@v/(.*)\.info$#\t\1 \2#'
  printf ')\n'
} >"$GRAPH/go.mod"
GRAPH_MODULES=$(grep -c '^	' "$GRAPH/go.mod")

log "3-4. wide graph ($GRAPH_MODULES modules, upstream latency $LATENCY): $GRAPH_RUNS runs each of direct, cold and warm Sparta"
: >"$WORK/graph-direct.txt"
: >"$WORK/graph-cold.txt"
: >"$WORK/graph-warm.txt"
: >"$WORK/graph-replay.txt"
GRAPH_FAIL=
GRAPH_REPLAY_FAIL=
for r in $(seq "$GRAPH_RUNS"); do
  if t=$(go_download "$GRAPH" "$FX" "$WORK/fixture.sum" "$GRAPH_MODULES" 2>"$WORK/graph.err"); then
    echo "$t" >>"$WORK/graph-direct.txt"
  else GRAPH_FAIL="direct: $(cat "$WORK/graph.err")"; fi
  start_sparta "$WORK/graph-store-$r"
  if t=$(go_download "$GRAPH" "$SP" "$WORK/fixture.sum" "$GRAPH_MODULES" 2>"$WORK/graph.err"); then
    echo "$t" >>"$WORK/graph-cold.txt"
  else GRAPH_FAIL="cold sparta: $(cat "$WORK/graph.err")"; fi
  log_from=$(log_lines "$WORK/sparta-$SPARTA_N.log")
  req_from=$(proxy_gets "$SP")
  if t=$(go_download "$GRAPH" "$SP" "$WORK/fixture.sum" "$GRAPH_MODULES" 2>"$WORK/graph.err"); then
    echo "$t" >>"$WORK/graph-warm.txt"
  else GRAPH_FAIL="warm sparta: $(cat "$WORK/graph.err")"; fi
  GRAPH_IDLE_KIB=$(rss_kib "$SPARTA_PID")
  # The proxy's side of the warm download: its requests, replayed.
  if out=$(replay_download "$WORK/sparta-$SPARTA_N.log" "$log_from" "$req_from" "$WORK/graph-replay.paths"); then
    echo "$out" >>"$WORK/graph-replay.txt"
  else GRAPH_REPLAY_FAIL="run $r: $out"; fi
  stop_sparta
  log "   run $r: direct $(tail -1 "$WORK/graph-direct.txt")s, cold sparta $(tail -1 "$WORK/graph-cold.txt")s, warm sparta $(tail -1 "$WORK/graph-warm.txt")s, its requests replayed: $(tail -1 "$WORK/graph-replay.txt")"
done
G_DIRECT=$(median <"$WORK/graph-direct.txt")
G_COLD=$(median <"$WORK/graph-cold.txt")
G_WARM=$(median <"$WORK/graph-warm.txt")
G_REPLAY=$(replay_median "$WORK/graph-replay.txt")
G_REPLAY_N=$(kv requests "$(tail -1 "$WORK/graph-replay.txt")")
if [ -z "$GRAPH_REPLAY_FAIL" ]; then
  check_ok "warm wide graph's requests replayed: every one 200, as many as Sparta counted" "${G_REPLAY_N:-0} requests, $GO_PAR in flight"
else
  check_fail "warm wide graph's requests replayed: every one 200, as many as Sparta counted" "$GRAPH_REPLAY_FAIL"
fi
if [ -z "$GRAPH_FAIL" ]; then
  check_ok "go mod download of the wide graph: every hash matches the fixture" "$GRAPH_MODULES modules, $((GRAPH_RUNS * 3)) downloads"
else
  check_fail "go mod download of the wide graph: every hash matches the fixture" "$GRAPH_FAIL"
fi

# ============================================================== section 5 ===
log "5. dedup: $DEDUP_PER_OBJECT concurrent cold requests for each of $DEDUP_OBJECTS zips, $DEDUP_RUNS runs"
DEDUP_ZIPS=()
for n in $(seq 0 $((DEDUP_OBJECTS - 1))); do
  DEDUP_ZIPS+=("$(printf '/fixture.test/scratch/s%02d/@v/v1.0.0.zip' "$n")")
done
: >"$WORK/dedup.txt"
DEDUP_FAIL=
DEDUP_COUNTS=
DEDUP_OVERFLOWS=
for r in $(seq "$DEDUP_RUNS"); do
  start_sparta "$WORK/dedup-store-$r"
  ov0=$(listen_overflows)
  if out=$("$BT" dedup -base "$SP" -fixture "$FX" -n "$DEDUP_PER_OBJECT" "${DEDUP_ZIPS[@]}" 2>&1); then
    log "   run $r: $out"
    echo "$out" >>"$WORK/dedup.txt"
    once=$(kv paths_fetched_once "$out")
    up=$(kv upstream_for_paths "$out")
    DEDUP_COUNTS="$DEDUP_COUNTS${DEDUP_COUNTS:+, }$up"
    if [ "$once" != "$DEDUP_OBJECTS" ] || [ "$up" != "$DEDUP_OBJECTS" ]; then
      DEDUP_FAIL="run $r: $up upstream requests for $DEDUP_OBJECTS zips ($once fetched exactly once)"
    fi
  else
    log "   run $r: $out"
    DEDUP_FAIL="run $r: $(tail -1 <<<"$out")"
  fi
  DEDUP_OVERFLOWS="$DEDUP_OVERFLOWS${DEDUP_OVERFLOWS:+, }$(($(listen_overflows) - ov0))"
  stop_sparta
done
D_MS=$(grep -o 'elapsed_ms=[0-9.]*' "$WORK/dedup.txt" | cut -d= -f2 | median)
D_UP_TOTAL=$(grep -o 'upstream_total=[0-9]*' "$WORK/dedup.txt" | cut -d= -f2 | median)
if [ -z "$DEDUP_FAIL" ]; then
  check_ok "dedup: exactly one upstream request per zip, every body correct" "upstream zip requests per run: $DEDUP_COUNTS"
else
  check_fail "dedup: exactly one upstream request per zip, every body correct" "$DEDUP_FAIL"
fi

# ============================================================== section 7 ===
L_DIRECT=
if [ "$LIVE" = 1 ]; then
  LIVE_UP=$(tr ',|' '\n\n' <<<"$MACHINE_GOPROXY" | grep -E '^https?://' | paste -sd, - || true)
  LIVE_DIR=$WORK/live
  mkdir -p "$LIVE_DIR"
  if [ -z "$LIVE_UP" ]; then
    check_fail "live graph" "no http(s) entry in 'go env GOPROXY'"
  else
    log "7. live graph of $LIVE_MODULE through the machine's Go module proxy: $LIVE_RUNS runs each"
    printf 'module bench.local/live\n\ngo 1.21\n' >"$LIVE_DIR/go.mod"
    # Resolve the graph once, untimed; its hashes are what every timed run must get.
    if (cd "$LIVE_DIR" && GOMODCACHE=$WORK/live-prep GOPROXY=$LIVE_UP GOSUMDB=off GOFLAGS='-modcacherw -mod=mod' \
      go get "$LIVE_MODULE" >"$WORK/live-get.log" 2>&1 &&
      GOMODCACHE=$WORK/live-prep GOPROXY=$LIVE_UP GOSUMDB=off GOFLAGS='-modcacherw -mod=mod' \
        go mod download -json all >"$WORK/live-prep.json" 2>>"$WORK/live-get.log") &&
      "$BT" sums <"$WORK/live-prep.json" >"$WORK/live.sum"; then
      rm -rf "$WORK/live-prep"
      LIVE_ZIPS=$(grep -c -v '/go.mod ' "$WORK/live.sum" || true)
      : >"$WORK/live-direct.txt"
      : >"$WORK/live-cold.txt"
      : >"$WORK/live-warm.txt"
      : >"$WORK/live-replay.txt"
      LIVE_FAIL=
      for r in $(seq "$LIVE_RUNS"); do
        if t=$(go_download "$LIVE_DIR" "$LIVE_UP" "$WORK/live.sum" "$LIVE_ZIPS" 2>"$WORK/live.err"); then
          echo "$t" >>"$WORK/live-direct.txt"
        else LIVE_FAIL="direct: $(cat "$WORK/live.err")"; fi
        start_sparta "$WORK/live-store-$r" "$LIVE_UP"
        if t=$(go_download "$LIVE_DIR" "$SP" "$WORK/live.sum" "$LIVE_ZIPS" 2>"$WORK/live.err"); then
          echo "$t" >>"$WORK/live-cold.txt"
        else LIVE_FAIL="cold sparta: $(cat "$WORK/live.err")"; fi
        log_from=$(log_lines "$WORK/sparta-$SPARTA_N.log")
        req_from=$(proxy_gets "$SP")
        if t=$(go_download "$LIVE_DIR" "$SP" "$WORK/live.sum" "$LIVE_ZIPS" 2>"$WORK/live.err"); then
          echo "$t" >>"$WORK/live-warm.txt"
        else LIVE_FAIL="warm sparta: $(cat "$WORK/live.err")"; fi
        if out=$(replay_download "$WORK/sparta-$SPARTA_N.log" "$log_from" "$req_from" "$WORK/live-replay.paths"); then
          echo "$out" >>"$WORK/live-replay.txt"
        else LIVE_FAIL="warm sparta's requests replayed: $out"; fi
        stop_sparta
        log "   run $r: direct $(tail -1 "$WORK/live-direct.txt")s, cold sparta $(tail -1 "$WORK/live-cold.txt")s, warm sparta $(tail -1 "$WORK/live-warm.txt")s, its requests replayed: $(tail -1 "$WORK/live-replay.txt" 2>/dev/null)"
      done
      L_DIRECT=$(median <"$WORK/live-direct.txt")
      L_COLD=$(median <"$WORK/live-cold.txt")
      L_WARM=$(median <"$WORK/live-warm.txt")
      L_REPLAY=$(replay_median "$WORK/live-replay.txt")
      L_REPLAY_N=$(kv requests "$(tail -1 "$WORK/live-replay.txt")")
      if [ -z "$LIVE_FAIL" ]; then
        check_ok "live graph: every hash matches the direct download" "$LIVE_ZIPS zips"
      else
        check_fail "live graph: every hash matches the direct download" "$LIVE_FAIL"
      fi
    else
      check_fail "live graph: resolve $LIVE_MODULE" "$(tail -c 300 "$WORK/live-get.log" | tr '\n' ' ')"
    fi
  fi
fi

fi # CORE

# ====================================================== table helpers ===
yes_no() { awk "BEGIN {exit !($1)}" 2>/dev/null && echo yes || echo "**no**"; }
ratio() { awk "BEGIN {if (($2)+0 == 0) print \"nan\"; else printf \"%.2f\", ($1)/($2)}"; }
num_ok() { [[ $1 =~ ^[0-9.]+$ ]]; }
target_row() { # figure sparta baseline ratio target met
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$@"
}
met_ratio() { # ratio op limit
  num_ok "$1" || {
    echo "n/a"
    return
  }
  yes_no "$1 $2 $3"
}

fmt2() { if [[ $1 =~ ^[0-9.]+$ ]]; then calc "$1" 2; else echo nan; fi; }
# ============================================================ sections ===
# Each bench/sections/*.sh is sourced here, in name order, with everything
# above in scope (log, check_ok/check_fail, start_fixture, start_sparta, $BT,
# $WORK, ...). A section measures its own figures and adds table rows with
#   extra_row "<#>" "<figure>" "<sparta>" "<baseline>" "<ratio>" "<target>" "<met>"
# BENCH_SECTIONS=a,b runs only the sections whose file names (without .sh) are listed.
# What the core sections leave behind for the sections that build on it, made
# here when they did not run (BENCH_CORE=0): the fixture and its sums, the
# .info/.mod path list, a filled store ($STORE, no server on it), the wide
# graph's go.mod ($GRAPH).
need_fixture() {
  [ -n "$FX" ] || start_fixture
  [ -s "$WORK/fixture.sum" ] || curl -sf "$FX/_fixture/sums" >"$WORK/fixture.sum" || die "fixture sums" "GET /_fixture/sums failed"
}
need_small_paths() {
  need_fixture
  [ -s "$WORK/small.paths" ] || "$BT" paths -fixture "$FX" -kinds info,mod >"$WORK/small.paths"
  [ -s "$WORK/zip.paths" ] || echo /fixture.test/large/@v/v1.0.0.zip >"$WORK/zip.paths"
}
need_store() {
  need_small_paths
  [ -n "${STORE:-}" ] && return 0
  STORE=$WORK/store
  start_sparta "$STORE"
  cat "$WORK/small.paths" "$WORK/zip.paths" | "$BT" mirror -base "$SP" -fixture "$FX" -c 8 >"$WORK/mirror.out" 2>&1 ||
    die "sparta serves every fixture file byte for byte" "$(tail -3 "$WORK/mirror.out" | tr '\n' ' ')"
  stop_sparta
}
need_graph() {
  need_fixture
  GRAPH=${GRAPH:-$WORK/graph}
  [ -s "$GRAPH/go.mod" ] && return 0
  mkdir -p "$GRAPH"
  {
    printf 'module bench.local/wide\n\ngo 1.18\n\nrequire (\n'
    "$BT" paths -fixture "$FX" -prefix fixture.test/wide/ -kinds info | sed -E 's#^/(.*)/@v/(.*)\.info$#\t\1 \2#'
    printf ')\n'
  } >"$GRAPH/go.mod"
}

EXTRA_ROWS=()
extra_row() { EXTRA_ROWS+=("$(target_row "$@")"); }
# chart_point LABEL RATIO TARGET le|ge: one bar pair of the results chart.
CHART=()
chart_point() { num_ok "$2" && CHART+=("$1|$2|$3|$4") || true; }
for section in "$BENCH"/sections/*.sh; do
  [ -e "$section" ] || continue
  name=$(basename "$section" .sh)
  if [ -n "${BENCH_SECTIONS:-}" ] && [[ ",$BENCH_SECTIONS," != *",$name,"* ]]; then continue; fi
  log "section $name"
  # shellcheck source=/dev/null
  source "$section"
done

# ================================================================= table ===
if [ "$CORE" = 1 ]; then
SMALL_RATIO=$(fmt2 "$(round_ratio req "$WORK/small-sparta.txt" "$WORK/small-nginx.txt")")
ZIP_RATIO=$(fmt2 "$(round_ratio mb "$WORK/zip-sparta.txt" "$WORK/zip-nginx-on.txt" "$WORK/zip-nginx-off.txt")")
COLD_RATIO=$(ratio "$G_COLD" "$G_DIRECT")
WARM_RATIO=$(ratio "$G_WARM" "$G_DIRECT")
RSS_LIMIT_MIB=$((64 + CACHE_SIZE_MIB))
IDLE_START_MIB=$(mib "$IDLE_START_KIB")
IDLE_AFTER_MIB=$(mib "$IDLE_AFTER_KIB")
GRAPH_IDLE_MIB=$(mib "${GRAPH_IDLE_KIB:-0}")
ZIP_PEAK_MIB=$(mib "$ZIP_PEAK_KIB")
P99_RATIO=$(ratio "$S_P99" "$N_P99")
CPU_RATIO=$(ratio "$(cpu_per "$WORK/small-sparta.txt" req)" "$(cpu_per "$WORK/small-nginx.txt" req)")
chart_point "warm info/mod req/s vs nginx" "$SMALL_RATIO" 1.0 ge
chart_point "warm info/mod p99 vs nginx" "$P99_RATIO" 1.0 le
chart_point "CPU per request vs nginx" "$CPU_RATIO" 1.0 le
chart_point "warm zip MB/s vs nginx" "$ZIP_RATIO" 1.0 ge
chart_point "cold graph vs direct" "$COLD_RATIO" 1.05 le
fi # CORE
DATE=$(date +%Y-%m-%d)

TABLE=$(
  echo "| # | figure | Sparta | baseline | ratio | target | met |"
  echo "|---|---|---|---|---|---|---|"
  if [ "$CORE" = 1 ]; then
  target_row "1" "warm .info/.mod req/s ($SMALL_CONNS conns)" "$S_RPS" "nginx $N_RPS" "$SMALL_RATIO" ">= 1.0x nginx" "$(met_ratio "$SMALL_RATIO" '>=' 1.0)"
  target_row "1" "warm .info/.mod latency p50 / p99 (ms)" "$S_P50 / $S_P99" "nginx $N_P50 / $N_P99" "$(ratio "$S_P50" "$N_P50") / $P99_RATIO" "p99 <= nginx" "$(met_ratio "$P99_RATIO" '<=' 1.0)"
  target_row "1" "server CPU per warm .info/.mod request (us)" "$(cpu_per "$WORK/small-sparta.txt" req)" "nginx $(cpu_per "$WORK/small-nginx.txt" req)" "$CPU_RATIO" "<= 1.0x nginx" "$(met_ratio "$CPU_RATIO" '<=' 1.0)"
  target_row "2" "warm $LARGE zip MB/s ($ZIP_CONNS conns)" "$Z_S" "nginx $Z_N (sendfile $Z_N_MODE; on $Z_ON, off $Z_OFF)" "$ZIP_RATIO" ">= 1.0x nginx" "$(met_ratio "$ZIP_RATIO" '>=' 1.0)"
  target_row "2" "server CPU per GB of zip served (s)" "$(cpu_per "$WORK/zip-sparta.txt" gb)" "nginx on $(cpu_per "$WORK/zip-nginx-on.txt" gb), off $(cpu_per "$WORK/zip-nginx-off.txt" gb)" "" "" ""
  target_row "2" "peak RSS during the zip runs (MiB)" "$ZIP_PEAK_MIB" "" "" "<= 64 + cache budget $CACHE_SIZE_MIB = $RSS_LIMIT_MIB" "$(met_ratio "$ZIP_PEAK_MIB" '<=' "$RSS_LIMIT_MIB")"
  target_row "3" "cold wide graph, $GRAPH_MODULES modules, upstream +$LATENCY (s)" "$G_COLD" "direct $G_DIRECT" "$COLD_RATIO" "<= 1.05" "$(met_ratio "$COLD_RATIO" '<=' 1.05)"
  target_row "4" "warm wide graph (s)" "$G_WARM" "direct $G_DIRECT" "$WARM_RATIO" "" ""
  target_row "4" "proxy side of the warm wide graph: its ${G_REPLAY_N:-?} requests replayed by the bench tool, $GO_PAR in flight (s)" "$G_REPLAY" "go command, warm $G_WARM" "$(ratio "$G_REPLAY" "$G_WARM")" "" ""
  target_row "5" "dedup: upstream zip requests, $DEDUP_OBJECTS zips x $DEDUP_PER_OBJECT concurrent" "$DEDUP_COUNTS" "" "" "exactly $DEDUP_OBJECTS (1 per zip)" "$([ -z "$DEDUP_FAIL" ] && echo yes || echo '**no**')"
  target_row "5" "dedup: time until all $((DEDUP_OBJECTS * DEDUP_PER_OBJECT)) served (ms)" "$D_MS" "upstream requests in all: $D_UP_TOTAL; listen-queue overflows per run: $DEDUP_OVERFLOWS" "" "" ""
  target_row "6" "idle RSS after start-up (MiB)" "$IDLE_START_MIB" "" "" "<= 20" "$(met_ratio "$IDLE_START_MIB" '<=' 20)"
  target_row "6" "idle RSS after the load runs (MiB)" "$IDLE_AFTER_MIB" "after graph runs: $GRAPH_IDLE_MIB" "" "<= 20" "$(met_ratio "$IDLE_AFTER_MIB" '<=' 20)"
  target_row "6" "start-up to ready /readyz, local store (ms)" "$STARTUP_MS" "" "" "< 100" "$(met_ratio "$STARTUP_MS" '<' 100)"
  if [ -n "$L_DIRECT" ]; then
    target_row "7" "live graph of $LIVE_MODULE, cold (s)" "$L_COLD" "direct $L_DIRECT" "$(ratio "$L_COLD" "$L_DIRECT")" "" ""
    target_row "7" "live graph, warm (s)" "$L_WARM" "direct $L_DIRECT" "$(ratio "$L_WARM" "$L_DIRECT")" "" ""
    target_row "7" "proxy side of the live warm graph: its ${L_REPLAY_N:-?} requests replayed by the bench tool, $GO_PAR in flight (s)" "$L_REPLAY" "go command, warm $L_WARM" "$(ratio "$L_REPLAY" "$L_WARM")" "" ""
  fi
  fi # CORE
  [ "${#EXTRA_ROWS[@]}" = 0 ] || printf '%s\n' "${EXTRA_ROWS[@]}"
)
CHECK_TABLE=$(
  echo "| check | result | detail |"
  echo "|---|---|---|"
  printf '%s\n' "${CHECKS[@]}"
)
LOADAVG_END=$(cut -d' ' -f1-3 /proc/loadavg)
RUN_END=$(date -u +%H:%M)
REPORT=$(
  cat <<EOF
# Sparta benchmarks, $DATE

Machine: $CORES cores, $CPU_MODEL, $MEM_GIB GiB memory, Linux $KERNEL; load average at start $LOADAVG, at the end $LOADAVG_END (run $RUN_START to $RUN_END UTC; shared machine: read the ratios, not the absolute numbers).
Versions: sparta $GIT_REV (rustc $RUSTC_V, release build), nginx $NGINX_V, $GO_V, wrk $WRK_V.
Settings: Sparta defaults (local store, metrics and request logs on, logs to a file, checksum database on; \`--nosumdb $NOSUMDB\` in front of the fixture); nginx $CORES workers, access log off, open_file_cache; wrk 2 threads.
Runs: small files ${SMALL_SECS}s x $SMALL_ROUNDS rounds, zips ${ZIP_SECS}s x $ROUNDS rounds (servers alternate; figures are medians of rounds,
ratios the median of each round's ratio to nginx's best in that round);
graph $GRAPH_RUNS runs (median); dedup $DEDUP_RUNS runs (median); $STARTS starts (median; all: ${STARTUP_ALL:-n/a} ms).

$TABLE

$CHECK_TABLE
EOF
)
printf '\n%s\n\n' "$REPORT"
if [ "${BENCH_NO_RESULTS:-0}" != 1 ] && [ "$QUICK" != 1 ]; then
  mkdir -p "$BENCH/results"
  # A run of some sections only does not replace the day's full results.
  RESULTS=$DATE.md
  [ "$CORE" = 1 ] || RESULTS=$DATE-sections.md
  printf '%s\n' "$REPORT" >"$BENCH/results/$RESULTS"
  log "wrote bench/results/$RESULTS"
fi
# The chart beside the results: each ratio against its target, and the
# latency percentiles of Sparta and nginx. Drawing it never fails the run.
if [ "${BENCH_NO_RESULTS:-0}" != 1 ] && [ "$QUICK" != 1 ] && [ "${#CHART[@]}" -gt 0 ]; then
  if apt_install gnuplot:gnuplot-nox 2>/dev/null; then
    printf '%s\n' "${CHART[@]}" | awk -F'|' '{printf "\"%s (%s %s)\" %s %s\n", $1, ($4=="le"?"<=":">="), $3, $2, $3}' >"$WORK/chart.dat"
    PNG=$BENCH/results/${RESULTS%.md}.png
    {
      echo "set terminal pngcairo size 1100,$((300 + 28 * ${#CHART[@]})) font 'sans,9'"
      echo "set output '$PNG'"
      [ "$CORE" = 1 ] && echo "set multiplot layout 2,1 title 'Sparta benchmarks $DATE ($GIT_REV)'"
      echo "set style data histograms; set style histogram clustered gap 1; set style fill solid 0.8 border -1"
      echo "set xtics rotate by -30 left; set grid ytics; set key top left; set ylabel 'ratio'; set yrange [0:*]"
      echo "set title 'Ratio (Sparta / baseline) against its target'"
      echo "plot '$WORK/chart.dat' using 2:xtic(1) title 'measured' lc rgb '#3465a4', '' using 3 title 'target' lc rgb '#bbbbbb'"
      if [ "$CORE" = 1 ]; then
        printf 'p50 %s %s\np99 %s %s\n' "$S_P50" "$N_P50" "$S_P99" "$N_P99" >"$WORK/latency.dat"
        echo "set title 'Warm .info/.mod latency ($SMALL_CONNS connections)'; set ylabel 'ms'; set xtics norotate"
        echo "plot '$WORK/latency.dat' using 2:xtic(1) title 'Sparta' lc rgb '#3465a4', '' using 3 title 'nginx' lc rgb '#73d216'"
        echo "unset multiplot"
      fi
    } >"$WORK/chart.gp"
    gnuplot "$WORK/chart.gp" 2>"$WORK/gnuplot.err" && log "wrote ${PNG#"$ROOT"/}" || log "chart not drawn: $(head -c 300 "$WORK/gnuplot.err")"
  else
    log "chart not drawn: gnuplot could not be installed"
  fi
fi
if [ "$FAILED" != 0 ]; then
  log "some checks FAILED: see the table above"
  exit 1
fi
