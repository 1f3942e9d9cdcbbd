//! The request handler: request-level checks, lazy inputs, concurrent calls
//! and the response (a single item, a batch array, or a stream).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::time::Instant;

use super::call::{
    Call, CallEnv, CallResult, OkMetrics, Refusal, add_call_headers, log_cause, run_call,
    timeout_error,
};
use super::config::{PREFIX, TrpcConfig};
use super::exchange::{append_headers, read_body, request_meta};
use super::sse::{self, SseRequest, SubscriptionGate};
use super::stream;
use super::wire::{self, JSON, VARY};
use crate::error::{ErrorCode, RpcError};
use crate::procedure::Kind;
use crate::router::{Entry, RawInput, Registry, RequestScope};
use crate::service::Service;
use crate::shutdown::Shutdown;

pub(crate) struct Trpc<S: Service> {
    pub registry: Arc<Registry<S>>,
    pub service: Arc<S>,
    pub config: TrpcConfig,
    /// Metric handles for successful calls, resolved once per procedure.
    pub ok_metrics: Arc<OkMetrics>,
    /// Open subscriptions, in all and per caller.
    pub subscriptions: Arc<SubscriptionGate>,
}

/// How the client wants the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A single item or a JSON array.
    Plain,
    /// v11 `httpBatchStreamLink`: JSONL.
    Jsonl,
    /// v10 `unstable_httpBatchStreamLink`: one object written line by line.
    V10Stream,
}

pub(crate) async fn handle<S: Service>(state: Arc<Trpc<S>>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let mut body = Some(body);
    // "Lambda warmup": answered before anything else, with no headers.
    let response = if parts.method == Method::HEAD {
        StatusCode::NO_CONTENT.into_response()
    } else {
        match dispatch(&state, &mut parts, &mut body).await {
            Ok(response) => response,
            Err(mut error) => {
                // A request-level error: the service still gets its last look
                // (e.g. to translate the message).
                let meta = request_meta(
                    &parts.method,
                    &mut parts.headers,
                    &parts.extensions,
                    Vec::new(),
                );
                tracing::info!(
                    code = error.code.key(),
                    status = error.http_status().as_u16(),
                    message = %error.message,
                    "request rejected"
                );
                log_cause(&error, None, &meta.request_id);
                state.service.finalize_error(&meta, &mut error);
                wire::request_error(&error)
            }
        }
    };
    match body {
        Some(unread) => finish_body(unread, &state.config, response).await,
        None => response,
    }
}

/// Reads and drops a body nobody needed (a body-less procedure sent one,
/// or the request was refused before its input was read), so the
/// connection stays usable for the client's next request: answering while
/// body bytes are still on their way would make them the start of the
/// "next request" and the connection would be closed under the client. A
/// body over the limit, or one that does not arrive in time, is not waited
/// for: the answer then says `connection: close`.
async fn finish_body(body: Body, config: &TrpcConfig, mut response: Response) -> Response {
    use axum::body::HttpBody as _;
    if body.is_end_stream() {
        return response;
    }
    let drained = tokio::time::timeout(
        config.request_timeout,
        http_body_util::Limited::new(body, config.body_limit).collect(),
    )
    .await;
    if !matches!(drained, Ok(Ok(_))) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Everything after HEAD; an `Err` is a request-level error. Three steps:
/// [`parse`] the request line and headers into the calls it names, read
/// and [`plan`] the inputs, then [`respond`] with the calls' results.
async fn dispatch<S: Service>(
    state: &Trpc<S>,
    parts: &mut http::request::Parts,
    body: &mut Option<Body>,
) -> Result<Response, RpcError> {
    let deadline = Instant::now() + state.config.request_timeout;
    let mut request = parse(state, &parts.method, &parts.uri, &parts.headers)?;
    let source = read_input(&state.config, &request, &parts.method, body, deadline).await?;
    let sse = SseRequest {
        last_event_id: last_event_id(&parts.headers, &request.query),
        shutdown: parts.extensions.get::<Shutdown>().cloned(),
    };
    // Only `httpSubscriptionLink` (and `wsLink`) send them; handing them to
    // the service for subscriptions only keeps credentials in URLs (the only
    // way an EventSource can send any) to the one place they are needed.
    let subscription = !request.is_batch
        && matches!(request.targets.as_slice(), [(_, Some(e))] if e.kind == Kind::Subscription);
    let connection_params = if subscription {
        std::mem::take(&mut request.connection_params)
    } else {
        Vec::new()
    };
    let meta = request_meta(
        &parts.method,
        &mut parts.headers,
        &parts.extensions,
        connection_params,
    );
    let env = CallEnv {
        scope: RequestScope::new(state.service.clone(), Arc::new(meta)),
        deadline,
        ok_metrics: state.ok_metrics.clone(),
    };
    let (mode, is_batch) = (request.mode, request.is_batch);
    let override_ok = state.config.allow_method_override;
    let mut calls = plan(request, source, &parts.method, override_ok);
    if mode == Mode::Plain && !is_batch && is_subscription(&calls) {
        let Some(call) = calls.pop() else {
            return Err(RpcError::from_code(ErrorCode::InternalServerError));
        };
        let config = &state.config.subscriptions;
        return Ok(sse::respond(env, call, sse, config, &state.subscriptions).await);
    }
    respond(env, calls, mode, is_batch).await
}

/// Whether the one call of a request names a subscription: answered as
/// server-sent events whatever the method (a wrong one arrives in-stream).
fn is_subscription<S: Service>(calls: &[Call<S>]) -> bool {
    matches!(calls, [Call { entry: Some(entry), .. }] if entry.kind == Kind::Subscription)
}

/// A subscription's resume point: the `Last-Event-ID` header an
/// `EventSource` sends on reconnecting, else the URL's.
fn last_event_id(headers: &HeaderMap, query: &wire::Query<'_>) -> Option<String> {
    match headers.get("last-event-id") {
        Some(value) => Some(String::from_utf8_lossy(value.as_bytes()).into_owned()),
        None => query.last_event_id().map(|id| id.into_owned()),
    }
}

/// One call's path (the registered one when it exists) and procedure.
type Target<S> = (Arc<str>, Option<Arc<Entry<S>>>);

/// What the request line and headers say, before any body is read.
struct Parsed<'a, S: Service> {
    targets: Vec<Target<S>>,
    is_batch: bool,
    mode: Mode,
    query: wire::Query<'a>,
    /// `connectionParams`, checked.
    connection_params: Vec<(String, String)>,
}

