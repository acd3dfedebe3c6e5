# shellcheck shell=bash
# Bench row for access control (issue #11), sourced by bench/run.sh with its
# helpers in scope: warm .info req/s with client authentication (Basic, an
# htpasswd SHA-256 crypt entry, as the go command sends it from a netrc) and
# the audit log (to a file) on, beside the same store served with both off.
# Rounds alternate the two servers; the ratio is the median of the rounds'.

need_store
ACC_DIR=$WORK/access
mkdir -p "$ACC_DIR"
grep '\.info$' "$WORK/small.paths" >"$ACC_DIR/info.paths"
ACC_PASS=bench-password-$RANDOM$RANDOM
printf 'bench:%s\n' "$(openssl passwd -5 "$ACC_PASS")" >"$ACC_DIR/htpasswd"

# acc_sparta NAME ARGS...: a Sparta over the warm store with extra flags.
acc_sparta() {
  local name=$1 ready
  shift
  SPARTA_N=$((SPARTA_N + 1))
  ready=$WORK/sparta-$SPARTA_N.addr
  mkdir -p "$ACC_DIR/spool-$name"
  "$SPARTA" serve --listen 127.0.0.1:0 --ready-file "$ready" --storage "$STORE" \
    --upstream "$FX" --spool-dir "$ACC_DIR/spool-$name" --nosumdb "$NOSUMDB" "$@" \
    >"$WORK/sparta-$SPARTA_N.log" 2>&1 &
  SPARTA_PID=$!
  PIDS+=("$SPARTA_PID")
  wait_file "$ready" "$SPARTA_PID" || return 1
  SP=http://$(cat "$ready")
}

ACC_AUTH="Authorization: Basic $(printf 'bench:%s' "$ACC_PASS" | base64 -w0)"
if acc_sparta off && ACC_OFF_URL=$SP ACC_OFF_PID=$SPARTA_PID &&
  acc_sparta on --htpasswd "$ACC_DIR/htpasswd" --audit-log "$ACC_DIR/audit.jsonl" &&
  ACC_ON_URL=$SP ACC_ON_PID=$SPARTA_PID; then
  code_none=$(curl -s -o /dev/null -w '%{http_code}' "$ACC_ON_URL$(head -1 "$ACC_DIR/info.paths")" || true)
  code_auth=$(curl -s -o /dev/null -w '%{http_code}' -H "$ACC_AUTH" "$ACC_ON_URL$(head -1 "$ACC_DIR/info.paths")" || true)
  if [ "$code_none" = 401 ] && [ "$code_auth" = 200 ]; then
    check_ok "access: auth on refuses without credentials, serves with them" "401 / 200"
  else
    check_fail "access: auth on refuses without credentials, serves with them" "got $code_none / $code_auth"
  fi
  : >"$ACC_DIR/on.txt"
  : >"$ACC_DIR/off.txt"
  : >"$ACC_DIR/ratios.txt"
  wrk_run "$ACC_OFF_URL" "$ACC_DIR/info.paths" "$SMALL_CONNS" 1 >/dev/null
  wrk -t2 -c"$SMALL_CONNS" -d1s -H "$ACC_AUTH" -s "$BENCH/wrk/paths.lua" "$ACC_ON_URL" -- "$ACC_DIR/info.paths" >/dev/null 2>&1 || true
  audit_before=$(wc -l <"$ACC_DIR/audit.jsonl" 2>/dev/null || echo 0)
  acc_on_requests=0
  for r in $(seq "$SMALL_ROUNDS"); do
    off=$(wrk_run "$ACC_OFF_URL" "$ACC_DIR/info.paths" "$SMALL_CONNS" "$SMALL_SECS" "$ACC_OFF_PID")
    on=$(wrk -t2 -c"$SMALL_CONNS" -d"$SMALL_SECS"s --timeout 30s -H "$ACC_AUTH" -s "$BENCH/wrk/paths.lua" \
      "$ACC_ON_URL" -- "$ACC_DIR/info.paths" 2>&1 | grep '^WRK ' || echo "WRK failed")
    log "   access round $r: off $off"
    log "   access round $r: on  $on"
    echo "$off" >>"$ACC_DIR/off.txt"
    echo "$on" >>"$ACC_DIR/on.txt"
    if [[ $on == WRK\ requests=* ]] && [[ $off == WRK\ requests=* ]]; then
      acc_on_requests=$((acc_on_requests + $(kv requests "$on")))
      ratio "$(kv requests "$on") / $(kv duration_us "$on")" "$(kv requests "$off") / $(kv duration_us "$off")" >>"$ACC_DIR/ratios.txt"
      echo >>"$ACC_DIR/ratios.txt"
    fi
  done
  stop_pid "$ACC_ON_PID"
  stop_pid "$ACC_OFF_PID"
  acc_errs=0
  while read -r l; do
    if [[ $l == WRK\ requests=* ]]; then acc_errs=$((acc_errs + $(wrk_errors "$l"))); else acc_errs=$((acc_errs + 1)); fi
  done <"$ACC_DIR/on.txt"
  # No audit line lost: one per served file, at least as many as wrk counted.
  audit_lines=$(($(wc -l <"$ACC_DIR/audit.jsonl") - audit_before))
  if [ "$acc_errs" = 0 ] && [ "$audit_lines" -ge "$acc_on_requests" ] && [ "$acc_on_requests" -gt 0 ]; then
    check_ok "access: every request under load audited" "$audit_lines audit lines for $acc_on_requests requests, 0 errors"
  else
    check_fail "access: every request under load audited" "$audit_lines audit lines for $acc_on_requests requests, $acc_errs errors"
  fi
  acc_rps() { grep '^WRK requests=' "$1" | while read -r l; do calc "$(kv requests "$l") / ($(kv duration_us "$l") / 1e6)" 0; echo; done | median; }
  ACC_RATIO=$(grep -E '^[0-9.]+$' "$ACC_DIR/ratios.txt" | median)
  ACC_RATIO=$(fmt2 "$ACC_RATIO")
  extra_row "access" "warm .info req/s, auth (Basic) + audit log on ($SMALL_CONNS conns)" "$(acc_rps "$ACC_DIR/on.txt")" "both off $(acc_rps "$ACC_DIR/off.txt")" "$ACC_RATIO" ">= 0.95x off" "$(met_ratio "$ACC_RATIO" '>=' 0.95)"
else
  check_fail "access: sparta starts with auth and audit on" "see $WORK/sparta-$SPARTA_N.log"
fi
chart_point "auth+audit warm info vs off" "${ACC_RATIO:-}" 0.95 ge
