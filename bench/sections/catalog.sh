# shellcheck shell=bash
# Catalog and browse page with 100,000 stored versions: the time of one
# /catalog page (1000 versions, from the middle), one /index page and one
# /ui search, against a /healthz round trip on the same server (the floor of
# any request). Sourced by bench/run.sh; see the comment above its section loop.
need_fixture
CAT_STORE=$WORK/catalog-store
CAT_MODULES=${CAT_MODULES:-10000}
CAT_PER=${CAT_PER:-10}
CAT_RUNS=${CAT_RUNS:-21}
mkdir -p "$CAT_STORE/_sparta/catalog/snap"
# One snapshot object, as compaction writes it: 10,000 modules x 10 versions.
awk -v m="$CAT_MODULES" -v p="$CAT_PER" 'BEGIN {
  for (i = 0; i < m; i++) for (j = 0; j < p; j++)
    printf "{\"path\":\"bench.test/org%03d/mod%05d\",\"version\":\"v1.%d.0\",\"time\":\"2026-01-%02dT00:00:%02dZ\",\"info\":60,\"mod\":40,\"zip\":2000,\"h1\":\"h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}\n", i % 100, i, j, 1 + j, i % 60
}' >"$CAT_STORE/_sparta/catalog/snap/000000000000000000000001-bench-0.ndjson"
CAT_VERSIONS=$((CAT_MODULES * CAT_PER))
start_sparta "$CAT_STORE" "$FX"
# Load the snapshot once (the first catalog request of a replica reads it).
curl -s -o /dev/null "$SP/catalog?pagesize=1"
# cat_median URL: median seconds of CAT_RUNS sequential GETs.
cat_median() {
  local i
  for ((i = 0; i < CAT_RUNS; i++)); do curl -s -o /dev/null -w '%{time_total}\n' "$1"; done |
    sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'
}
CAT_FLOOR=$(cat_median "$SP/healthz")
CAT_PAGE=$(cat_median "$SP/catalog?pagesize=1000&token=bench.test/org050/mod05000@v1.5.0")
CAT_INDEX=$(cat_median "$SP/index?since=2026-01-05T00:00:00Z&limit=2000")
CAT_UI=$(cat_median "$SP/ui?q=mod0777")
got=$(curl -s "$SP/catalog?pagesize=1000&token=bench.test/org050/mod05000@v1.5.0" | grep -o '"module"' | wc -l)
if [ "$got" = 1000 ]; then
  check_ok "catalog page holds 1000 of $CAT_VERSIONS versions"
else
  check_fail "catalog page holds 1000 of $CAT_VERSIONS versions" "got $got"
fi
stop_sparta
ms() { calc "$1 * 1000" 2; }
extra_row "catalog" "/catalog page of 1000 ($CAT_VERSIONS stored), ms p50" "$(ms "$CAT_PAGE")" "$(ms "$CAT_FLOOR") (/healthz)" "$(ratio "$CAT_PAGE" "$CAT_FLOOR")" "informational" "-"
extra_row "catalog" "/index page of 2000 ($CAT_VERSIONS stored), ms p50" "$(ms "$CAT_INDEX")" "$(ms "$CAT_FLOOR") (/healthz)" "$(ratio "$CAT_INDEX" "$CAT_FLOOR")" "informational" "-"
extra_row "catalog" "/ui search over $CAT_MODULES modules, ms p50" "$(ms "$CAT_UI")" "$(ms "$CAT_FLOOR") (/healthz)" "$(ratio "$CAT_UI" "$CAT_FLOOR")" "informational" "-"