/// The request-level checks, in tRPC's order: path encoding, content type,
/// batch size, mixed procedure kinds, `connectionParams`, batching allowed,
/// streaming only for batches.
fn parse<'a, S: Service>(
    state: &Trpc<S>,
    method: &Method,
    uri: &'a http::Uri,
    headers: &HeaderMap,
) -> Result<Parsed<'a, S>, RpcError> {
    let config = &state.config;
    let raw_path = procedure_path(uri.path());
    let Ok(path) = wire::decode_uri_component(raw_path) else {
        return Err(RpcError::bad_request(format!(
            "Invalid URL-encoding in path \"{raw_path}\""
        )));
    };
    check_content_type(method, headers)?;

    let query = wire::Query::parse(uri.query());
    let is_batch = query.batch().as_deref() == Some("1");
    let paths: Vec<&str> = if is_batch {
        path.split(',').collect()
    } else {
        vec![&*path]
    };
    if is_batch && paths.len() > config.max_batch_size {
        return Err(RpcError::keyed(
            ErrorCode::BadRequest,
            "batch_too_large",
            "Batch call exceeds maximum size",
        ));
    }
    let targets: Vec<Target<S>> = paths
        .iter()
        .map(|p| match state.registry.get(p) {
            Some(entry) => (entry.path.clone(), Some(entry.clone())),
            None => (Arc::from(*p), None),
        })
        .collect();
    if let Some(error) = mixed_kinds(targets.iter().filter_map(|(_, e)| e.as_deref())) {
        return Err(error);
    }
    let connection_params = match query.connection_params() {
        Some(params) => connection_params(&params)?,
        None => Vec::new(),
    };
    if is_batch && !config.allow_batching {
        return Err(RpcError::keyed(
            ErrorCode::BadRequest,
            "batching_disabled",
            "Batching is not enabled on the server",
        ));
    }
    let mode = match stream_mode(headers) {
        Mode::Jsonl if !is_batch => {
            return Err(RpcError::bad_request(
                "Streaming requests must be batched (you can do a batch of 1)",
            ));
        }
        Mode::V10Stream if !is_batch => Mode::Plain,
        mode => mode,
    };
    Ok(Parsed {
        targets,
        is_batch,
        mode,
        query,
        connection_params,
    })
}

/// JSON, or anything on GET (v11 sends none, v10 sends JSON).
fn check_content_type(method: &Method, headers: &HeaderMap) -> Result<(), RpcError> {
    if *method == Method::GET {
        return Ok(());
    }
    match headers.get(header::CONTENT_TYPE) {
        Some(ct) if wire::media_type_is(ct.as_bytes(), "application/json") => Ok(()),
        Some(ct) => Err(RpcError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "Unsupported content-type \"{}",
                String::from_utf8_lossy(ct.as_bytes())
            ),
        )),
        None => Err(RpcError::new(
            ErrorCode::UnsupportedMediaType,
            "Missing content-type header",
        )),
    }
}

