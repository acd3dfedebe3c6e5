# shellcheck shell=bash
# Sourced by bench/run.sh (see the comment above its section loop).
#
# The slow-link profile: the fixture upstream behind toxiproxy with about
# 150 ms of round trip, a bandwidth cap of a few MB/s and occasional stalls
# (a few connections get a second of extra latency), as a build in a cloud
# VPC whose NAT throttles traffic abroad sees it. Sparta and the direct go
# command both reach the fixture through that link; clients reach Sparta on
# loopback.

SL_RTT_MS=150
SL_RATE_KBS=4096 # toxiproxy's bandwidth toxic counts KB/s
SL_RUNS=3
[ "$QUICK" = 1 ] && SL_RUNS=1

toxi_start
# Its own fixture, with no latency of its own: the link adds it.
SL_SAVED_FX=$FX SL_SAVED_FX_PID=$FIXTURE_PID SL_SAVED_LATENCY=$LATENCY
LATENCY=0ms
start_fixture
SL_FX=$FX
LATENCY=$SL_SAVED_LATENCY
curl -sf "$SL_FX/_fixture/sums" >"$WORK/slowlink.sum" || die "fixture sums" "GET /_fixture/sums failed"
SL_ADDR=$(toxi_link slowlink "${SL_FX#http://}")
half=$((SL_RTT_MS / 2))
toxi toxic add -n lat-down -t latency -a latency=$half -a jitter=10 slowlink
toxi toxic add -n lat-up --upstream -t latency -a latency=$half -a jitter=10 slowlink
toxi toxic add -n bw-down -t bandwidth -a rate=$SL_RATE_KBS slowlink
toxi toxic add -n stall -t latency -a latency=1000 --tox 0.05 slowlink
SL_LINK=http://$SL_ADDR
log "slow link: toxiproxy $SL_LINK -> $SL_FX (${SL_RTT_MS}ms RTT, ${SL_RATE_KBS} KB/s, 5% of connections +1s)"

SL_GRAPH=$WORK/slowlink-graph
SL_LARGE=$WORK/slowlink-large
mkdir -p "$SL_GRAPH" "$SL_LARGE"
{
  printf 'module bench.local/wide\n\ngo 1.18\n\nrequire (\n'
  "$BT" paths -fixture "$SL_FX" -prefix fixture.test/wide/ -kinds info | sed -E 's#^/(.*)/@v/(.*)\.info$#\t\1 \2#'
  printf ')\n'
} >"$SL_GRAPH/go.mod"
SL_MODULES=$(grep -c '^	' "$SL_GRAPH/go.mod")
printf 'module bench.local/large\n\ngo 1.18\n\nrequire fixture.test/large v1.0.0\n' >"$SL_LARGE/go.mod"

: >"$WORK/sl-graph-direct.txt"
: >"$WORK/sl-graph-cold.txt"
: >"$WORK/sl-graph-warm.txt"
: >"$WORK/sl-large-direct.txt"
: >"$WORK/sl-large-cold.txt"
: >"$WORK/sl-large-warm.txt"
SL_FAIL=
for r in $(seq "$SL_RUNS"); do
  start_sparta "$WORK/sl-store-$r" "$SL_LINK"
  for what in graph large; do
    dir=$SL_GRAPH min=$SL_MODULES
    [ $what = large ] && dir=$SL_LARGE min=1
    if t=$(go_download "$dir" "$SL_LINK" "$WORK/slowlink.sum" "$min" 2>"$WORK/sl.err"); then
      echo "$t" >>"$WORK/sl-$what-direct.txt"
    else SL_FAIL="$what direct: $(cat "$WORK/sl.err")"; fi
    for temp in cold warm; do
      if t=$(go_download "$dir" "$SP" "$WORK/slowlink.sum" "$min" 2>"$WORK/sl.err"); then
        echo "$t" >>"$WORK/sl-$what-$temp.txt"
      else SL_FAIL="$what $temp sparta: $(cat "$WORK/sl.err")"; fi
    done
    log "   run $r $what: direct $(tail -1 "$WORK/sl-$what-direct.txt")s, cold sparta $(tail -1 "$WORK/sl-$what-cold.txt")s, warm sparta $(tail -1 "$WORK/sl-$what-warm.txt")s"
  done
  [ "$r" = "$SL_RUNS" ] || stop_sparta
