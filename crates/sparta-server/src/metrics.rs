//! Prometheus metrics: one struct owns the registry and every family.
//! Labels are bounded enums only; never a module path, version or client.

use std::sync::Arc;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The route kind of a request: the `route` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    List,
    Info,
    Mod,
    Zip,
    Latest,
    Sumdb,
    Other,
}

impl RouteKind {
    /// Every kind, in declaration order (the index [`Metrics::route`] uses).
    pub const ALL: [RouteKind; 7] = [
        RouteKind::List,
        RouteKind::Info,
        RouteKind::Mod,
        RouteKind::Zip,
        RouteKind::Latest,
        RouteKind::Sumdb,
        RouteKind::Other,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            RouteKind::List => "list",
            RouteKind::Info => "info",
            RouteKind::Mod => "mod",
            RouteKind::Zip => "zip",
            RouteKind::Latest => "latest",
            RouteKind::Sumdb => "sumdb",
            RouteKind::Other => "other",
        }
    }
}

/// The series every request of one route touches, resolved once: a
/// labelled lookup hashes its values and takes a lock on each call.
pub struct RouteSeries {
    pub duration: Histogram,
    pub response_bytes: IntCounter,
    /// `sparta_http_requests_total` for GET 200 and GET 304, the usual answers.
    pub get_ok: IntCounter,
    pub get_not_modified: IntCounter,
}

