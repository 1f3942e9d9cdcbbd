//! One procedure call of a request: its lookup, guard, input decoding and
//! handler under the request deadline, panics caught, and the metric
//! sample. Shared by every transport (tRPC's plain and streamed responses,
//! REST); what a transport refuses before the call runs (tRPC's method rule)
//! arrives as the call's [`Refusal`], so this step knows no HTTP method.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::value::RawValue;
use tokio::time::Instant;

use super::wire;
use crate::error::{ErrorCode, RpcError};
use crate::metrics::CallMetrics;
use crate::procedure::Kind;
use crate::router::{Entry, RawInput, RequestScope};
use crate::service::Service;

/// Metric handles for successful calls, resolved once per procedure.
pub(crate) type OkMetrics = std::collections::HashMap<Arc<str>, CallMetrics>;

/// What one call produced, ready to be written.
pub(crate) struct CallResult {
    pub path: Arc<str>,
    pub outcome: Result<Output, RpcError>,
    /// The `allow` header of a 405.
    pub allow: Option<&'static str>,
}

pub(crate) struct Output {
    pub data: Box<RawValue>,
    pub void: bool,
}

impl CallResult {
    pub fn status(&self) -> StatusCode {
        match &self.outcome {
            Ok(_) => StatusCode::OK,
            Err(e) => e.http_status(),
        }
    }

    /// Writes the tRPC item (`{"result":…}` or `{"error":…}`).
    pub fn write_item(&self, out: &mut Vec<u8>) {
        match &self.outcome {
            Ok(output) => wire::write_result_item(out, &output.data, output.void),
            Err(error) => wire::write_error_item(out, error, Some(&self.path)),
        }
    }
}

/// One planned call of a request.
pub(crate) struct Call<S: Service> {
    pub path: Arc<str>,
    pub entry: Option<Arc<Entry<S>>>,
    pub input: RawInput,
    /// Set when the transport refused the call before it runs; it then
    /// fails with this error, logged, finalised and counted like any other.
    pub refused: Option<Refusal>,
}

/// Why a transport refused a known procedure's call, e.g. tRPC's 405 for a
/// method that does not fit the procedure's kind.
pub(crate) struct Refusal {
    pub error: RpcError,
    /// The `allow` header of the response.
    pub allow: &'static str,
}

/// Everything a call needs besides its own input; shared by a batch.
pub(crate) struct CallEnv<S: Service> {
    pub scope: RequestScope<S>,
    pub deadline: Instant,
    pub ok_metrics: Arc<OkMetrics>,
}

/// Copies what the calls ask for onto the response: `allow` for a 405 and
/// the error's own headers (e.g. `Retry-After`).
pub(crate) fn add_call_headers(headers: &mut HeaderMap, results: &[CallResult]) {
    for result in results {
        if let Some(allow) = result.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Err(error) = &result.outcome {
            for (name, value) in &error.headers {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
}

pub(crate) fn timeout_error() -> RpcError {
    RpcError::keyed(ErrorCode::Timeout, "timeout", "Request timed out")
}

/// Runs one call: lookup, the transport's refusal if any, then
/// guard/decode/handler under the request deadline, with panics turned into
/// INTERNAL_SERVER_ERROR.
pub(crate) async fn run_call<S: Service>(env: &CallEnv<S>, call: Call<S>) -> CallResult {
    let started = std::time::Instant::now();
    let Call {
        path,
        entry,
        input,
        refused,
    } = call;
    let (outcome, allow) = match &entry {
        None => (
            Err(RpcError::keyed(
                ErrorCode::NotFound,
                "procedure_not_found",
                format!("No procedure found on path \"{path}\""),
            )
            .with_param("path", &*path)),
            None,
        ),
        Some(entry) => match refused {
            Some(Refusal { error, allow }) => (Err(error), Some(allow)),
            // Only a batch gets here with a subscription: a single one is
            // answered as server-sent events (`http::sse`).
            None if entry.kind == Kind::Subscription => {
                (Err(crate::router::cannot_batch_subscriptions()), None)
            }
            None => {
                let fut = AssertUnwindSafe(env.scope.call(entry, input)).catch_unwind();
                let outcome = match tokio::time::timeout_at(env.deadline, fut).await {
                    Ok(Ok(result)) => result.map(|data| Output {
                        data,
                        void: entry.returns_void(),
                    }),
                    Ok(Err(panic)) => {
                        let message = panic
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        tracing::error!(procedure = %path, panic = %message, "procedure panicked");
                        Err(RpcError::internal_error())
                    }
                    Err(_) => Err(timeout_error()),
                };
                (outcome, None)
            }
        },
    };
    let mut outcome = outcome;
    if let Err(error) = &mut outcome {
        log_cause(error, Some(&path), &env.scope.request.request_id);
        env.scope.service.finalize_error(&env.scope.request, error);
    }
    let result = CallResult {
        path,
        outcome,
        allow,
    };
    let code = match &result.outcome {
        Ok(_) => "OK",
        Err(error) => error.code.key(),
    };
    let cached = match (&result.outcome, &entry) {
        (Ok(_), Some(entry)) => env.ok_metrics.get(&*entry.path),
        _ => None,
    };
    crate::metrics::record_call(
        entry.as_ref().map(|e| &e.path),
        code,
        result.status(),
        started.elapsed(),
        cached,
    );
    result
}

/// Logs the cause an error keeps for the log (see [`RpcError::cause`]),
/// once, with the request id and the procedure path; the client never sees
/// it.
pub(crate) fn log_cause(error: &RpcError, path: Option<&str>, request_id: &str) {
    if let Some(cause) = error.cause_chain() {
        tracing::error!(
            procedure = path.unwrap_or("<request>"),
            request_id,
            code = error.code.key(),
            cause = %cause,
            "call failed"
        );
    }
}
