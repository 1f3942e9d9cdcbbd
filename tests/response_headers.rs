//! Headers a procedure adds to the answer (`RequestMeta::response_headers`):
//! on a single call, on every call of a batch (appended, so two
//! `Set-Cookie`s both arrive), on a REST route, on a subscription (added
//! while it opens), and not on a streamed batch, whose head is sent before
//! the calls end. And CORS credentials: only for a
//! list of origins, ignored (not a panic) with `*`.

mod common;

use std::sync::Arc;

use axum::body::Body;
use common::{TestService, build, post, post_with, request, send};
use gatehouse::http::{CorsOrigins, TrpcConfig};
use gatehouse::{
    Ctx, Event, EventStream, Guard, Kind, NoInput, Procedure, Rest, Router, RpcError, Subscription,
};
use http::{HeaderName, HeaderValue};
use serde::Deserialize;

#[derive(Deserialize, ts_rs::TS, schemars::JsonSchema)]
struct MarkInput {
    name: String,
}

/// Adds `set-cookie: <name>=1` to the answer.
#[derive(schemars::JsonSchema)]
struct Mark;

impl Procedure<TestService> for Mark {
    const PATH: &'static str = "mark";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Public;
    const REST: Option<Rest> = Some(Rest::post("/mark"));
    type Input = MarkInput;
    type Output = bool;
    type Error = RpcError;

    async fn call(ctx: Ctx<TestService>, input: MarkInput) -> Result<bool, RpcError> {
        let value = HeaderValue::from_str(&format!("{}=1", input.name))
            .map_err(|_| RpcError::bad_request("bad name"))?;
        ctx.request
            .response_headers
            .append(HeaderName::from_static("set-cookie"), value);
        Ok(true)
    }
}

/// A subscription that adds `set-cookie: sub=1` while it opens, then sends
/// one event and ends.
#[derive(schemars::JsonSchema)]
struct MarkedStream;

impl Subscription<TestService> for MarkedStream {
    const PATH: &'static str = "markedStream";
    const GUARD: Guard = Guard::Public;
    const TRACKED: bool = false;
    type Input = NoInput;
    type Output = bool;
    type Error = RpcError;

    async fn subscribe(
        ctx: Ctx<TestService>,
        _: NoInput,
    ) -> Result<EventStream<bool, RpcError>, RpcError> {
        ctx.request.response_headers.append(
            HeaderName::from_static("set-cookie"),
            HeaderValue::from_static("sub=1"),
        );
        Ok(Box::pin(futures::stream::iter([Ok(Event::new(true))])))
    }
}

fn app(config: TrpcConfig) -> axum::Router {
    let registry = Router::new()
        .procedure::<Mark>()
        .subscription::<MarkedStream>()
        .build()
        .expect("router builds");
    gatehouse::server::app(registry, Arc::new(TestService::default()), config)
}

fn set_cookies(r: &common::Resp) -> Vec<&str> {
    let mut all: Vec<&str> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    all.sort_unstable();
    all
}

#[tokio::test]
async fn added_headers_reach_single_calls_batches_and_rest_routes() {
    let app = app(TrpcConfig::default());
    let r = post(&app, "/trpc/mark", r#"{"json":{"name":"a"}}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(set_cookies(&r), ["a=1"]);

    let r = post(
        &app,
        "/trpc/mark,mark?batch=1",
        r#"{"0":{"json":{"name":"a"}},"1":{"json":{"name":"b"}}}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(set_cookies(&r), ["a=1", "b=1"]);

    let r = post(&app, "/api/mark", r#"{"name":"c"}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(set_cookies(&r), ["c=1"]);

    // A streamed batch has sent its head already: the call still succeeds.
    let r = post_with(
        &app,
        "/trpc/mark?batch=1",
        r#"{"0":{"json":{"name":"d"}}}"#,
        &[("trpc-accept", "application/jsonl")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(set_cookies(&r).is_empty());
    assert!(r.body.contains("true"), "{}", r.body);

    // A subscription carries what was added while it opened.
    let r = common::get(&app, "/trpc/markedStream").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(set_cookies(&r), ["sub=1"]);
}

fn preflight(origin: &str) -> http::Request<Body> {
    build(
        request("OPTIONS", "/trpc/mark")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-app"),
        Body::empty(),
    )
}

#[tokio::test]
async fn cors_credentials_only_with_a_list_of_origins() {
    let listed = app(TrpcConfig {
        cors_origins: CorsOrigins::List(vec!["https://app.example".to_owned()]),
        cors_credentials: true,
        cors_extra_headers: vec![HeaderName::from_static("x-app")],
        ..TrpcConfig::default()
    });
    let r = send(&listed, preflight("https://app.example")).await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    let headers = r.header("access-control-allow-headers").unwrap_or_default();
    assert!(headers.contains("x-app"), "{headers}");

    // Off by default.
    let plain = app(TrpcConfig {
        cors_origins: CorsOrigins::List(vec!["https://app.example".to_owned()]),
        ..TrpcConfig::default()
    });
    let r = send(&plain, preflight("https://app.example")).await;
    assert_eq!(r.header("access-control-allow-credentials"), None);

    // With `*` the setting is ignored rather than panicking at start.
    let any = app(TrpcConfig {
        cors_origins: CorsOrigins::Any,
        cors_credentials: true,
        ..TrpcConfig::default()
    });
    let r = send(&any, preflight("https://x.example")).await;
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-allow-credentials"), None);
}
