//! REST routes: a procedure that declares [`crate::Rest`] is also served as
//! plain JSON under the REST prefix (`/api` by default), for clients that do
//! not speak tRPC (see `docs/protocol.md`, "REST routes").
//!
//! It is the same call as over `/trpc`: [`run_call`] runs the guard, the
//! input decoding, the handler under the deadline, the error's last look by
//! the service (translation) and the metric. Only the edges differ: the
//! input is the JSON body (or the query string for `GET`) with the path
//! parameters merged in, the output is sent as it is (no envelope), and an
//! error is `{"timestamp","status","error","message","path","code","issues"?}`
//! (the shape Spring Boot answers with, plus the tRPC code and issues).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use super::call::{Call, CallEnv, OkMetrics, Output, run_call, timeout_error};
use super::config::TrpcConfig;
use super::exchange::{append_headers, read_body, request_meta};
use super::wire::JSON;
use crate::error::{ErrorCode, Issue, RpcError};
use crate::procedure::RestMethod;
use crate::router::{Entry, RawInput, Registry, RequestScope};
use crate::service::{RequestMeta, Service};

/// The REST side of the adapter: its routes, the service and the settings.
pub(crate) struct RestApi<S: Service> {
    routes: Vec<Route<S>>,
    pub prefix: String,
    service: Arc<S>,
    config: TrpcConfig,
    ok_metrics: Arc<OkMetrics>,
}

struct Route<S: Service> {
    method: Method,
    segments: Vec<Segment>,
    created: bool,
    entry: Arc<Entry<S>>,
}

enum Segment {
    Literal(&'static str),
    Param(&'static str),
}

impl<S: Service> RestApi<S> {
    pub fn new(
        registry: &Registry<S>,
        prefix: String,
        service: Arc<S>,
        config: TrpcConfig,
        ok_metrics: Arc<OkMetrics>,
    ) -> Self {
        let routes = registry
            .entries()
            .filter_map(|entry| {
                let rest = entry.rest?;
                let segments = rest
                    .path
                    .trim_start_matches('/')
                    .split('/')
                    .map(
                        |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                            Some(name) => Segment::Param(name),
                            None => Segment::Literal(s),
                        },
                    )
                    .collect();
                Some(Route {
                    method: http_method(rest.method),
                    segments,
                    created: rest.created,
                    entry: entry.clone(),
                })
            })
            .collect();
        Self {
            routes,
            prefix,
            service,
            config,
            ok_metrics,
        }
    }
}

fn http_method(method: RestMethod) -> Method {
    match method {
        RestMethod::Get => Method::GET,
        RestMethod::Post => Method::POST,
        RestMethod::Put => Method::PUT,
        RestMethod::Patch => Method::PATCH,
        RestMethod::Delete => Method::DELETE,
    }
}

/// A route that fits the path, with its parameters (percent-decoded).
struct Matched<'a, S: Service> {
    route: &'a Route<S>,
    params: Vec<(&'static str, String)>,
}

/// The route for `method` and `path`; `Err` with the methods the path
/// allows when only the method is wrong (405), or none at all (404).
fn find<'a, S: Service>(
    routes: &'a [Route<S>],
    method: &Method,
    path: &str,
) -> Result<Matched<'a, S>, Vec<&'a Method>> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut allowed = Vec::new();
    for route in routes {
        if route.segments.len() != parts.len() {
            continue;
        }
        let mut params = Vec::new();
        let fits = route
            .segments
            .iter()
            .zip(&parts)
            .all(|(segment, part)| match segment {
                Segment::Literal(literal) => literal == part,
                Segment::Param(name) => {
                    let value = percent_encoding::percent_decode_str(part).decode_utf8_lossy();
                    params.push((*name, value.into_owned()));
                    !part.is_empty()
                }
            });
        if !fits {
            continue;
        }
        if route.method == *method {
            return Ok(Matched { route, params });
        }
        allowed.push(&route.method);
    }
    Err(allowed)
}

/// One REST request, in steps: [`find`] its route (else [`no_route`]),
/// [`read_input`], run the call as over `/trpc`, then [`call_response`].
/// Failures before the call are finalised by the service like any other.
pub(crate) async fn handle<S: Service>(api: Arc<RestApi<S>>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let within = path.strip_prefix(api.prefix.as_str()).unwrap_or_default();
    let Matched { route, params } = match find(&api.routes, &parts.method, within) {
        Ok(matched) => matched,
        Err(allowed) => return no_route(&api, &mut parts, &path, &allowed),
    };
    let deadline = Instant::now() + api.config.request_timeout;
    let input = match read_input(&api.config, &parts, body, route, params, deadline).await {
        Ok(input) => input,
        Err(error) => return failed(&api, &mut parts, error, &path),
    };
    let env = CallEnv {
        scope: RequestScope::new(api.service.clone(), Arc::new(meta(&mut parts))),
        deadline,
        ok_metrics: api.ok_metrics.clone(),
    };
    let call = Call {
        path: route.entry.path.clone(),
        entry: Some(route.entry.clone()),
        input,
        // The REST method was matched to the route above.
        refused: None,
    };
    let result = run_call(&env, call).await;
    let added = env.scope.request.response_headers.take();
    let mut response = call_response(result.outcome, route.created, &path);
    append_headers(response.headers_mut(), added);
    response
}

