//! The complete application around the tRPC endpoint: request ids, tracing,
//! panic catching, CORS, health and readiness probes, Prometheus metrics
//! and graceful shutdown — what every deployment needs, in one place so
//! each binary does not reassemble it differently.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use metrics_exporter_prometheus::PrometheusHandle;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

pub use crate::connections::ConnectionLimits;
use crate::error::RpcError;
use crate::http::{CorsOrigins, TrpcConfig};
pub use crate::metrics::{
    METRICS_UPKEEP_EVERY, METRICS_UPKEEP_THREAD, REQUEST_DURATION, REQUESTS_TOTAL, metrics_handle,
};
use crate::router::Registry;
use crate::service::Service;
pub use crate::service::{MAX_REQUEST_ID_LEN, is_acceptable_request_id};

/// The full application: `/trpc/*` plus `/openapi.json`, the API reference
/// page `/docs` (unless [`TrpcConfig::docs`] is off), `/healthz`, `/readyz`
/// and `/metrics`, behind request-id, tracing, panic-catching and (when origins
/// are configured) CORS middleware.
///
/// # Panics
///
/// When the subscription settings are inconsistent
/// ([`crate::http::SubscriptionConfig::is_consistent`]): a mistake in the
/// code that builds `config`, refused at start-up.
pub fn app<S: Service>(registry: Registry<S>, service: Arc<S>, config: TrpcConfig) -> axum::Router {
    app_with_routes(registry, service, config, axum::Router::new())
}

/// [`app`] with `extra` routes of the application's own (plain axum, e.g.
/// documents under `/.well-known/`) mounted beside the framework's, behind
/// the same request-id, tracing, panic-catching and CORS layers. Their
/// paths must not clash with the framework's.
///
/// # Panics
///
/// When the subscription settings are inconsistent
/// ([`crate::http::SubscriptionConfig::is_consistent`]): a mistake in the
/// code that builds `config`, refused at start-up.
pub fn app_with_routes<S: Service>(
    registry: Registry<S>,
    service: Arc<S>,
    config: TrpcConfig,
    extra: axum::Router,
) -> axum::Router {
    let prometheus = metrics_handle();
    let cors = cors_layer(&config);
    let ready_service = service.clone();
    let openapi = crate::openapi::OpenApiOptions {
        rest_prefix: config.rest_prefix.clone(),
        ..Default::default()
    };
    let document = Bytes::from(
        serde_json::to_vec(&crate::openapi::document(&registry, &openapi)).unwrap_or_default(),
    );
    let docs = config.docs;
    let mut router = crate::http::trpc_router(Arc::new(registry), service, config)
        .route(
            "/openapi.json",
            get(move || {
                let document = document.clone();
                async move { json_document(document) }
            }),
        )
        .route("/healthz", get(healthz))
        .route(
            "/readyz",
            get(move || {
                let service = ready_service.clone();
                async move { readyz(service).await }
            }),
        )
        .route(
            "/metrics",
            get(move || async move { render_metrics(prometheus) }),
        )
        .merge(extra);
    if docs {
        router = router.merge(crate::docs::router());
    }
    router = router.layer(CatchPanicLayer::custom(panic_response));
    if let Some(cors) = cors {
        router = router.layer(cors);
    }
    router.layer(
        ServiceBuilder::new()
            .map_request(drop_unacceptable_request_id)
            .layer(SetRequestIdLayer::x_request_id(FastRequestId))
            .layer(TraceLayer::new_for_http().make_span_with(request_span))
            .layer(PropagateRequestIdLayer::x_request_id()),
    )
}

/// Serves `app` until SIGTERM or SIGINT, then stops accepting connections
/// and lets in-flight requests finish.
pub async fn serve(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    serve_with_shutdown(listener, app, shutdown_signal()).await
}

/// How long in-flight requests may take to finish after the shutdown signal
/// before the remaining connections are dropped, so a stuck client cannot
/// hold up a deployment forever.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// [`serve`] with a caller-chosen shutdown trigger (tests, embedding).
/// After the signal no new connections are accepted; in-flight requests get
/// up to [`SHUTDOWN_GRACE`] to finish. Connections get the default
/// [`ConnectionLimits`].
pub async fn serve_with_shutdown(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_limits(listener, app, signal, ConnectionLimits::default()).await
}

