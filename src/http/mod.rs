//! The tRPC v11 HTTP adapter: URLs, batching, methods, content types,
//! status codes, error shapes and JSONL streaming exactly as `@trpc/server`
//! 11.25 does them (see `docs/protocol.md`), so the unmodified
//! `@trpc/client` cannot tell the difference.
//!
//! [`trpc_router`] mounts the endpoint at `/trpc`; [`crate::server::app`]
//! adds the operational routes and middleware around it.
//!
//! Where we deliberately differ from `@trpc/server` 11.25 (none of it is
//! visible to `@trpc/client`, which ignores statuses and headers):
//! - request-level errors carry `content-type: application/json` (tRPC core
//!   leaves the fetch default `text/plain`): every body under `/trpc` is JSON;
//! - `data.stack` is never sent (a production server);
//! - batches are capped at [`TrpcConfig::max_batch_size`] (tRPC: unlimited);
//! - v10's `trpc-batch-mode: stream` is answered in v10's streaming format
//!   (a v11 server ignores it), so v10's `unstable_httpBatchStreamLink` works;
//! - calls that finish at the same moment may be streamed in a different
//!   order than Node's microtask queue would pick (clients route by id);
//! - input validation messages are serde's (tRPC: the validator's), with
//!   `data.issues` naming each failing field;
//! - a tracked subscription must give every event an id (tRPC also allows
//!   untracked events in between, announced with `restore-id`);
//! - open subscriptions are capped, in all and per caller;
//! - FormData and binary inputs are not supported.

mod adapter;
mod call;
mod config;
mod exchange;
mod json_parse_error;
mod rest;
mod sse;
mod stream;
mod wire;

use std::sync::Arc;

use axum::routing::any;

use crate::router::Registry;
use crate::service::Service;

pub use config::{
    CorsOriginError, CorsOrigins, DEFAULT_BODY_LIMIT, DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_SUBSCRIPTIONS, DEFAULT_MAX_SUBSCRIPTIONS_PER_CALLER, DEFAULT_REQUEST_TIMEOUT_SECS,
    DEFAULT_REST_PREFIX, DEFAULT_SSE_PING_MS, PREFIX, SubscriptionConfig, TrpcConfig,
};
pub use json_parse_error::js_json_parse_message;
pub(crate) use wire::request_error;

/// The `/trpc` endpoint for `registry`, without any middleware. Every
/// method is routed to the adapter, which answers wrong methods the way
/// tRPC does (405 per call, 415 for unknown content types, 204 for HEAD).
///
/// # Panics
///
/// When [`SubscriptionConfig::is_consistent`] is false: a ping interval
/// not shorter than the reconnect delay sent to clients would make every
/// idle stream reconnect. `@trpc/server` throws when such a stream opens;
/// here it is a mistake in the code that builds the config, found at
/// start-up instead.
pub fn trpc_router<S: Service>(
    registry: Arc<Registry<S>>,
    service: Arc<S>,
    config: TrpcConfig,
) -> axum::Router {
    assert!(
        config.subscriptions.is_consistent(),
        "SubscriptionConfig: ping_interval ({:?}) must be shorter than \
         reconnect_after_inactivity ({:?}), or clients reconnect every idle stream",
        config.subscriptions.ping_interval,
        config.subscriptions.reconnect_after_inactivity,
    );
    let ok_metrics: Arc<call::OkMetrics> = Arc::new(
        registry
            .entries()
            .map(|e| (e.path.clone(), crate::metrics::CallMetrics::ok(&e.path)))
            .collect(),
    );
    let rest = config.rest_prefix.clone().map(|prefix| {
        Arc::new(rest::RestApi::new(
            &registry,
            prefix,
            service.clone(),
            config.clone(),
            ok_metrics.clone(),
        ))
    });
    let state = Arc::new(adapter::Trpc {
        registry,
        service,
        subscriptions: sse::SubscriptionGate::new(&config.subscriptions),
        config,
        ok_metrics,
    });
    let handler = move |req: axum::extract::Request| {
        let state = state.clone();
        async move { adapter::handle(state, req).await }
    };
    let mut router = axum::Router::new()
        .route(PREFIX, any(handler.clone()))
        .route("/trpc/", any(handler.clone()))
        .route("/trpc/{*path}", any(handler));
    if let Some(api) = rest {
        let prefix = api.prefix.clone();
        let handler = move |req: axum::extract::Request| {
            let api = api.clone();
            async move { rest::handle(api, req).await }
        };
        router = router
            .route(&prefix, any(handler.clone()))
            .route(&format!("{prefix}/{{*path}}"), any(handler));
    }
    router
}
