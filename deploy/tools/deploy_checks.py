#!/usr/bin/env python3
"""Structural checks of Sparta's deployment files, used by scripts/deploy-check.sh
and scripts/deploy-prometheus-test.sh.

  deploy_checks.py dashboard FILE            the Grafana dashboard is sound and every
                                             query uses metrics and labels from CONTRACTS.md
  deploy_checks.py rules FILE                the same for every alert rule expression
  deploy_checks.py rendered FILE VALUES      checks on one `helm template` output
  deploy_checks.py exprs DASHBOARD RULES     prints every dashboard and rule expression
                                             as JSON lines (source, expr, metrics)

Needs PyYAML (in the kubernetes-validate venv) for the YAML commands.
"""

import hashlib
import json
import os
import re
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONTRACTS = os.path.join(ROOT, "docs", "CONTRACTS.md")

# Labels Prometheus adds at scrape time (static configs, ServiceMonitors).
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "container", "endpoint"}
# From the prometheus crate's process collector (CONTRACTS.md: `process_*`).
PROCESS_METRICS = {
    "process_cpu_seconds_total", "process_open_fds", "process_max_fds",
    "process_virtual_memory_bytes", "process_virtual_memory_max_bytes",
    "process_resident_memory_bytes", "process_start_time_seconds", "process_threads",
}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "inf", "nan", "atan2",
}

failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL: {msg}", file=sys.stderr)


def load_contract():
    """Metric name -> {"type", "labels": {label: set(values) or None}} from CONTRACTS.md."""
    metrics = {}
    row = re.compile(r"^\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|\s*([^|]+?)\s*\|\s*([^|]*?)\s*\|\s*$")
    with open(CONTRACTS, encoding="utf-8") as f:
        for line in f:
            m = row.match(line)
            if not m or not m.group(1).startswith("sparta_"):
                continue
            name, typ, labels = m.groups()
            typ = typ.split()[0]
            lab = {}
            for lm in re.finditer(r"`([a-z_]+)`(?:\s*\(([^)]*)\))?", labels):
                values = None
                if lm.group(2):
                    values = {v.strip() for v in lm.group(2).split(",")}
                    # "(1)" or prose is not an enumeration of values.
                    if not all(re.fullmatch(r"[a-z_]+", v) for v in values):
                        values = None
                lab[lm.group(1)] = values
            # A `kind` label without its own list shares the cache's kinds.
            metrics[name] = {"type": typ, "labels": lab}
    kinds = metrics.get("sparta_cache_lookups_total", {}).get("labels", {}).get("kind")
    for spec in metrics.values():
        if "kind" in spec["labels"] and spec["labels"]["kind"] is None:
            spec["labels"]["kind"] = kinds
    if len(metrics) < 10:
        fail(f"found only {len(metrics)} sparta_* metrics in {CONTRACTS}: table format changed?")
    return metrics


def resolve(name, contract, allow_up):
    """Contract entry and extra labels for a series name, or None if unknown."""
    if name in contract:
        return contract[name], set()
    for suffix, extra in (("_bucket", {"le"}), ("_count", set()), ("_sum", set())):
        base = name[: -len(suffix)] if name.endswith(suffix) else None
        if base and contract.get(base, {}).get("type") == "histogram":
            return contract[base], extra
    if name in PROCESS_METRICS:
        return {"type": "process", "labels": {}}, set()
    if allow_up and name == "up":
        return {"type": "gauge", "labels": {}}, set()
    return None