/// The request's input, read lazily: only when some procedure reads its
/// input (from `?input=` on GET, else from the body). An `Err` is a body
/// that did not arrive before the deadline.
async fn read_input<S: Service>(
    config: &TrpcConfig,
    request: &Parsed<'_, S>,
    method: &Method,
    body: &mut Option<Body>,
    deadline: Instant,
) -> Result<InputSource, RpcError> {
    let needs_input = request
        .targets
        .iter()
        .filter_map(|(_, e)| e.as_ref())
        .any(|e| e.reads_input());
    if !needs_input {
        return Ok(InputSource::None);
    }
    if *method == Method::GET {
        return Ok(match request.query.input().as_deref() {
            None | Some("") => InputSource::None,
            Some(text) => InputSource::parse(text.as_bytes()),
        });
    }
    let body = body.take().unwrap_or_default();
    match tokio::time::timeout_at(deadline, read_body(body, config.body_limit)).await {
        Err(_) => Err(timeout_error()),
        Ok(Err(error)) => Ok(InputSource::Failed(error)),
        Ok(Ok(bytes)) if bytes.is_empty() => Ok(InputSource::None),
        Ok(Ok(bytes)) => Ok(InputSource::parse(&bytes)),
    }
}

/// One [`Call`] per target, each with its share of the input, refused up
/// front when the request's method breaks tRPC's [`method_refusal`] rule.
fn plan<S: Service>(
    request: Parsed<'_, S>,
    source: InputSource,
    method: &Method,
    allow_method_override: bool,
) -> Vec<Call<S>> {
    let mut inputs = source.split(request.targets.len(), request.is_batch);
    request
        .targets
        .into_iter()
        .map(|(path, entry)| Call {
            refused: entry
                .as_deref()
                .and_then(|e| method_refusal(method, allow_method_override, e)),
            path,
            entry,
            input: inputs.next().unwrap_or(RawInput::Absent),
        })
        .collect()
}

/// tRPC's method rule, which only the tRPC adapter applies: queries are GET
/// (or also POST with method override), mutations POST, subscriptions GET
/// (or also POST with method override). A call that breaks it is refused
/// with a 405 naming the methods allowed.
fn method_refusal<S: Service>(
    method: &Method,
    allow_method_override: bool,
    entry: &Entry<S>,
) -> Option<Refusal> {
    let get_or_post = *method == Method::GET || *method == Method::POST;
    let (allowed, allow) = match entry.kind {
        Kind::Query | Kind::Subscription if allow_method_override => (get_or_post, "GET, POST"),
        Kind::Query | Kind::Subscription => (*method == Method::GET, "GET"),
        Kind::Mutation => (*method == Method::POST, "POST"),
    };
    if allowed {
        return None;
    }
    let error = RpcError::keyed(
        ErrorCode::MethodNotSupported,
        "method_not_supported",
        format!(
            "Unsupported {method}-request to {} procedure at path \"{}\"",
            entry.kind.as_str(),
            entry.path
        ),
    )
    .with_param("method", method.as_str())
    .with_param("kind", entry.kind.as_str())
    .with_param("path", &*entry.path);
    Some(Refusal { error, allow })
}

/// Runs the calls and writes the answer: streamed (JSONL or v10's object),
/// a single item, or a batch array with tRPC's combined status.
async fn respond<S: Service>(
    env: CallEnv<S>,
    mut calls: Vec<Call<S>>,
    mode: Mode,
    is_batch: bool,
) -> Result<Response, RpcError> {
    match mode {
        Mode::Jsonl | Mode::V10Stream => {
            // Headers go out before any call finishes; like tRPC, announce
            // `allow` for a wrong-method call up front.
            let allow = calls
                .iter()
                .find_map(|c| c.refused.as_ref().map(|r| r.allow));
            let env = Arc::new(env);
            Ok(if mode == Mode::Jsonl {
                stream::jsonl(env, calls, allow)
            } else {
                stream::v10(env, calls, allow)
            })
        }
        Mode::Plain if !is_batch => {
            let Some(call) = calls.pop() else {
                return Err(RpcError::from_code(ErrorCode::InternalServerError));
            };
            let result = run_call(&env, call).await;
            let mut out = Vec::with_capacity(result_capacity(&result));
            result.write_item(&mut out);
            Ok(plain_response(
                out,
                result.status(),
                std::slice::from_ref(&result),
                env.scope.request.response_headers.take(),
            ))
        }
        Mode::Plain => {
            let results =
                futures::future::join_all(calls.into_iter().map(|c| run_call(&env, c))).await;
            let mut out =
                Vec::with_capacity(results.iter().map(result_capacity).sum::<usize>() + 2);
            out.push(b'[');
            for (i, result) in results.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                result.write_item(&mut out);
            }
            out.push(b']');
            let status = wire::batch_status(results.iter().map(CallResult::status));
            Ok(plain_response(
                out,
                status,
                &results,
                env.scope.request.response_headers.take(),
            ))
        }
    }
}

