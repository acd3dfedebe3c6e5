# shellcheck shell=bash
# Sourced by bench/run.sh (see the comment above its section loop).
#
# The cost of scale: 3 replicas on one bucket (S3 behind a few ms of
# toxiproxy latency, as bench/sections/perf-s3.sh sets up) under a
# Zipf-distributed mixed workload over the fixture's modules (.info, .mod,
# .zip, list, @latest; cold at first, then warm), sent round-robin over the
# replicas. Reported: S3 GET/PUT/HEAD/LIST and upstream requests per 1,000
# client requests, from Sparta's own counters.

SC_REQUESTS=6000 SC_SECS=10 SC_ZIPF=1.1
[ "$QUICK" = 1 ] && SC_REQUESTS=2000 SC_SECS=4

need_fixture
bench_s3_start
# Every file kind of every non-scratch module, in a fixed random order.
{
  "$BT" paths -fixture "$FX" -kinds info,mod,zip | grep -v -e /scratch/ -e /large/
  "$BT" paths -fixture "$FX" -kinds info | grep -v -e /scratch/ -e /large/ | sed -E 's#/@v/[^/]*\.info$##' | sort -u | sed -e 's#$#/@v/list#' -e 'p;s#/@v/list$#/@latest#'
} | awk 'BEGIN { srand(7) } { print rand() "\t" $0 }' | sort -k1,1 | cut -f2 >"$WORK/scale.universe"
SC_UNIVERSE=$(wc -l <"$WORK/scale.universe")
# Zipf: rank r is asked with weight 1/r^s.
awk -v n="$SC_REQUESTS" -v s="$SC_ZIPF" 'BEGIN { srand(11) }
  { p[NR] = $0; w += 1 / (NR ^ s); c[NR] = w }
  END { for (i = 1; i <= n; i++) { x = rand() * w; lo = 1; hi = NR
          while (lo < hi) { m = int((lo + hi) / 2); if (c[m] < x) lo = m + 1; else hi = m }
          print p[lo] } }' "$WORK/scale.universe" >"$WORK/scale.paths"

SC_URLS=()
SC_PIDS=()
for n in 1 2 3; do
  SPARTA_EXTRA=("${S3_FLAGS[@]}")
  start_sparta "$S3_URL_BASE/scale"
  SPARTA_EXTRA=()
  SC_URLS+=("$SP")
  SC_PIDS+=("$SPARTA_PID")
done
log "scale: 3 replicas on $S3_URL_BASE/scale, Zipf s=$SC_ZIPF over $SC_UNIVERSE paths, ${SC_SECS}s"
# Upstream requests as the fixture counted them (its stats: path -> count).
fx_total() { curl -sf "$FX/_fixture/stats" | python3 -c 'import json, sys; print(sum(json.load(sys.stdin).values()))'; }
fx0=$(fx_total)
curl -sf "$FX/_fixture/stats" >"$WORK/scale-fx0.json"
# Three wrk, one per replica, at once: the sample is dealt round-robin over
# the replicas (request n to replica n mod 3), as a balancer would.
# (Wait for these three only: the servers are background jobs too.)
SC_WRK=()
for i in 0 1 2; do
  awk -v i="$i" 'NR % 3 == i' "$WORK/scale.paths" >"$WORK/scale-$i.paths"
  wrk_run "${SC_URLS[$i]}" "$WORK/scale-$i.paths" 8 "$SC_SECS" "${SC_PIDS[$i]}" >"$WORK/scale-wrk-$i.txt" &
  SC_WRK+=("$!")
done
for pid in "${SC_WRK[@]}"; do wait "$pid" || true; done
fx1=$(fx_total)
curl -sf "$FX/_fixture/stats" >"$WORK/scale-fx1.json"
# Upstream list and @latest fetches per module during the run, across the
# three replicas: the run is shorter than one --list-ttl (60 s by default),
# so one each is the target. Prints "modules max_list max_latest total_list".
read -r SC_LMODS SC_LMAX SC_LATMAX SC_LTOTAL < <(python3 - "$WORK/scale-fx0.json" "$WORK/scale-fx1.json" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
d = {k: v - a.get(k, 0) for k, v in b.items() if v - a.get(k, 0) > 0}
lists = [v for k, v in d.items() if k.endswith("/@v/list")]
latest = [v for k, v in d.items() if k.endswith("/@latest")]
print(len(lists), max(lists, default=0), max(latest, default=0), sum(lists))
PY
)
SC_ERR=0 SC_CLIENT=0
for i in 0 1 2; do
  line=$(cat "$WORK/scale-wrk-$i.txt")
  case $line in WRK\ requests=*) SC_ERR=$((SC_ERR + $(wrk_errors "$line"))) ;; *) SC_ERR=$((SC_ERR + 1)) ;; esac
done
SC_GET=0 SC_PUT=0 SC_HEAD=0 SC_LIST=0 SC_UP=0 SC_LEASE=0 SC_RELEASE=0
for u in "${SC_URLS[@]}"; do
  read -r g p h l < <(s3_ops "$u")
  SC_GET=$((SC_GET + g)) SC_PUT=$((SC_PUT + p)) SC_HEAD=$((SC_HEAD + h)) SC_LIST=$((SC_LIST + l))
  read -r lt lr < <(lease_ops "$u")
  SC_LEASE=$((SC_LEASE + lt)) SC_RELEASE=$((SC_RELEASE + lr))
  SC_CLIENT=$((SC_CLIENT + $(client_reqs "$u")))
  SC_UP=$((SC_UP + $(metric_sum "$u" sparta_upstream_fetches_total)))
done
for pid in "${SC_PIDS[@]}"; do stop_pid "$pid"; done
SC_FX=$((fx1 - fx0))
if [ "$SC_ERR" = 0 ] && [ "$SC_CLIENT" -gt 0 ]; then
  check_ok "scale: 3 replicas answer the Zipf workload without errors" "$SC_CLIENT requests"
else
  check_fail "scale: 3 replicas answer the Zipf workload without errors" "$SC_ERR errors (see $WORK/scale-wrk-*.txt)"
fi
k() { calc "$1 * 1000 / ($SC_CLIENT > 0 ? $SC_CLIENT : 1)" 1; }
extra_row "10" "3 replicas, one bucket, Zipf mix: S3 GET / PUT / HEAD / LIST per 1,000 client requests" "$(k $SC_GET) / $(k $SC_PUT) / $(k $SC_HEAD) / $(k $SC_LIST)" "$SC_CLIENT client requests over $SC_UNIVERSE paths; lease takes / releases per 1,000: $(k $SC_LEASE) / $(k $SC_RELEASE)" "" "" ""
extra_row "10" "3 replicas: upstream list fetches per module within one --list-ttl (max; @latest max)" "$SC_LMAX; @latest $SC_LATMAX" "$SC_LTOTAL list fetches for $SC_LMODS modules" "" "1 per module per --list-ttl" "$(met_ratio "$SC_LMAX" '<=' 1)"
extra_row "10" "3 replicas: upstream requests per 1,000 client requests" "$(k "$SC_UP")" "fixture counted $SC_FX; $SC_UNIVERSE distinct paths" "" "<= distinct paths asked" "$(met_ratio "$SC_FX" '<=' "$SC_UNIVERSE")"
