# shellcheck shell=bash
# Sourced by bench/run.sh (see the comment above its section loop).
#
# S3-backed rows: Sparta on the real S3-compatible server (versitygw, see
# scripts/s3-server.sh) behind toxiproxy with a few ms of latency, as a
# same-region bucket; beside a Sparta on a local directory in the same run.
# Also the disk tier (--disk-cache-dir) in front of S3, and S3 requests per
# client request, counted by Sparta's own storage metrics.

S3_SECS=4 S3_ROUNDS=3
[ "$QUICK" = 1 ] && S3_SECS=2 S3_ROUNDS=1

need_small_paths

bench_s3_start

# Three Sparta: local directory, S3, S3 with the disk tier; each filled.
start_sparta "$WORK/s3-local-store"
S3_L_URL=$SP S3_L_PID=$SPARTA_PID
SPARTA_EXTRA=("${S3_FLAGS[@]}")
start_sparta "$S3_URL_BASE/plain"
S3_A_URL=$SP S3_A_PID=$SPARTA_PID
SPARTA_EXTRA=("${S3_FLAGS[@]}" --disk-cache-dir "$WORK/s3-tier" --disk-cache-size 1GiB)
start_sparta "$S3_URL_BASE/tier"
S3_B_URL=$SP S3_B_PID=$SPARTA_PID
SPARTA_EXTRA=()
for u in "$S3_L_URL" "$S3_A_URL" "$S3_B_URL"; do
  cat "$WORK/small.paths" "$WORK/zip.paths" | "$BT" mirror -base "$u" -fixture "$FX" -c 8 >"$WORK/s3-mirror.out" 2>&1 ||
    die "S3-backed Sparta serves every fixture file byte for byte" "$u: $(tail -2 "$WORK/s3-mirror.out" | tr '\n' ' ')"
done
check_ok "S3-backed Sparta (with and without the disk tier) serves every fixture file byte for byte" ""

: >"$WORK/s3-small-local.txt"
: >"$WORK/s3-small-s3.txt"
for r in $(seq "$S3_ROUNDS"); do
  for side in local s3; do
    url=$S3_L_URL pid=$S3_L_PID
    [ $side = s3 ] && url=$S3_A_URL pid=$S3_A_PID
    wrk_run "$url" "$WORK/small.paths" "$SMALL_CONNS" "$S3_SECS" "$pid" >>"$WORK/s3-small-$side.txt"
  done
done
S3_SMALL_R=$(fmt2 "$(round_ratio req "$WORK/s3-small-s3.txt" "$WORK/s3-small-local.txt")")
S3_SMALL_RPS=$(rate "$WORK/s3-small-s3.txt" req | median)
S3_SMALL_LOCAL=$(rate "$WORK/s3-small-local.txt" req | median)

: >"$WORK/s3-zip-local.txt"
: >"$WORK/s3-zip-s3.txt"
: >"$WORK/s3-zip-tier.txt"
read -r a_get0 a_put0 a_head0 a_list0 < <(s3_ops "$S3_A_URL")
read -r b_get0 b_put0 b_head0 b_list0 < <(s3_ops "$S3_B_URL")
a_req0=$(client_reqs "$S3_A_URL") b_req0=$(client_reqs "$S3_B_URL")
for r in $(seq "$S3_ROUNDS"); do
  for side in local s3 tier; do
    case $side in
    local) url=$S3_L_URL pid=$S3_L_PID ;;
    s3) url=$S3_A_URL pid=$S3_A_PID ;;
    tier) url=$S3_B_URL pid=$S3_B_PID ;;
    esac
    line=$(wrk_run "$url" "$WORK/zip.paths" "$ZIP_CONNS" "$S3_SECS" "$pid")
    log "   S3 zip round $r $side: $line"
    echo "$line" >>"$WORK/s3-zip-$side.txt"
  done
done
read -r a_get1 a_put1 a_head1 a_list1 < <(s3_ops "$S3_A_URL")
read -r b_get1 b_put1 b_head1 b_list1 < <(s3_ops "$S3_B_URL")
a_req=$(($(client_reqs "$S3_A_URL") - a_req0)) b_req=$(($(client_reqs "$S3_B_URL") - b_req0))
S3_ZIP_LOCAL=$(rate "$WORK/s3-zip-local.txt" mb | median)
S3_ZIP_S3=$(rate "$WORK/s3-zip-s3.txt" mb | median)
S3_ZIP_TIER=$(rate "$WORK/s3-zip-tier.txt" mb | median)
S3_ZIP_R=$(fmt2 "$(round_ratio mb "$WORK/s3-zip-s3.txt" "$WORK/s3-zip-local.txt")")
S3_TIER_R=$(fmt2 "$(round_ratio mb "$WORK/s3-zip-tier.txt" "$WORK/s3-zip-local.txt")")
per_req() { calc "$1 / ($2 > 0 ? $2 : 1)" 2; }
S3_A_GETS=$(per_req "$((a_get1 - a_get0))" "$a_req")
S3_B_GETS=$((b_get1 - b_get0))
for pid in "$S3_L_PID" "$S3_A_PID" "$S3_B_PID"; do stop_pid "$pid"; done
if [ "$S3_B_GETS" = 0 ]; then
  check_ok "warm zips from the disk tier: zero S3 GETs" "$b_req client requests"
