//! W3C trace context (`traceparent`, `tracestate`) for Sparta.
//!
//! Incoming requests name their parent span in these headers; [`set_parent`]
//! makes a tracing span its child. Outgoing calls (upstream proxies, the
//! checksum database, VCS discovery) carry the current span's context with
//! [`headers`]. Both go through the global propagator, which the binary sets
//! to the W3C one when OTLP export is on; with export off the propagator is
//! a no-op, so nothing is added and nothing is parsed.
//!
//! Spans exist only while export is on ([`enable`]): with it off, requests
//! pay for no span and log lines carry no span fields.

use std::sync::atomic::{AtomicBool, Ordering};

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns span creation on (the binary calls it once it exports traces).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether spans are being made and exported.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The span of one incoming request, child of the caller's `traceparent`;
/// record `http.response.status_code` on it when the answer is known.
pub fn request_span(method: &http::Method, path: &str, headers: &HeaderMap) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "request",
        otel.name = %method,
        otel.kind = "server",
        http.request.method = %method,
        url.path = %path,
        http.response.status_code = tracing::field::Empty,
    );
    set_parent(&span, headers);
    span
}

/// The span of one tier's part of a request: `cache`, `storage` or `source`,
/// with the operation (`get`, `zip`, ...), named `"<tier> <op>"`.
pub fn tier_span(tier: &'static str, op: &'static str) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        "tier",
        otel.name = %format_args!("{tier} {op}"),
        sparta.tier = tier,
        sparta.op = op,
    )
}

/// The span of one outgoing HTTP call (client kind), e.g. to the checksum
/// database or for VCS discovery. No URL is recorded: configured URLs can
/// carry credentials.
pub fn client_span(what: &'static str) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    tracing::info_span!("client", otel.name = what, otel.kind = "client")
}

/// Reads propagation fields from request headers.
struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Writes propagation fields into outgoing headers.
struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Makes `span` a child of the remote span named in `headers`, if any.
///
/// A missing or malformed `traceparent` leaves `span` a root: the W3C
/// propagator ignores what it cannot parse.
pub fn set_parent(span: &tracing::Span, headers: &HeaderMap) {
    let cx =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    use opentelemetry::trace::TraceContextExt;
    if cx.span().span_context().is_valid() {
        // Only errors when no OpenTelemetry layer is installed: then there
        // is nothing to link anyway.
        let _ = span.set_parent(cx);
    }
}

/// The propagation headers of the current span, for an outgoing request.
pub fn headers() -> HeaderMap {
    let mut map = HeaderMap::new();
    if !enabled() {
        return map;
    }
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeaderInjector(&mut map))
    });
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn parent_in_and_out() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let subscriber = tracing_subscriber::registry().with(layer);
        enable();
        tracing::subscriber::with_default(subscriber, || {
            let mut incoming = HeaderMap::new();
            let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
            incoming.insert("traceparent", HeaderValue::from_static(parent));
            let span = tracing::info_span!("request");
            set_parent(&span, &incoming);
            let out = span.in_scope(headers);
            let tp = out["traceparent"].to_str().unwrap();
            // Same trace, a new span id (ours), sampled as the parent said.
            assert!(
                tp.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
                "{tp}"
            );
            assert!(!tp.contains("b7ad6b7169203331"), "{tp}");
            assert!(tp.ends_with("-01"), "{tp}");

            // Garbage is ignored: a new root trace.
            let mut bad = HeaderMap::new();
            bad.insert("traceparent", HeaderValue::from_static("00-zz-yy-01"));
            let span = tracing::info_span!("request");
            set_parent(&span, &bad);
            let out = span.in_scope(headers);
            let tp = out["traceparent"].to_str().unwrap();
            assert!(!tp.contains("0af7651916cd43dd8448eb211c80319c"), "{tp}");
        });
    }
}
