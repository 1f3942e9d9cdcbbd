//! Prometheus metrics of procedure calls: the process-wide recorder, its
//! upkeep, and the per-call counter and histogram. Below the HTTP adapter
//! (which records every call) and the server (which serves `/metrics`).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::StatusCode;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Counter of procedure calls, labelled `procedure` and `code`.
pub const REQUESTS_TOTAL: &str = "gatehouse_requests_total";
/// Histogram of procedure call durations, labelled like [`REQUESTS_TOTAL`].
pub const REQUEST_DURATION: &str = "gatehouse_request_duration_seconds";

/// Gauge of open subscription streams (server-sent events).
pub const SUBSCRIPTIONS_OPEN: &str = "gatehouse_subscriptions_open";

const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// The process-wide Prometheus recorder, installed on first use. A process
/// has one global recorder, so every app built in it shares this one.
pub fn metrics_handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(REQUEST_DURATION.to_owned()),
                    &DURATION_BUCKETS,
                )
                .map_err(|e| tracing::warn!(error = %e, "invalid metric buckets"))
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => {
                    spawn_upkeep(handle.clone());
                    metrics::describe_counter!(
                        REQUESTS_TOTAL,
                        "Procedure calls by procedure and result code"
                    );
                    metrics::describe_gauge!(
                        SUBSCRIPTIONS_OPEN,
                        "Open subscription streams (server-sent events)"
                    );
                    metrics::describe_histogram!(
                        REQUEST_DURATION,
                        metrics::Unit::Seconds,
                        "Procedure call duration by procedure and result code"
                    );
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot install the Prometheus recorder");
                    None
                }
            }
        })
        .as_ref()
}

/// How often the recorder folds recorded histogram samples into buckets.
pub const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// Name of the thread that runs the recorder's upkeep (at most 15 bytes,
/// the most Linux keeps of a thread name).
pub const METRICS_UPKEEP_THREAD: &str = "metrics-upkeep";

/// Runs the recorder's upkeep every [`METRICS_UPKEEP_EVERY`] for the life of
/// the process.
///
/// The Prometheus recorder keeps every histogram sample until upkeep folds
/// it into the buckets, and `install_recorder` (unlike the exporter's own
/// HTTP listener) does not schedule upkeep: left to `/metrics` scrapes, a
/// server nobody scrapes grows by every call it serves (about 20 bytes per
/// call, 4 MiB/s at full load in `bench/`). A plain thread rather than a
/// task, because the recorder is installed outside of any runtime and lives
/// as long as the process.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name(METRICS_UPKEEP_THREAD.to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(METRICS_UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the metrics upkeep thread; histograms are only drained on /metrics scrapes");
    }
}

/// The metric handles of one procedure's successful calls, resolved once
/// (label set built and looked up in the recorder) instead of per call.
pub(crate) struct CallMetrics {
    count: metrics::Counter,
    duration: metrics::Histogram,
}

impl CallMetrics {
    pub(crate) fn ok(procedure: &Arc<str>) -> Self {
        let labels = [
            metrics::Label::new("procedure", metrics::SharedString::from(procedure.clone())),
            metrics::Label::from_static_parts("code", "OK"),
        ];
        Self {
            count: metrics::counter!(REQUESTS_TOTAL, labels.iter()),
            duration: metrics::histogram!(REQUEST_DURATION, labels.iter()),
        }
    }
}

/// Records one procedure call: a metric sample and a log event. Unknown
/// paths share one label value so clients cannot grow the label set.
pub(crate) fn record_call(
    procedure: Option<&Arc<str>>,
    code: &'static str,
    status: StatusCode,
    elapsed: Duration,
    cached: Option<&CallMetrics>,
) {
    if let Some(handles) = cached {
        handles.count.increment(1);
        handles.duration.record(elapsed.as_secs_f64());
    } else {
        let label = match procedure {
            Some(path) => metrics::SharedString::from(path.clone()),
            None => metrics::SharedString::const_str("<unknown>"),
        };
        let labels = [
            metrics::Label::new("procedure", label),
            metrics::Label::from_static_parts("code", code),
        ];
        metrics::counter!(REQUESTS_TOTAL, labels.iter()).increment(1);
        metrics::histogram!(REQUEST_DURATION, labels.iter()).record(elapsed.as_secs_f64());
    }
    // Successes at DEBUG (the metrics count them; an access log line per
    // call would dominate the cost of a fast call), failures louder.
    let procedure = procedure.map_or("<unknown>", |p| &**p);
    let duration_us = elapsed.as_micros() as u64;
    let status = status.as_u16();
    if status < 400 {
        tracing::debug!(procedure, code, status, duration_us, "call");
    } else if status < 500 {
        tracing::info!(procedure, code, status, duration_us, "call failed");
    } else {
        tracing::warn!(procedure, code, status, duration_us, "call failed");
    }
}