/// Every metric Sparta exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub http_in_flight: IntGauge,
    pub http_response_bytes: IntCounterVec,
    pub cache_lookups: IntCounterVec,
    pub memory_cache_bytes: IntGauge,
    pub memory_cache_entries: IntGauge,
    pub memory_cache_evictions: IntCounter,
    pub upstream_fetches: IntCounterVec,
    pub upstream_duration: HistogramVec,
    pub upstream_in_flight: IntGauge,
    pub singleflight_saved: IntCounterVec,
    pub negative_cache_hits: IntCounterVec,
    pub storage_duration: HistogramVec,
    pub storage_errors: IntCounterVec,
    pub sumdb_verifications: IntCounterVec,
    pub ready: IntGauge,
    pub lease_mode: IntGaugeVec,
    pub lease_renewal_failures: IntCounter,
    /// 1 for the `--network` mode in use.
    pub network_mode: IntGaugeVec,
    /// Answers given from the store because a source failed (`--network fallback`).
    pub network_fallback_answers: IntCounterVec,
    /// Requests by the download mode their module's pattern picked.
    pub download_mode_requests: IntCounterVec,
    /// 302s sent by a download mode: `redirect` (another proxy) or `presigned` (the bucket).
    pub download_redirects: IntCounterVec,
    /// `async` download mode's background fetches: started or dropped (too many).
    pub background_fetches: IntCounterVec,
    /// Client connections per listener (see [`crate::serve`]).
    pub connections: crate::serve::ConnMetrics,
    routes: Arc<[RouteSeries; 7]>,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let r = Registry::new();
        let latency = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0, 60.0, 120.0,
        ];
        let upstream = vec![
            0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
        ];
        let storage = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0,
        ];
        let http_requests = counter(
            &r,
            "sparta_http_requests_total",
            "HTTP requests served.",
            &["route", "method", "status"],
        );
        let http_duration = histogram(
            &r,
            "sparta_http_request_duration_seconds",
            "Time to response headers.",
            &["route"],
            latency,
        );
        let http_response_bytes = counter(
            &r,
            "sparta_http_response_bytes_total",
            "Response body bytes sent.",
            &["route"],
        );
        let routes = Arc::new(RouteKind::ALL.map(|route| RouteSeries {
            duration: http_duration.with_label_values(&[route.label()]),
            response_bytes: http_response_bytes.with_label_values(&[route.label()]),
            get_ok: http_requests.with_label_values(&[route.label(), "GET", "200"]),
            get_not_modified: http_requests.with_label_values(&[route.label(), "GET", "304"]),
        }));
        let m = Metrics {
            http_requests,
            http_duration,
            http_response_bytes,
            routes,
            http_in_flight: gauge(
                &r,
                "sparta_http_requests_in_flight",
                "HTTP requests being served.",
            ),
            cache_lookups: counter(
                &r,
                "sparta_cache_lookups_total",
                "Lookups by tier, file kind and result.",
                &["tier", "kind", "result"],
            ),
            memory_cache_bytes: gauge(
                &r,
                "sparta_memory_cache_weighted_bytes",
                "Bytes held by the memory cache.",
            ),
            memory_cache_entries: gauge(
                &r,
                "sparta_memory_cache_entries",
                "Entries in the memory cache.",
            ),
            memory_cache_evictions: {
                let c = IntCounter::new(
                    "sparta_memory_cache_evictions_total",
                    "Entries evicted from the memory cache for size.",
                )
                .expect("valid metric");
                r.register(Box::new(c.clone())).expect("unique metric");
                c
            },
            upstream_fetches: counter(
                &r,
                "sparta_upstream_fetches_total",
                "Upstream fetches by outcome.",
                &["kind", "outcome"],
            ),
            upstream_duration: histogram(
                &r,
                "sparta_upstream_fetch_duration_seconds",
                "Upstream fetch duration, body included.",
                &["kind"],
                upstream,
            ),
            upstream_in_flight: gauge(
                &r,
                "sparta_upstream_fetches_in_flight",
                "Upstream fetches under way.",
            ),
            singleflight_saved: counter(
                &r,
                "sparta_singleflight_saved_total",
                "Requests that joined a fetch already under way.",
                &["kind"],
            ),
            negative_cache_hits: counter(
                &r,
                "sparta_negative_cache_hits_total",
                "Not-found answers served from the negative cache.",
                &["kind"],
            ),
            storage_duration: histogram(
                &r,
                "sparta_storage_operation_duration_seconds",
                "Storage operation duration.",
                &["op", "outcome"],
                storage,
            ),
            storage_errors: counter(
                &r,
                "sparta_storage_errors_total",
                "Failed storage operations.",
                &["op"],
            ),
            sumdb_verifications: counter(
                &r,
                "sparta_sumdb_verifications_total",
                "Checksum database verifications by outcome.",
                &["outcome"],
            ),
            ready: gauge(&r, "sparta_ready", "1 when storage answers."),
            lease_mode: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "sparta_fetch_coordination",
                        "1 for the cross-replica fetch coordination in use (lease or local).",
                    ),
                    &["mode"],
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            lease_renewal_failures: {
                let c = IntCounter::new(
                    "sparta_lease_renewal_failures_total",
                    "Lease renewals that failed or found the lease taken over while fetching.",
                )
                .expect("valid metric");
                r.register(Box::new(c.clone())).expect("unique metric");
                c
            },
            network_mode: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "sparta_network_mode",
                        "1 for the network mode in use (strict, offline or fallback).",
                    ),
                    &["mode"],
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            network_fallback_answers: counter(
                &r,
                "sparta_network_fallback_answers_total",
                "Answers given from the store because a source failed, by kind.",
                &["kind"],
            ),
            download_mode_requests: counter(
                &r,
                "sparta_download_mode_requests_total",
                "Proxy requests by the download mode of their module (sync, async, redirect, none).",
                &["mode"],
            ),
            download_redirects: counter(
                &r,
                "sparta_download_redirects_total",
                "302 answers of the download modes: redirect (to another proxy) or presigned (to the bucket).",
                &["mode"],
            ),
            background_fetches: counter(
                &r,
                "sparta_background_fetches_total",
                "Background fetches of the async download mode: started, or dropped when too many run.",
                &["outcome"],
            ),
            connections: crate::serve::ConnMetrics::register(&r),
            registry: r,
        };
        let build = Gauge::with_opts(
            Opts::new("sparta_build_info", "Build information.")
                .const_label("version", env!("CARGO_PKG_VERSION")),
        )
        .expect("valid metric");
        build.set(1.0);
        m.touch_known_series();
        m.registry.register(Box::new(build)).expect("unique metric");
        #[cfg(target_os = "linux")]
        m.registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("unique metric");
        m
    }

    /// The pre-resolved series of `route`.
    pub fn route(&self, route: RouteKind) -> &RouteSeries {
        &self.routes[route as usize]
    }

    /// Creates the series alerts and dashboards divide by, at zero, so a rate
    /// over them exists before the first event (a counter that appears at 1
    /// hides its first increase from `rate`).
    fn touch_known_series(&self) {
        for outcome in ["ok", "mismatch", "error", "skipped"] {
            self.sumdb_verifications.with_label_values(&[outcome]);
        }
        for kind in ["info", "mod", "zip", "list", "latest", "query"] {
            for outcome in ["ok", "not_found", "error", "timeout", "invalid"] {
                self.upstream_fetches.with_label_values(&[kind, outcome]);
            }
            self.singleflight_saved.with_label_values(&[kind]);
            self.negative_cache_hits.with_label_values(&[kind]);
        }
        for op in ["get", "head", "put", "list", "delete"] {
            self.storage_errors.with_label_values(&[op]);
        }
        for mode in ["redirect", "presigned"] {
            self.download_redirects.with_label_values(&[mode]);
        }
    }

    /// The registry, for families defined beside their layer (access, audit) and other crates (the VCS fetcher).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Renders the registry in the Prometheus text format.
    /// Registers a metric owned elsewhere (the binary's log sink).
    pub fn register(&self, c: Box<dyn prometheus::core::Collector>) {
        self.registry.register(c).expect("unique metric");
    }

    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("text format is utf-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_series_are_the_labelled_ones() {
        let m = Metrics::new();
        for (i, route) in RouteKind::ALL.into_iter().enumerate() {
            assert_eq!(route as usize, i, "ALL is in declaration order");
            m.route(route).get_ok.inc();
            m.route(route).response_bytes.inc_by(7);
            assert_eq!(
                m.http_requests
                    .with_label_values(&[route.label(), "GET", "200"])
                    .get(),
                1
            );
            assert_eq!(
                m.http_response_bytes
                    .with_label_values(&[route.label()])
                    .get(),
                7
            );
        }
        let text = m.render();
        assert!(
            text.contains(
                r#"sparta_http_requests_total{method="GET",route="info",status="200"} 1"#
            )
        );
    }
}
