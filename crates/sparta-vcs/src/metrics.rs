//! VCS metrics: operations by kind and outcome, their durations, mirror
//! bytes and evictions. Labels are bounded: never a module path or URL.

use std::time::Instant;

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use crate::VcsError;

/// The metric families of the VCS source.
pub struct VcsMetrics {
    pub operations: IntCounterVec,
    pub duration: HistogramVec,
    pub mirror_bytes: IntGauge,
    pub evictions: IntCounter,
}

impl VcsMetrics {
    /// Unregistered metrics (registered by [`VcsMetrics::register`]).
    pub fn new() -> Self {
        VcsMetrics {
            operations: IntCounterVec::new(
                Opts::new(
                    "sparta_vcs_operations_total",
                    "VCS operations by kind and outcome.",
                ),
                &["op", "outcome"],
            )
            .expect("valid metric"),
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "sparta_vcs_operation_duration_seconds",
                    "Duration of VCS operations.",
                )
                .buckets(vec![
                    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                ]),
                &["op"],
            )
            .expect("valid metric"),
            mirror_bytes: IntGauge::new("sparta_vcs_mirror_bytes", "Bytes of git mirrors on disk.")
                .expect("valid metric"),
            evictions: IntCounter::new(
                "sparta_vcs_mirror_evictions_total",
                "Git mirrors evicted from the cache.",
            )
            .expect("valid metric"),
        }
    }

    /// Registers every family on `registry`.
    pub fn register(&self, registry: &Registry) -> Result<(), VcsError> {
        let err = |e: prometheus::Error| VcsError::Failed(format!("registering vcs metrics: {e}"));
        registry
            .register(Box::new(self.operations.clone()))
            .map_err(err)?;
        registry
            .register(Box::new(self.duration.clone()))
            .map_err(err)?;
        registry
            .register(Box::new(self.mirror_bytes.clone()))
            .map_err(err)?;
        registry
            .register(Box::new(self.evictions.clone()))
            .map_err(err)?;
        Ok(())
    }

    /// Counts one operation (`op` is a fixed name) and its duration.
    pub fn observe<T>(&self, op: &'static str, started: Instant, result: &Result<T, VcsError>) {
        self.observe_took(op, started.elapsed(), result);
    }

    /// Counts one operation that took `took`.
    pub fn observe_took<T>(
        &self,
        op: &'static str,
        took: std::time::Duration,
        result: &Result<T, VcsError>,
    ) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(e) => e.label(),
        };
        self.operations.with_label_values(&[op, outcome]).inc();
        self.duration
            .with_label_values(&[op])
            .observe(took.as_secs_f64());
    }
}

impl Default for VcsMetrics {
    fn default() -> Self {
        Self::new()
    }
}
