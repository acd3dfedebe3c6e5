# shellcheck shell=bash
# Warm throughput: `sparta warm` of the wide graph's module@version list into an
# empty store, against `go mod download` of the same list from the same upstream
# (the fixture, with its latency) into an empty module cache. Sourced by
# bench/run.sh (see the comment above its section loop).
need_graph
WARM_LIST=$WORK/warm-list.txt
sed -nE 's/^\t([^ ]+) ([^ ]+)$/\1@\2/p' "$GRAPH/go.mod" >"$WARM_LIST"
WARM_N=$(wc -l <"$WARM_LIST")
: >"$WORK/warm-sparta.txt"
: >"$WORK/warm-go.txt"
WARM_FAIL=
WARM_BYTES=0
mkdir -p "$WORK/warm-spool"
for r in $(seq "$GRAPH_RUNS"); do
  store=$WORK/warm-store-$r
  rm -rf "$store"
  mkdir -p "$store"
  t0=$(now_ms)
  if "$SPARTA" warm --storage "$store" --spool-dir "$WORK/warm-spool" --upstream "$FX" \
    --nosumdb "$NOSUMDB" "$WARM_LIST" 2>"$WORK/warm-$r.log"; then
    echo $(($(now_ms) - t0)) >>"$WORK/warm-sparta.txt"
  else
    WARM_FAIL="sparta warm: $(tail -c 300 "$WORK/warm-$r.log" | tr '\n' ' ')"
  fi
  WARM_BYTES=$(find "$store" -name '*.zip' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
  rm -rf "$store"
  mc=$WORK/warm-modcache
  rm -rf "$mc"
  t0=$(now_ms)
  # shellcheck disable=SC2046 # one argument per listed version
  if (cd "$WORK" && GOMODCACHE=$mc GOPROXY=$FX GOSUMDB=off GOFLAGS=-modcacherw \
    go mod download -json $(cat "$WARM_LIST") >/dev/null 2>"$WORK/warm-go.err"); then
    echo $(($(now_ms) - t0)) >>"$WORK/warm-go.txt"
  else
    WARM_FAIL="go mod download: $(tail -c 300 "$WORK/warm-go.err" | tr '\n' ' ')"
  fi
  rm -rf "$mc"
  log "   warm run $r: sparta warm $(tail -1 "$WORK/warm-sparta.txt")ms, go mod download $(tail -1 "$WORK/warm-go.txt")ms ($WARM_N versions)"
done
W_MS=$(median <"$WORK/warm-sparta.txt")
W_GO_MS=$(median <"$WORK/warm-go.txt")
if [ -z "$WARM_FAIL" ] && num_ok "$W_MS" && num_ok "$W_GO_MS"; then
  W_MPS=$(calc "$WARM_N / ($W_MS / 1000)" 1)
  W_MBS=$(calc "$WARM_BYTES / 1e6 / ($W_MS / 1000)" 2)
  W_GO_MPS=$(calc "$WARM_N / ($W_GO_MS / 1000)" 1)
  W_GO_MBS=$(calc "$WARM_BYTES / 1e6 / ($W_GO_MS / 1000)" 2)
  W_RATIO=$(ratio "$W_MPS" "$W_GO_MPS")
  check_ok "sparta warm of the wide graph's list" "$WARM_N versions, $GRAPH_RUNS runs"
else
  W_MPS=nan W_MBS=nan W_GO_MPS=nan W_GO_MBS=nan W_RATIO=nan
  check_fail "sparta warm of the wide graph's list" "${WARM_FAIL:-no timing}"
fi
extra_row "W1" "warm throughput, $WARM_N versions (modules/s, MB/s of zips)" \
  "$W_MPS/s, $W_MBS MB/s" "go mod download: $W_GO_MPS/s, $W_GO_MBS MB/s" "$W_RATIO" ">= 0.5" \
  "$(met_ratio "$W_RATIO" ">=" 0.5)"
chart_point "sparta warm vs go mod download" "$W_RATIO" 0.5 ge
