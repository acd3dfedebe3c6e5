//! OpenTelemetry trace export over OTLP/HTTP (protobuf), off unless the
//! standard `OTEL_*` variables ask for it.
//!
//! On when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//! is set (or `OTEL_TRACES_EXPORTER=otlp`, which then sends to the default
//! `http://localhost:4318`); off with `OTEL_SDK_DISABLED=true` or
//! `OTEL_TRACES_EXPORTER=none`. The SDK itself reads the rest:
//! `OTEL_SERVICE_NAME` (default here: `sparta`), `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_TRACES_SAMPLER`/`_ARG`, `OTEL_EXPORTER_OTLP_HEADERS`/`_TIMEOUT`,
//! `OTEL_BSP_*`. Requests' W3C `traceparent` becomes the parent of their span
//! (see `sparta_trace`).

use anyhow::{Result, bail};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// Whether the environment asks for trace export.
pub fn wanted(env: impl Fn(&str) -> Option<String>) -> bool {
    let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return false;
    }
    match env("OTEL_TRACES_EXPORTER").map(|v| v.trim().to_ascii_lowercase()) {
        Some(e) if e == "none" => false,
        Some(e) if e == "otlp" => true,
        _ => {
            env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
                || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        }
    }
}

/// The running exporter; [`Telemetry::shutdown`] sends what is queued.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Flushes queued spans and stops the exporter.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("warning: trace export did not shut down cleanly: {e}");
        }
    }
}

/// Starts the exporter if the environment asks for it, returning it and the
/// tracing layer that feeds it. Call before the async runtime starts (the
/// exporter's HTTP client runs on its own thread).
pub fn init<S>() -> Result<Option<(Telemetry, impl Layer<S>)>>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let env = |k: &str| std::env::var(k).ok();
    if !wanted(env) {
        return Ok(None);
    }
    let protocol = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .filter(|p| !p.trim().is_empty());
    if let Some(p) = protocol
        && p.trim() != "http/protobuf"
    {
        bail!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={p} is not supported: Sparta exports traces as \
             http/protobuf (the collector's port 4318)"
        );
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| anyhow::anyhow!("OTLP trace exporter: {e}"))?;
    let named = env("OTEL_SERVICE_NAME").is_some_and(|v| !v.trim().is_empty())
        || env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|v| v.contains("service.name="));
    let mut resource = Resource::builder();
    if !named {
        resource = resource.with_service_name("sparta");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    sparta_trace::enable();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("sparta"))
        .with_location(false)
        .with_threads(false);
    Ok(Some((Telemetry { provider }, layer)))
}

#[cfg(test)]
mod tests {
    use super::wanted;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn off_by_default_and_by_the_standard_switches() {
        assert!(!wanted(env(&[])));
        let ep = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        assert!(wanted(env(&[ep])));
        assert!(wanted(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4318/v1/traces"
        )])));
        assert!(wanted(env(&[("OTEL_TRACES_EXPORTER", "otlp")])));
        assert!(!wanted(env(&[ep, ("OTEL_TRACES_EXPORTER", "none")])));
        assert!(!wanted(env(&[ep, ("OTEL_SDK_DISABLED", "TRUE")])));
        assert!(wanted(env(&[ep, ("OTEL_SDK_DISABLED", "false")])));
        assert!(!wanted(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])));
    }
}