else
  check_fail "warm zips from the disk tier: zero S3 GETs" "$S3_B_GETS S3 GETs for $b_req client requests"
fi

# Cold graph with the store on S3, against direct, in one go.
: >"$WORK/s3-graph-direct.txt"
: >"$WORK/s3-graph-cold.txt"
S3_G=$WORK/s3-graph
mkdir -p "$S3_G"
{
  printf 'module bench.local/wide\n\ngo 1.18\n\nrequire (\n'
  "$BT" paths -fixture "$FX" -prefix fixture.test/wide/ -kinds info | sed -E 's#^/(.*)/@v/(.*)\.info$#\t\1 \2#'
  printf ')\n'
} >"$S3_G/go.mod"
S3_G_MODULES=$(grep -c '^	' "$S3_G/go.mod")
S3_G_FAIL=
S3_G_OPS=
for r in $(seq "$S3_ROUNDS"); do
  if t=$(go_download "$S3_G" "$FX" "$WORK/fixture.sum" "$S3_G_MODULES" 2>"$WORK/s3g.err"); then
    echo "$t" >>"$WORK/s3-graph-direct.txt"
  else S3_G_FAIL="direct: $(cat "$WORK/s3g.err")"; fi
  SPARTA_EXTRA=("${S3_FLAGS[@]}")
  start_sparta "$S3_URL_BASE/graph-$r"
  SPARTA_EXTRA=()
  if t=$(go_download "$S3_G" "$SP" "$WORK/fixture.sum" "$S3_G_MODULES" 2>"$WORK/s3g.err"); then
    echo "$t" >>"$WORK/s3-graph-cold.txt"
  else S3_G_FAIL="cold sparta on S3: $(cat "$WORK/s3g.err")"; fi
  read -r g p h l < <(s3_ops "$SP")
  read -r lt lr < <(lease_ops "$SP")
  S3_G_OPS="$g GET, $p PUT, $h HEAD, $l LIST, $lt lease takes, $lr releases for $(client_reqs "$SP") client requests"
  stop_sparta
done
[ -z "$S3_G_FAIL" ] && check_ok "cold graph on S3: every hash matches" "" || check_fail "cold graph on S3: every hash matches" "$S3_G_FAIL"
S3_GD=$(median <"$WORK/s3-graph-direct.txt")
S3_GC=$(median <"$WORK/s3-graph-cold.txt")
S3_G_R=$(ratio "$S3_GC" "$S3_GD")

S3_WHAT="S3 +$((2 * S3_LAT_MS))ms RTT"
extra_row "9" "$S3_WHAT: warm .info/.mod req/s (memory tier)" "$S3_SMALL_RPS" "local store $S3_SMALL_LOCAL" "$S3_SMALL_R" ">= 0.9x local" "$(met_ratio "$S3_SMALL_R" '>=' 0.9)"
extra_row "9" "$S3_WHAT: warm $LARGE zip MB/s, no disk tier" "$S3_ZIP_S3" "local store $S3_ZIP_LOCAL" "$S3_ZIP_R" "" ""
extra_row "9" "$S3_WHAT: warm $LARGE zip MB/s, disk tier" "$S3_ZIP_TIER" "local store $S3_ZIP_LOCAL" "$S3_TIER_R" ">= 0.9x local" "$(met_ratio "$S3_TIER_R" '>=' 0.9)"
extra_row "9" "$S3_WHAT: S3 GETs per warm zip request" "no tier $S3_A_GETS; tier $S3_B_GETS in $b_req" "" "" "tier: 0" "$([ "$S3_B_GETS" = 0 ] && echo yes || echo '**no**')"
extra_row "9" "$S3_WHAT: cold wide graph, $S3_G_MODULES modules (s)" "$S3_GC" "direct $S3_GD" "$S3_G_R" "<= 1.05" "$(met_ratio "$S3_G_R" '<=' 1.05)"
extra_row "9" "$S3_WHAT: S3 requests of one cold graph" "$S3_G_OPS" "" "" "" ""
chart_point "S3 warm info/mod vs local" "$S3_SMALL_R" 0.9 ge
chart_point "S3+disk tier warm zip vs local" "$S3_TIER_R" 0.9 ge
chart_point "S3 cold graph vs direct" "$S3_G_R" 1.05 le