fn result_capacity(result: &CallResult) -> usize {
    match &result.outcome {
        Ok(output) => output.data.get().len() + 32,
        Err(_) => 192,
    }
}

/// A single item or a batch array, with the calls' headers and what the
/// calls added to the request's [`crate::ResponseHeaders`] (`added`).
fn plain_response(
    body: Vec<u8>,
    status: StatusCode,
    results: &[CallResult],
    added: HeaderMap,
) -> Response {
    let mut response = Response::new(Body::from(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, JSON);
    headers.insert(header::VARY, VARY);
    add_call_headers(headers, results);
    append_headers(headers, added);
    response
}

/// The dotted path: the URL path without the `/trpc` prefix and without one
/// leading and one trailing `/`, still percent-encoded.
fn procedure_path(uri_path: &str) -> &str {
    let rest = uri_path.strip_prefix(PREFIX).unwrap_or(uri_path);
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    rest.strip_suffix('/').unwrap_or(rest)
}

/// `Cannot mix procedure types in call: query, mutation` (types in order of
/// first appearance; unknown paths do not count).
fn mixed_kinds<'a, S: Service + 'a>(
    entries: impl Iterator<Item = &'a Entry<S>>,
) -> Option<RpcError> {
    let mut kinds: Vec<Kind> = Vec::new();
    for entry in entries {
        if !kinds.contains(&entry.kind) {
            kinds.push(entry.kind);
        }
    }
    (kinds.len() > 1).then(|| {
        let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        RpcError::bad_request(format!(
            "Cannot mix procedure types in call: {}",
            names.join(", ")
        ))
    })
}

/// `connectionParams` must be a JSON object of strings (or `null`).
fn connection_params(text: &str) -> Result<Vec<(String, String)>, RpcError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|_| RpcError::new(ErrorCode::ParseError, "Not JSON-parsable query params"))?;
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Object(map) if map.values().all(Value::is_string) => Ok(map
            .into_iter()
            .filter_map(|(key, value)| match value {
                Value::String(text) => Some((key, text)),
                _ => None,
            })
            .collect()),
        _ => Err(RpcError::new(
            ErrorCode::ParseError,
            "Invalid connection params shape",
        )),
    }
}

/// v11 streams when `trpc-accept` says `application/jsonl` (or, without
/// that header, when `accept` lists exactly that item); v10 asked with
/// `trpc-batch-mode: stream`.
fn stream_mode(headers: &HeaderMap) -> Mode {
    let jsonl = match headers.get("trpc-accept") {
        Some(value) => value.as_bytes() == b"application/jsonl",
        None => headers
            .get_all(header::ACCEPT)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .any(|item| item.trim_ascii() == b"application/jsonl"),
    };
    if jsonl {
        Mode::Jsonl
    } else if headers
        .get("trpc-batch-mode")
        .is_some_and(|v| v.as_bytes() == b"stream")
    {
        Mode::V10Stream
    } else {
        Mode::Plain
    }
}

/// The request's raw input, parsed once and handed out per call.
enum InputSource {
    None,
    Json(Value),
    Failed(RpcError),
}

impl InputSource {
    fn parse(bytes: &[u8]) -> Self {
        match serde_json::from_slice(bytes) {
            Ok(value) => Self::Json(value),
            Err(error) => {
                let text = String::from_utf8_lossy(bytes);
                Self::Failed(RpcError::bad_request(
                    super::json_parse_error::js_json_parse_message(&text, &error),
                ))
            }
        }
    }

    /// Call *i*'s input: the whole value for a single call; key `"i"` of a
    /// batch object (missing key = no input).
    fn split(self, n: usize, is_batch: bool) -> Box<dyn Iterator<Item = RawInput> + Send> {
        match self {
            Self::None => Box::new(std::iter::repeat_with(|| RawInput::Absent).take(n)),
            Self::Failed(error) => Box::new(std::iter::repeat_n(error, n).map(RawInput::Malformed)),
            Self::Json(value) if !is_batch => Box::new(std::iter::once(RawInput::Envelope(value))),
            Self::Json(Value::Object(mut map)) => Box::new((0..n).map(move |i| {
                map.remove(i.to_string().as_str())
                    .map_or(RawInput::Absent, RawInput::Envelope)
            })),
            Self::Json(_) => Box::new(
                std::iter::repeat_n(
                    RpcError::bad_request(
                        "\"input\" needs to be an object when doing a batch call",
                    ),
                    n,
                )
                .map(RawInput::Malformed),
            ),
        }
    }
}