/// [`serve_with_shutdown`] with explicit limits on what each client may
/// hold (head deadline, idle timeout, connection cap).
pub async fn serve_with_limits(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    signal: impl Future<Output = ()> + Send + 'static,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    crate::connections::serve(listener, app, signal, limits, SHUTDOWN_GRACE).await
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Request ids that cost no system call: a random per-process prefix and a
/// counter, formatted as a UUID. Unique across processes and restarts (the
/// prefix is random) without asking the OS for randomness per request the way
/// `Uuid::new_v4` does.
#[derive(Clone, Copy)]
struct FastRequestId;

impl MakeRequestId for FastRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        static PREFIX: OnceLock<u64> = OnceLock::new();
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let prefix = *PREFIX.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = uuid::Uuid::from_u64_pair(prefix, n);
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf))
            .ok()
            .map(RequestId::new)
    }
}

/// Removes a client's `x-request-id` that [`is_acceptable_request_id`]
/// refuses (or that is sent more than once), so that the request-id layer
/// behind it makes one of its own and the response echoes that one.
fn drop_unacceptable_request_id(mut req: Request<Body>) -> Request<Body> {
    let mut ids = req.headers().get_all(X_REQUEST_ID).iter();
    let acceptable = match (ids.next(), ids.next()) {
        (None, _) => return req,
        (Some(id), None) => is_acceptable_request_id(id.as_bytes()),
        (Some(_), Some(_)) => false,
    };
    if !acceptable {
        req.headers_mut().remove(X_REQUEST_ID);
        tracing::debug!("x-request-id refused; a new id replaces it");
    }
    req
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn request_span(req: &Request<Body>) -> tracing::Span {
    let request_id = req
        .headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // The path only: query strings may carry inputs we should not log.
    // Every field as `&str`, so the log formatter quotes and escapes it.
    tracing::info_span!(
        "request",
        request_id,
        method = req.method().as_str(),
        uri = req.uri().path(),
    )
}

/// The CORS middleware, if any origin is allowed. Credentials only ever go
/// with an explicit list: tower-http panics on credentials with `*` (and
/// browsers would refuse them), so there the setting is ignored, loudly.
fn cors_layer(config: &TrpcConfig) -> Option<CorsLayer> {
    let (allow_origin, credentials) = match &config.cors_origins {
        CorsOrigins::None => return None,
        CorsOrigins::Any => {
            if config.cors_credentials {
                tracing::warn!(
                    "CORS credentials are not allowed with any origin (*): list the origins"
                );
            }
            (AllowOrigin::any(), false)
        }
        CorsOrigins::List(list) => (
            AllowOrigin::list(
                list.iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok())
                    .collect::<Vec<_>>(),
            ),
            config.cors_credentials,
        ),
    };
    let mut allow_headers = vec![
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        HeaderName::from_static("trpc-accept"),
        HeaderName::from_static("trpc-batch-mode"),
        HeaderName::from_static("x-request-id"),
        header::ACCEPT_LANGUAGE,
        HeaderName::from_static("last-event-id"),
    ];
    allow_headers.extend(config.cors_extra_headers.iter().cloned());
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_credentials(credentials)
            // PUT, PATCH and DELETE for the REST routes.
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers(allow_headers)
            .expose_headers([header::RETRY_AFTER, HeaderName::from_static("x-request-id")])
            .max_age(Duration::from_secs(600)),
    )
}

/// The backstop for panics outside a procedure call (those are caught per
/// call): a tRPC-shaped 500 rather than a dropped connection.
fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("request handler panicked");
    crate::http::request_error(&RpcError::internal_error())
}

fn json_response(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// The OpenAPI document, built once at start.
fn json_document(document: Bytes) -> Response {
    let mut response = Response::new(Body::from(document));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn healthz() -> Response {
    json_response(StatusCode::OK, r#"{"status":"ok"}"#)
}

async fn readyz<S: Service>(service: Arc<S>) -> Response {
    if service.ready().await {
        json_response(StatusCode::OK, r#"{"status":"ok"}"#)
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"unavailable"}"#,
        )
    }
}

fn render_metrics(handle: Option<&'static PrometheusHandle>) -> Response {
    let Some(handle) = handle else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "another metrics recorder is installed in this process\n",
        )
            .into_response();
    };
    handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        handle.render(),
    )
        .into_response()
}
