//! Streaming batch responses: v11 JSONL (`httpBatchStreamLink`) and the v10
//! line-by-line object (`unstable_httpBatchStreamLink`). Calls run
//! concurrently and are written in completion order.

use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::{self, FuturesUnordered};
use http::{HeaderValue, StatusCode, header};

use super::call::{Call, CallEnv, CallResult, run_call};
use super::wire::{self, JSON, VARY};
use crate::service::Service;

/// Runs every call concurrently; yields `(index, result)` as each finishes.
fn completions<S: Service>(
    env: Arc<CallEnv<S>>,
    calls: Vec<Call<S>>,
) -> FuturesUnordered<impl Future<Output = (usize, CallResult)> + Send> {
    calls
        .into_iter()
        .enumerate()
        .map(|(i, call)| {
            let env = env.clone();
            async move {
                let result = run_call(&env, call).await;
                let late = env.scope.request.response_headers.take();
                if !late.is_empty() {
                    let names: Vec<&str> = late.keys().map(|n| n.as_str()).collect();
                    tracing::warn!(procedure = %result.path, headers = ?names,
                        "response headers added by a streamed call are dropped: \
                         the head was already sent");
                }
                (i, result)
            }
        })
        .collect()
}

fn streaming_response(body: Body, vary: HeaderValue, allow: Option<&'static str>) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, JSON);
    headers.insert(header::VARY, vary);
    headers.insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    if let Some(allow) = allow {
        headers.insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    response
}

/// v11 JSONL, every line wrapped by superjson (`{"json":…}`): the head
/// `{"0":[[0],[null,0,0]],…}` (one promise per call), then per finished call
/// its three nested promises `call → {result} → {data}` as tRPC does, with
/// chunk ids from a counter in emission order. A failed call resolves (not
/// rejects) its top promise to `{"error":shape}`.
pub(crate) fn jsonl<S: Service>(
    env: Arc<CallEnv<S>>,
    calls: Vec<Call<S>>,
    allow: Option<&'static str>,
) -> Response {
    let n = calls.len();
    let mut head = Vec::with_capacity(16 + n * 24);
    head.extend_from_slice(b"{\"json\":{");
    for i in 0..n {
        if i > 0 {
            head.push(b',');
        }
        let _ = write!(head, "\"{i}\":[[0],[null,0,{i}]]");
    }
    head.extend_from_slice(b"}}\n");

    let mut next_id = n;
    let lines = completions(env, calls).map(move |(i, result)| {
        let mut out = Vec::with_capacity(256);
        match &result.outcome {
            Ok(output) => {
                let (r, d) = (next_id, next_id + 1);
                next_id += 2;
                let _ = write!(
                    out,
                    "{{\"json\":[{i},0,[[{{\"result\":0}}],[\"result\",0,{r}]]]}}\n\
                     {{\"json\":[{r},0,[[{{\"data\":0}}],[\"data\",0,{d}]]]}}\n"
                );
                if output.void {
                    let _ = writeln!(out, "{{\"json\":[{d},0,[[]]]}}");
                } else {
                    let _ = write!(out, "{{\"json\":[{d},0,[[");
                    out.extend_from_slice(output.data.get().as_bytes());
                    out.extend_from_slice(b"]]]}\n");
                }
            }
            Err(error) => {
                let _ = write!(out, "{{\"json\":[{i},0,[[{{\"error\":");
                wire::write_shape(&mut out, error, Some(&result.path));
                out.extend_from_slice(b"}]]]}\n");
            }
        }
        Ok::<_, Infallible>(Bytes::from(out))
    });
    let body = stream::once(async move { Ok::<_, Infallible>(Bytes::from(head)) }).chain(lines);
    streaming_response(Body::from_stream(body), VARY, allow)
}

/// v10 stream mode: `{"1":<item>\n,"0":<item>\n}` in completion order.
pub(crate) fn v10<S: Service>(
    env: Arc<CallEnv<S>>,
    calls: Vec<Call<S>>,
    allow: Option<&'static str>,
) -> Response {
    let mut first = true;
    let items = completions(env, calls).map(move |(i, result)| {
        let mut out = Vec::with_capacity(256);
        out.push(if first { b'{' } else { b',' });
        first = false;
        let _ = write!(out, "\"{i}\":");
        result.write_item(&mut out);
        out.push(b'\n');
        Ok::<_, Infallible>(Bytes::from(out))
    });
    let body = items.chain(stream::once(async {
        Ok::<_, Infallible>(Bytes::from_static(b"}"))
    }));
    streaming_response(
        Body::from_stream(body),
        HeaderValue::from_static("trpc-accept, accept, trpc-batch-mode"),
        allow,
    )
}