/// The request without its body, for the service and the procedure; REST
/// has no `connectionParams`.
fn meta(parts: &mut http::request::Parts) -> RequestMeta {
    request_meta(
        &parts.method,
        &mut parts.headers,
        &parts.extensions,
        Vec::new(),
    )
}

/// A failure before the call: finalised by the service, which sees the
/// request, then answered in the REST error shape.
fn failed<S: Service>(
    api: &RestApi<S>,
    parts: &mut http::request::Parts,
    mut error: RpcError,
    path: &str,
) -> Response {
    api.service.finalize_error(&meta(parts), &mut error);
    error_response(&error, path)
}

/// No route for the request: 404 when the path has none, else 405 with
/// `allow` naming the methods it has.
fn no_route<S: Service>(
    api: &RestApi<S>,
    parts: &mut http::request::Parts,
    path: &str,
    allowed: &[&Method],
) -> Response {
    let error = if allowed.is_empty() {
        RpcError::keyed(
            ErrorCode::NotFound,
            "route_not_found",
            "No route for this path",
        )
    } else {
        RpcError::keyed(
            ErrorCode::MethodNotSupported,
            "method_not_supported",
            format!("Unsupported {} on {path}", parts.method),
        )
    };
    let mut response = failed(api, parts, error, path);
    if !allowed.is_empty() {
        let list: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
        if let Ok(value) = HeaderValue::from_str(&list.join(", ")) {
            response.headers_mut().insert(header::ALLOW, value);
        }
    }
    response
}

/// The call's answer as plain JSON: 204 for a procedure returning nothing,
/// 201 for a route that creates, else 200; an error in the REST shape.
fn call_response(outcome: Result<Output, RpcError>, created: bool, path: &str) -> Response {
    match outcome {
        Ok(output) if output.void => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        Ok(output) => {
            let bytes = Bytes::from(output.data.get().to_owned());
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            response.headers_mut().insert(header::CONTENT_TYPE, JSON);
            response
        }
        Err(error) => error_response(&error, path),
    }
}

/// The call's input: the query string (`GET`) or the JSON body, with the
/// path parameters as string fields, which win over fields of the same name.
async fn read_input<S: Service>(
    config: &TrpcConfig,
    parts: &http::request::Parts,
    body: Body,
    route: &Route<S>,
    params: Vec<(&'static str, String)>,
    deadline: Instant,
) -> Result<RawInput, RpcError> {
    if !route.entry.reads_input() {
        return Ok(RawInput::Absent);
    }
    if parts.method == Method::GET {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &params {
            form.append_pair(name, value);
        }
        let query = parts.uri.query().unwrap_or_default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if !params.iter().any(|(param, _)| *param == name) {
                form.append_pair(&name, &value);
            }
        }
        let form = form.finish();
        return Ok(if form.is_empty() {
            RawInput::Absent
        } else {
            RawInput::Form(form)
        });
    }
    let bytes = match tokio::time::timeout_at(deadline, read_body(body, config.body_limit)).await {
        Err(_) => return Err(timeout_error()),
        Ok(read) => read?,
    };
    let body = if bytes.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let json = parts
            .headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|ct| super::wire::media_type_is(ct.as_bytes(), "application/json"));
        if !json {
            return Err(RpcError::new(
                ErrorCode::UnsupportedMediaType,
                "The body must be JSON (content-type: application/json)",
            ));
        }
        let text = String::from_utf8_lossy(&bytes);
        Some(serde_json::from_slice::<Value>(&bytes).map_err(|error| {
            RpcError::bad_request(super::json_parse_error::js_json_parse_message(
                &text, &error,
            ))
        })?)
    };
    if params.is_empty() {
        return Ok(body.map_or(RawInput::Absent, RawInput::Plain));
    }
    let mut object = match body {
        None => serde_json::Map::new(),
        Some(Value::Object(object)) => object,
        Some(_) => {
            return Err(RpcError::bad_request("The body must be a JSON object"));
        }
    };
    for (name, value) in params {
        object.insert(name.to_owned(), Value::String(value));
    }
    Ok(RawInput::Plain(Value::Object(object)))
}

/// `{"timestamp","status","error","message","path","code","issues"?}` with
/// the error's status and headers (e.g. `Retry-After`).
fn error_response(error: &RpcError, path: &str) -> Response {
    #[derive(Serialize)]
    struct Body<'a> {
        timestamp: String,
        status: u16,
        error: &'a str,
        message: &'a str,
        path: &'a str,
        code: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        issues: Option<&'a [Issue]>,
    }
    let status = error.http_status();
    let body = Body {
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
        status: status.as_u16(),
        error: status.canonical_reason().unwrap_or("Error"),
        message: &error.message,
        path,
        code: error.code.key(),
        issues: error.issues.as_deref(),
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = Response::new(axum::body::Body::from(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, JSON);
    for (name, value) in &error.headers {
        headers.insert(name.clone(), value.clone());
    }
    response
}