def strip_strings(expr):
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def selectors(expr):
    """(metric name, matcher text) for every vector selector in expr."""
    out = []
    clean = re.sub(r"\[[^\]]*\]", "", expr)
    # name{...}
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{((?:[^{}\"]|\"(?:[^\"\\]|\\.)*\")*)\}", clean):
        out.append((m.group(1), m.group(2)))
    # bare names: drop strings, braces, grouping clauses, then identifiers not
    # followed by "(" are metric names.
    bare = strip_strings(clean)
    bare = re.sub(r"\{[^{}]*\}", " ", bare)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    named = {n for n, _ in out}
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", bare):
        word = m.group(1)
        if word.lower() in PROMQL_WORDS or word in named:
            continue
        out.append((word, ""))
    return out


def grouping_labels(expr):
    labels = set()
    for m in re.finditer(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", strip_strings(expr)):
        labels |= {l.strip() for l in m.group(2).split(",") if l.strip()}
    return labels


def check_expr(where, expr, contract, allow_up=False, template_vars=False):
    """Every metric, label and enumerated label value in expr is in the contract."""
    used = []
    sels = selectors(expr)
    if not sels:
        fail(f"{where}: no metric in {expr!r}")
    allowed_all = set(TARGET_LABELS)
    for name, matchers in sels:
        spec = resolve(name, contract, allow_up)
        if spec is None:
            fail(f"{where}: metric {name!r} is not in docs/CONTRACTS.md")
            continue
        entry, extra = spec
        used.append(name)
        allowed = set(entry["labels"]) | extra | TARGET_LABELS
        allowed_all |= allowed
        for mm in re.finditer(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', matchers):
            label, op, value = mm.groups()
            if label not in allowed:
                fail(f"{where}: {name} has no label {label!r} (contract: {sorted(entry['labels'])})")
                continue
            values = entry["labels"].get(label)
            if values and "$" not in value:
                alts = value.split("|") if op in ("=~", "!~") else [value]
                if all(re.fullmatch(r"[a-z_]+", a) for a in alts):
                    for a in alts:
                        if a not in values:
                            fail(f"{where}: {name}{{{label}}} has no value {a!r} (contract: {sorted(values)})")
        if not template_vars and "$" in matchers:
            fail(f"{where}: template variable in a rule expression: {expr!r}")
    for label in grouping_labels(expr):
        if label not in allowed_all:
            fail(f"{where}: groups by {label!r}, a label none of its metrics has")
    return used


def walk_panels(panels):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))


def cmd_dashboard(path):
    contract = load_contract()
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        dash = json.loads(text)
    except json.JSONDecodeError as e:
        fail(f"{path}: not JSON: {e}")
        return
    if "__inputs" in dash or "__requires" in dash:
        fail(f"{path}: has __inputs/__requires (an export for sharing): use the datasource variable")
    if "${DS_" in text:
        fail(f"{path}: references an import-time ${{DS_...}} input")
    if dash.get("id") is not None:
        fail(f"{path}: id must be null so Grafana assigns one")
    if not dash.get("uid"):
        fail(f"{path}: no uid")
    variables = dash.get("templating", {}).get("list", [])
    ds = [v for v in variables if v.get("type") == "datasource"]
    if not ds or ds[0].get("name") != "datasource" or ds[0].get("query") != "prometheus":
        fail(f"{path}: needs a template variable `datasource` of type datasource with query prometheus")
    var_names = {v.get("name") for v in variables}
    for v in variables:
        if v.get("type") == "query":
            if v.get("datasource", {}).get("uid") != "${datasource}":
                fail(f"{path}: variable {v.get('name')} does not query ${{datasource}}")
            q = v.get("query", {})
            q = q.get("query") if isinstance(q, dict) else q
            m = re.fullmatch(r"label_values\((.*),\s*([a-z_]+)\)", q or "")
            if not m:
                fail(f"{path}: variable {v.get('name')}: unexpected query {q!r}")
            else:
                check_expr(f"variable {v.get('name')}", m.group(1), contract, template_vars=True)
    ids, titles, n_targets = set(), set(), 0
    rows = [p["title"] for p in dash.get("panels", []) if p.get("type") == "row"]
    for want in ("Traffic", "Latency", "Cache", "Upstream", "Storage", "Singleflight", "Memory"):
        if want not in rows:
            fail(f"{path}: no row {want!r} (rows: {rows})")
    for p in walk_panels(dash.get("panels", [])):
        pid = p.get("id")
        if pid in ids:
            fail(f"{path}: duplicate panel id {pid}")
        ids.add(pid)
        if p.get("type") == "row":
            continue
        title = p.get("title", "")
        if title in titles:
            fail(f"{path}: duplicate panel title {title!r}")
        titles.add(title)
        if p.get("datasource", {}).get("uid") != "${datasource}":
            fail(f"{path}: panel {title!r} does not use ${{datasource}}")
        targets = p.get("targets", [])
        if not targets:
            fail(f"{path}: panel {title!r} has no query")
        for t in targets:
            n_targets += 1
            expr = t.get("expr", "")
            if t.get("datasource", {}).get("uid") != "${datasource}":
                fail(f"{path}: panel {title!r} target {t.get('refId')} does not use ${{datasource}}")
            for var in re.findall(r"\$(\w+)", expr):
                if var not in var_names and not var.startswith("__"):
                    fail(f"{path}: panel {title!r} uses undefined variable ${var}")
            check_expr(f"panel {title!r}", expr, contract, template_vars=True)
    text_all = json.dumps(dash)
    for need in ("sparta_http_request_duration_seconds_bucket", "histogram_quantile(0.5,",
                 "histogram_quantile(0.95,", "histogram_quantile(0.99,", "sparta_cache_lookups_total",
                 "sparta_upstream_fetches_total", "sparta_upstream_fetch_duration_seconds_bucket",
                 "sparta_upstream_fetches_in_flight", "sparta_storage_operation_duration_seconds_bucket",
                 "sparta_singleflight_saved_total", "process_resident_memory_bytes",
                 "sparta_memory_cache_weighted_bytes"):
        if need not in text_all:
            fail(f"{path}: no panel queries {need}")
    print(f"dashboard: {len(titles)} panels, {n_targets} queries checked against CONTRACTS.md")


def load_yaml(path):
    import yaml  # the venv's PyYAML
    with open(path, encoding="utf-8") as f:
        return list(yaml.safe_load_all(f))


def cmd_rules(path):
    contract = load_contract()
    doc = load_yaml(path)[0]
    n = 0
    names = set()
    for g in doc.get("groups", []):
        for r in g.get("rules", []):
            n += 1
            name = r.get("alert") or r.get("record")
            names.add(name)
            check_expr(f"rule {name}", r["expr"], contract, allow_up=True)
            if r.get("alert") and r.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
                fail(f"rule {name}: severity label missing or unknown")
            if r.get("alert") and not r.get("annotations", {}).get("summary"):
                fail(f"rule {name}: no summary annotation")
    for want in ("SpartaHigh5xxRatio", "SpartaHighLatencyP95", "SpartaUpstreamFailureRatio",
                 "SpartaStorageErrors", "SpartaNotReady", "SpartaTargetDown", "SpartaSumdbMismatch"):
        if want not in names:
            fail(f"{path}: no alert {want}")
    print(f"rules: {n} rule expressions checked against CONTRACTS.md")


def flags_from_docs():
    """Settings keys: flag names from CONTRACTS.md and README.md tables, with `_`."""
    keys = set()
    for doc in (CONTRACTS, os.path.join(ROOT, "README.md")):
        if not os.path.exists(doc):
            continue
        with open(doc, encoding="utf-8") as f:
            for line in f:
                if line.startswith("|"):
                    for flag in re.findall(r"`--([a-z0-9-]+)`", line.split("|")[1]):
                        keys.add(flag.replace("-", "_"))
    return keys


def cmd_rendered(path, values_name):
    docs = [d for d in load_yaml(path) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    where = f"render({values_name})"
    dep = (by_kind.get("Deployment") or [None])[0]
    if dep is None:
        fail(f"{where}: no Deployment")
        return
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    if spec["strategy"]["type"] != "RollingUpdate":
        fail(f"{where}: strategy is not RollingUpdate")
    hpa = by_kind.get("HorizontalPodAutoscaler")
    if hpa and "replicas" in spec:
        fail(f"{where}: replicas set although an HPA scales the Deployment")
    if hpa:
        metrics = hpa[0]["spec"]["metrics"]
        if not any(m.get("resource", {}).get("name") == "cpu" for m in metrics):
            fail(f"{where}: HPA does not scale on CPU")
    sc = c.get("securityContext", {})
    psc = pod.get("securityContext", {})
    if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
        fail(f"{where}: not runAsNonRoot")
    if not sc.get("readOnlyRootFilesystem"):
        fail(f"{where}: root filesystem is writable")
    if "ALL" not in sc.get("capabilities", {}).get("drop", []):
        fail(f"{where}: capabilities not dropped")
    if sc.get("allowPrivilegeEscalation") is not False:
        fail(f"{where}: allowPrivilegeEscalation not false")
    probes = {k: c.get(k, {}).get("httpGet", {}).get("path") for k in ("livenessProbe", "readinessProbe", "startupProbe")}
    if probes != {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}:
        fail(f"{where}: probes are {probes}")
    if not c.get("resources", {}).get("requests"):
        fail(f"{where}: no resource requests")
    if not pod.get("topologySpreadConstraints"):
        fail(f"{where}: no topologySpreadConstraints")
    ann = spec["template"]["metadata"].get("annotations", {})
    if not re.fullmatch(r"[0-9a-f]{64}", ann.get("checksum/config", "")):
        fail(f"{where}: no checksum/config pod annotation")
    # Config: the TOML parses, its keys are documented flags, and the pod reads it.
    cms = {cm["metadata"]["name"]: cm for cm in by_kind.get("ConfigMap", [])}
    cfg_cm = next((cm for cm in cms.values() if "config.toml" in cm.get("data", {})), None)
    if cfg_cm is None:
        fail(f"{where}: no ConfigMap with config.toml")
        return
    try:
        cfg = tomllib.loads(cfg_cm["data"]["config.toml"])
    except tomllib.TOMLDecodeError as e:
        fail(f"{where}: config.toml does not parse: {e}")
        return
    known = flags_from_docs()
    for key in cfg:
        if key not in known:
            fail(f"{where}: config.toml key {key!r} is not a documented flag ({sorted(known)})")
    for key in ("listen", "storage", "upstream", "spool_dir", "shutdown_grace"):
        if key not in cfg:
            fail(f"{where}: config.toml has no {key}")
    if c.get("args", [])[:3] != ["serve", "--config", "/etc/sparta/config.toml"]:
        fail(f"{where}: container args are {c.get('args')}")
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    if mounts.get("config") != "/etc/sparta" or vols.get("config", {}).get("configMap", {}).get("name") != cfg_cm["metadata"]["name"]:
        fail(f"{where}: config.toml is not mounted at /etc/sparta")
    if "emptyDir" not in vols.get("spool", {}) or mounts.get("spool") != cfg.get("spool_dir"):
        fail(f"{where}: spool_dir {cfg.get('spool_dir')} is not an emptyDir mount")
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    for key, var in (("storage", "SPARTA_STORAGE"), ("listen", "SPARTA_LISTEN"), ("spool_dir", "SPARTA_SPOOL_DIR"), ("log_format", "SPARTA_LOG_FORMAT")):
        if var in env and key in cfg and env[var] != cfg[key]:
            fail(f"{where}: env {var}={env[var]!r} overrides config.toml {key}={cfg[key]!r}")
    grace = parse_seconds(cfg["shutdown_grace"])
    pre = 0
    cmd = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    if cmd[:1] == ["sleep"]:
        pre = int(cmd[1])
    if pod.get("terminationGracePeriodSeconds", 30) <= grace + pre:
        fail(f"{where}: terminationGracePeriodSeconds {pod.get('terminationGracePeriodSeconds')} <= shutdown grace {grace}s + preStop {pre}s")
    storage = cfg["storage"]
    if storage.startswith("s3://"):
        if "data" in vols:
            fail(f"{where}: s3 storage but a data volume is mounted")
        if cfg.get("s3_endpoint") and not cfg.get("s3_path_style", False):
            bucket = storage[5:].split("/")[0]
            if not re.match(rf"https?://{re.escape(bucket)}\.", cfg["s3_endpoint"]):
                fail(f"{where}: virtual-hosted endpoint {cfg['s3_endpoint']} does not carry bucket {bucket}")
    elif storage.startswith("/"):
        if mounts.get("data") != storage:
            fail(f"{where}: filesystem storage {storage} is not a mounted volume")
        if spec.get("replicas", 1) != 1:
            fail(f"{where}: filesystem storage with {spec.get('replicas')} replicas")
    # Monitoring objects: the rules and the dashboard are the deploy/ files, unchanged.
    for pr in by_kind.get("PrometheusRule", []):
        rules = load_yaml(os.path.join(ROOT, "deploy", "prometheus", "alerts.yaml"))[0]
        if pr["spec"] != rules:
            fail(f"{where}: PrometheusRule spec differs from deploy/prometheus/alerts.yaml")
    dash_cms = [cm for cm in cms.values() if cm["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    if not dash_cms:
        fail(f"{where}: no ConfigMap labelled grafana_dashboard: \"1\"")
    with open(os.path.join(ROOT, "deploy", "grafana", "sparta.json"), encoding="utf-8") as f:
        dash = f.read()
    for cm in dash_cms:
        got = cm.get("data", {}).get("sparta.json")
        if got != dash:
            fail(f"{where}: dashboard ConfigMap data is not deploy/grafana/sparta.json byte for byte")
    for sm in by_kind.get("ServiceMonitor", []):
        svc = by_kind.get("Service", [{}])[0]
        sel = sm["spec"]["selector"]["matchLabels"]
        if any(svc.get("metadata", {}).get("labels", {}).get(k) != v for k, v in sel.items()):
            fail(f"{where}: ServiceMonitor selector {sel} does not match the Service's labels")
        ports = {p["name"] for p in svc.get("spec", {}).get("ports", [])}
        for ep in sm["spec"]["endpoints"]:
            if ep.get("port") not in ports or ep.get("path") != "/metrics":
                fail(f"{where}: ServiceMonitor endpoint {ep} does not scrape the Service's /metrics")
            # Sparta serving TLS answers only https on its port.
            want = "https" if "SPARTA_TLS_CERT" in env else "http"
            if ep.get("scheme", "http") != want:
                fail(f"{where}: ServiceMonitor endpoint scheme {ep.get('scheme', 'http')} but Sparta serves {want}")
    print(f"rendered({values_name}): {len(docs)} objects: {', '.join(sorted(by_kind))}")


def parse_seconds(d):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", d.strip())
    if not m:
        fail(f"bad duration {d!r}")
        return 0
    n, unit = int(m.group(1)), m.group(2) or "s"
    return {"ms": n / 1000, "s": n, "m": n * 60, "h": n * 3600}[unit]


def cmd_exprs(dash_path, rules_path):
    contract = load_contract()
    with open(dash_path, encoding="utf-8") as f:
        dash = json.load(f)
    for p in walk_panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            names = sorted({n for n, _ in selectors(t["expr"])})
            print(json.dumps({"source": f"panel {p['title']!r} {t['refId']}", "expr": t["expr"], "metrics": names}))
    for r_doc in load_yaml(rules_path):
        for g in r_doc.get("groups", []):
            for r in g.get("rules", []):
                names = sorted({n for n, _ in selectors(r["expr"])})
                print(json.dumps({"source": f"alert {r.get('alert') or r.get('record')}", "alert": r.get("alert"),
                                  "expr": r["expr"], "metrics": names}))
    del contract


def main():
    cmds = {"dashboard": (cmd_dashboard, 1), "rules": (cmd_rules, 1), "rendered": (cmd_rendered, 2), "exprs": (cmd_exprs, 2)}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds or len(sys.argv) - 2 != cmds[sys.argv[1]][1]:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    fn, _ = cmds[sys.argv[1]]
    fn(*sys.argv[2:])
    if failures:
        print(f"{len(failures)} problem(s)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
