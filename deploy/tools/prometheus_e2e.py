#!/usr/bin/env python3
"""Drives traffic through a running Sparta, then checks through a real
Prometheus scraping it that every dashboard and alert expression evaluates.
Called by scripts/deploy-prometheus-test.sh, which starts the processes.

  prometheus_e2e.py SPARTA_URL UPSTREAM_URL PROMETHEUS_URL EXPRS_JSONL
"""

import json
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

SPARTA, UPSTREAM, PROM, EXPRS = sys.argv[1:5]

# Series that exist only after something rare happens; none of the driven
# traffic makes them, so their expressions may return no data.
MAY_BE_ABSENT = {"sparta_storage_errors_total", "sparta_sumdb_verifications_total"}
# Substitutions Grafana makes before sending a query.
GRAFANA_VARS = {"$__rate_interval": "1m", "$job": ".+", "$instance": ".+"}

passed = 0
failed = 0


def result(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {what}")
    else:
        failed += 1
        print(f"FAIL  {what}" + (f": {detail}" if detail else ""))


def get(url, timeout=30):
    req = urllib.request.Request(url)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def post_json(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def fault(path, **kw):
    post_json(f"{UPSTREAM}/_fixture/fault", {"path": path, **kw})


def query(expr):
    url = f"{PROM}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, body = get(url)
    try:
        doc = json.loads(body)
    except json.JSONDecodeError:
        return {"status": "error", "error": f"HTTP {status}: {body[:200]!r}"}
    return doc


def scalar(expr):
    doc = query(expr)
    if doc.get("status") != "success" or not doc["data"]["result"]:
        return None
    return float(doc["data"]["result"][0]["value"][1])


def expect_status(path, want, what):
    status, body = get(f"{SPARTA}{path}")
    ok = status in want if isinstance(want, (set, tuple)) else status == want
    result(ok, f"{what}: GET {path} -> {status}", f"want {want}, body {body[:200]!r}")
    return body


def wait_scrapes(n=2):
    """Waits until Prometheus has scraped Sparta n more times."""
    def last():
        status, body = get(f"{PROM}/api/v1/targets?state=active")
        for t in json.loads(body)["data"]["activeTargets"]:
            if t["labels"].get("job") == "sparta":
                return t.get("lastScrape")
        return None
    seen = last()
    got = 0
    deadline = time.time() + 30
    while got < n and time.time() < deadline:
        time.sleep(0.2)
        now = last()
        if now != seen:
            got += 1
            seen = now
    if got < n:
        result(False, f"Prometheus scraped Sparta {n} times", f"only {got} in 30 s")


# --- traffic -------------------------------------------------------------
mod = "/fixture.test/scratch/s61/@v/v1.0.0"
expect_status(f"{mod}.info", 200, "miss")
expect_status(f"{mod}.info", 200, "hit")
zip_body = expect_status(f"{mod}.zip", 200, "zip download")
status, true_zip = get(f"{UPSTREAM}/_fixture/raw{mod}.zip")
result(zip_body == true_zip, "zip bytes equal the upstream's", f"{len(zip_body)} vs {len(true_zip)} bytes")

missing = "/fixture.test/no/such/module/@v/v1.0.0.info"
expect_status(missing, {404, 410}, "upstream not found")
expect_status(missing, {404, 410}, "not found again (negative cache)")

# Two upstream 5xx, a scrape apart, so the 5xx counter series moves after it
# first appears and rate() over it is non-zero.
fault("/fixture.test/scratch/s62/@v/v1.0.0.mod", kind="status", status=500, times=50)
expect_status("/fixture.test/scratch/s62/@v/v1.0.0.mod", {502, 503, 504}, "upstream 5xx")
wait_scrapes(1)
fault("/fixture.test/scratch/s63/@v/v1.0.0.mod", kind="status", status=503, times=50)
expect_status("/fixture.test/scratch/s63/@v/v1.0.0.mod", {502, 503, 504}, "upstream 5xx again")

# Concurrent cold requests for one slow zip: singleflight joins them. The
# delay stays under the 1.2 s latency alert threshold.
slow = "/fixture.test/scratch/s60/@v/v1.0.0.zip"
fault(slow, kind="delay", delay_ms=700, times=1)
statuses = []
threads = [threading.Thread(target=lambda: statuses.append(get(f"{SPARTA}{slow}")[0])) for _ in range(5)]
for t in threads:
    t.start()
for t in threads:
    t.join()
result(statuses == [200] * 5, "5 concurrent cold zip requests -> 200", f"got {statuses}")

# More ordinary traffic after a scrape, so rates over the new series are non-zero.
wait_scrapes(1)
expect_status(f"{mod}.info", 200, "hit after a scrape")
expect_status(f"{mod}.zip", 200, "zip after a scrape")
expect_status(f"{mod}.mod", 200, "mod")
expect_status("/fixture.test/scratch/s61/@v/list", 200, "list")
expect_status("/fixture.test/scratch/s61/@latest", 200, "latest")
wait_scrapes(2)

# --- counters moved as the traffic says ------------------------------------
checks = [
    ('sum(sparta_http_requests_total{route="zip",status="200"})', 7),
    ('sum(sparta_http_requests_total{route="info",status="200"})', 3),
    ('sum(sparta_http_requests_total{route="mod"})', 3),
    ('sum(sparta_http_requests_total{route="list",status="200"})', 1),
    ('sum(sparta_http_requests_total{route="latest",status="200"})', 1),
    ('sum(sparta_http_requests_total{status=~"404|410"})', 2),
    ('sum(sparta_http_requests_total{status=~"5.."})', 2),
    ('sum(sparta_http_request_duration_seconds_count{route="zip"})', 7),
    ('sum(sparta_http_response_bytes_total{route="zip"})', 2 * len(true_zip)),
    ('sum(sparta_cache_lookups_total{result="hit"})', 1),
    ('sum(sparta_cache_lookups_total{result="miss"})', 1),
    ('sum(sparta_upstream_fetches_total{outcome="ok"})', 3),
    ('sum(sparta_upstream_fetches_total{outcome="not_found"})', 1),
    ('sum(sparta_upstream_fetches_total{outcome=~"error|timeout|invalid"})', 2),
    ('sum(sparta_upstream_fetch_duration_seconds_count)', 3),
    ('sum(sparta_negative_cache_hits_total)', 1),
    ('sum(sparta_singleflight_saved_total)', 1),
    ('sum(sparta_storage_operation_duration_seconds_count)', 1),
    ('sum(sparta_ready)', 1),
    ('sum(sparta_build_info)', 1),
    ('sum(process_resident_memory_bytes)', 1),
    ('sum(sparta_memory_cache_entries)', 1),
    ('sum(sparta_memory_cache_weighted_bytes)', 1),
    ('sum(up{job="sparta"})', 1),
]
for expr, at_least in checks:
    v = scalar(expr)
    result(v is not None and v >= at_least, f"{expr} >= {at_least}", f"got {v}")

# --- every dashboard and alert expression ------------------------------------
with open(EXPRS, encoding="utf-8") as f:
    exprs = [json.loads(line) for line in f if line.strip()]
for e in exprs:
    expr = e["expr"]
    for k, v in GRAFANA_VARS.items():
        expr = expr.replace(k, v)
    doc = query(expr)
    if doc.get("status") != "success":
        result(False, f"{e['source']} evaluates", doc.get("error", doc))
        continue
    n = len(doc["data"]["result"])
    optional = set(e["metrics"]) & MAY_BE_ABSENT
    if e.get("alert"):
        # Thresholds filter the result; the metrics under it must exist.
        missing = []
        for m in e["metrics"]:
            if m not in MAY_BE_ABSENT and not query(f"count({m})")["data"]["result"]:
                missing.append(m)
        result(not missing, f"{e['source']} evaluates over existing series", f"no series for {missing}")
    elif optional:
        result(True, f"{e['source']} evaluates ({n} series; {sorted(optional)} may be absent)")
    else:
        result(n > 0, f"{e['source']} returns data ({n} series)", f"no data for {expr}")

# --- Prometheus's own evaluation of the loaded rules --------------------------
status, body = get(f"{PROM}/api/v1/rules")
groups = json.loads(body)["data"]["groups"]
rules = {r["name"]: r for g in groups for r in g["rules"]}
want_rules = {e["alert"] for e in exprs if e.get("alert")}
result(want_rules <= set(rules), "every alert is loaded", f"missing {want_rules - set(rules)}")
for name, r in sorted(rules.items()):
    result(r.get("health") == "ok" and not r.get("lastError"), f"rule {name} health ok",
           f"{r.get('health')} {r.get('lastError')}")
# The driven traffic had >5% 5xx and >10% failed upstream fetches; everything else is healthy.
active = {name: r.get("state") for name, r in rules.items()}
for name in ("SpartaHigh5xxRatio", "SpartaUpstreamFailureRatio"):
    result(active.get(name) in ("pending", "firing"), f"alert {name} is pending or firing", f"state {active.get(name)}")
for name in ("SpartaNotReady", "SpartaTargetDown", "SpartaStorageErrors", "SpartaSumdbMismatch"):
    result(active.get(name) == "inactive", f"alert {name} is inactive", f"state {active.get(name)}")

print(f"prometheus-test: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