done
if [ -z "$SL_FAIL" ]; then
  check_ok "slow link: every download's hashes match the fixture" "$SL_MODULES-module graph and the $LARGE module, $((SL_RUNS * 6)) downloads"
else
  check_fail "slow link: every download's hashes match the fixture" "$SL_FAIL"
fi

# The link drops one second into a download of the large module: direct
# fails; for the warm Sparta (still running, its store filled above) the link
# is down from the start, and it succeeds. `go_download` checks every hash.
sl_drop() { # PROXY DELAY -> "ok SECONDS" or "failed"
  (sleep "$2" && toxi toggle slowlink) &
  local toggler=$! t
  if t=$(go_download "$SL_LARGE" "$1" "$WORK/slowlink.sum" 1 2>"$WORK/sl-drop.err"); then
    echo "ok $t"
  else
    echo failed
  fi
  wait "$toggler" 2>/dev/null || true
  toxi toggle slowlink # back up
}
read -r SL_DROP_DIRECT SL_DROP_DIRECT_T < <(sl_drop "$SL_LINK" 1)
read -r SL_DROP_SPARTA SL_DROP_SPARTA_T < <(sl_drop "$SP" 0)
stop_sparta
log "   link drop: direct $SL_DROP_DIRECT ${SL_DROP_DIRECT_T:-}, warm sparta $SL_DROP_SPARTA ${SL_DROP_SPARTA_T:-}"
if [ "$SL_DROP_SPARTA" = ok ]; then
  check_ok "link drop mid-download: the warm Sparta serves every file" "direct: $SL_DROP_DIRECT"
else
  check_fail "link drop mid-download: the warm Sparta serves every file" "$(tail -c 300 "$WORK/sl-drop.err" | tr '\n' ' ')"
fi

SL_GD=$(median <"$WORK/sl-graph-direct.txt")
SL_GC=$(median <"$WORK/sl-graph-cold.txt")
SL_GW=$(median <"$WORK/sl-graph-warm.txt")
SL_LD=$(median <"$WORK/sl-large-direct.txt")
SL_LC=$(median <"$WORK/sl-large-cold.txt")
SL_LW=$(median <"$WORK/sl-large-warm.txt")
SL_R1=$(ratio "$SL_GC" "$SL_GD")
SL_R2=$(ratio "$SL_GW" "$SL_GD")
SL_R3=$(ratio "$SL_LC" "$SL_LD")
SL_R4=$(ratio "$SL_LW" "$SL_LD")
SL_WHAT="${SL_RTT_MS}ms RTT, $((SL_RATE_KBS / 1024)) MB/s"
extra_row "8" "slow link ($SL_WHAT): cold wide graph, $SL_MODULES modules (s)" "$SL_GC" "direct $SL_GD" "$SL_R1" "<= 1.05" "$(met_ratio "$SL_R1" '<=' 1.05)"
extra_row "8" "slow link: warm wide graph (s)" "$SL_GW" "direct $SL_GD" "$SL_R2" "<= 0.1" "$(met_ratio "$SL_R2" '<=' 0.1)"
extra_row "8" "slow link: cold $LARGE module (s)" "$SL_LC" "direct $SL_LD" "$SL_R3" "<= 1.05" "$(met_ratio "$SL_R3" '<=' 1.05)"
extra_row "8" "slow link: warm $LARGE module (s)" "$SL_LW" "direct $SL_LD" "$SL_R4" "<= 0.1" "$(met_ratio "$SL_R4" '<=' 0.1)"
extra_row "8" "slow link drops during a $LARGE download (direct: after 1 s; warm Sparta: from the start)" "warm: $SL_DROP_SPARTA ${SL_DROP_SPARTA_T:+(${SL_DROP_SPARTA_T}s)}" "direct: $SL_DROP_DIRECT" "" "warm Sparta succeeds" "$([ "$SL_DROP_SPARTA" = ok ] && echo yes || echo '**no**')"
chart_point "slow-link cold graph" "$SL_R1" 1.05 le
chart_point "slow-link warm graph" "$SL_R2" 0.1 le
chart_point "slow-link cold large" "$SL_R3" 1.05 le
chart_point "slow-link warm large" "$SL_R4" 0.1 le

FX=$SL_SAVED_FX
FIXTURE_PID=$SL_SAVED_FX_PID
