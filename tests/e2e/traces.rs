//! OTLP trace export: the real binary sends its spans to a real OTLP/HTTP
//! receiver (tests/otlp-receiver, Go on the official protobuf definitions),
//! configured only by the standard `OTEL_*` variables. The receiver also
//! stands in front of the fixture upstream and records the `traceparent`
//! Sparta passes on.

use serde_json::Value;
use sparta_e2e::otlp::OtlpReceiver;
use sparta_e2e::{Sparta, SpartaOptions, fixture, http_client, scratch_module, version_path};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn named<'a>(spans: &'a [Value], name: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["name"] == name).collect()
}

/// Whether `span`'s chain of parents within `spans` reaches `ancestor`.
fn descends_from(spans: &[Value], span: &Value, ancestor: &str) -> bool {
    let mut parent = span["parent_span_id"].as_str().unwrap_or("").to_owned();
    for _ in 0..16 {
        if parent == ancestor {
            return true;
        }
        match spans.iter().find(|s| s["span_id"] == parent.as_str()) {
            Some(p) => parent = p["parent_span_id"].as_str().unwrap_or("").to_owned(),
            None => return false,
        }
    }
    false
}

async fn get(url: &str, traceparent: Option<&str>) -> u16 {
    let mut req = http_client().get(url);
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    req.send().await.expect("request").status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_receiver_with_their_parents() {
    let receiver = OtlpReceiver::start(&fixture().url);
    let mut opts = SpartaOptions::fixture();
    opts.upstream = receiver.url.clone();
    opts.env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), receiver.url.clone()),
        ("OTEL_SERVICE_NAME".into(), "sparta-e2e".into()),
        ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
    ];
    let sparta = Sparta::start(opts).await;
    assert!(sparta.log().contains("exporting traces over OTLP"));
    let module = scratch_module();

    // 1. A sampled caller's trace: Sparta's spans join it.
    let info = version_path(&module, "v1.0.0", "info");
    let tp = format!("00-{TRACE}-{PARENT}-01");
    assert_eq!(get(&format!("{}{info}", sparta.url), Some(&tp)).await, 200);

    // 2. A caller that did not sample: nothing exported, the flag passed on.
    let unsampled = "11111111111111111111111111111111";
    let modfile = version_path(&module, "v1.0.0", "mod");
    let tp_off = format!("00-{unsampled}-2222222222222222-00");
    assert_eq!(
        get(&format!("{}{modfile}", sparta.url), Some(&tp_off)).await,
        200
    );

    // 3. No traceparent: a trace of Sparta's own.
    let list = format!("/{module}/@v/list");
    assert_eq!(get(&format!("{}{list}", sparta.url), None).await, 200);

    let spans = receiver
        .wait_trace(TRACE, |s| {
            ["GET", "cache info", "storage get", "source info"]
                .iter()
                .all(|n| !named(s, n).is_empty())
        })
        .await;
    let roots = named(&spans, "GET");
    assert_eq!(roots.len(), 1, "request spans of the trace: {spans:#?}");
    let root = roots[0];
    assert_eq!(root["parent_span_id"], PARENT, "{root}");
    assert_eq!(root["kind"], "SPAN_KIND_SERVER", "{root}");
    assert_eq!(root["service"], "sparta-e2e", "{root}");
    assert_eq!(
        root["attributes"]["http.response.status_code"], "200",
        "{root}"
    );
    assert_eq!(root["attributes"]["url.path"], info.as_str(), "{root}");
    let root_id = root["span_id"].as_str().unwrap();
    assert_eq!(root_id.len(), 16);
    for tier in ["cache info", "storage get", "source info", "storage put"] {
        let found = named(&spans, tier);
        assert!(!found.is_empty(), "no {tier} span in {spans:#?}");
        for s in found {
            assert!(
                descends_from(&spans, s, root_id),
                "{tier} is not under the request: {s}"
            );
        }
    }

    // The upstream saw the trace, with the source span as its parent.
    let source = named(&spans, "source info")[0]["span_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let requests = receiver.requests();
    let upstream = requests
        .iter()
        .find(|r| r["path"] == info.as_str())
        .unwrap_or_else(|| panic!("the upstream never saw {info}: {requests:#?}"));
    assert_eq!(
        upstream["traceparent"],
        format!("00-{TRACE}-{source}-01"),
        "{upstream}"
    );

    let off = requests
        .iter()
        .find(|r| r["path"] == modfile.as_str())
        .unwrap_or_else(|| panic!("the upstream never saw {modfile}: {requests:#?}"));
    let off_tp = off["traceparent"].as_str().unwrap();
    assert!(
        off_tp.starts_with(&format!("00-{unsampled}-")) && off_tp.ends_with("-00"),
        "{off_tp}"
    );

    // The third request's own trace: a root with no parent, passed on too.
    let upstream_list = requests
        .iter()
        .find(|r| r["path"] == list.as_str())
        .unwrap_or_else(|| panic!("the upstream never saw {list}: {requests:#?}"));
    let own_trace = upstream_list["traceparent"].as_str().unwrap()[3..35].to_owned();
    assert_ne!(own_trace, TRACE);
    let own = receiver
        .wait_trace(&own_trace, |s| !named(s, "GET").is_empty())
        .await;
    let own_root = named(&own, "GET");
    assert_eq!(own_root.len(), 1, "{own:#?}");
    assert_eq!(own_root[0]["parent_span_id"], "", "{}", own_root[0]);

    // The unsampled trace was never exported (the others, sent after it, were).
    assert!(
        receiver.spans().iter().all(|s| s["trace_id"] != unsampled),
        "an unsampled trace was exported"
    );
}
