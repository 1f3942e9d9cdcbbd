//! The small application every framework test runs against: a handful of
//! procedures covering each protocol case, and a service whose caller is
//! `Authorization: Bearer <ROLE>`.
#![allow(dead_code)]

pub mod random;
pub mod rng;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use gatehouse::http::TrpcConfig;
use gatehouse::{
    Ctx, ErrorCode, Guard, Kind, NoInput, Principal, Procedure, RequestMeta, Role, Router,
    RpcError, Service,
};
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tower::ServiceExt;

#[derive(Default)]
pub struct TestService {
    pub not_ready: AtomicBool,
}

#[derive(Clone)]
pub struct Caller(pub Role);

impl Principal for Caller {
    fn role(&self) -> Role {
        self.0
    }
}

impl Service for TestService {
    type Principal = Caller;

    async fn authenticate(&self, request: &RequestMeta) -> Result<Option<Caller>, RpcError> {
        match request.bearer_token() {
            None => Ok(None),
            Some(token) => token
                .parse::<Role>()
                .map(|role| Some(Caller(role)))
                .map_err(|_| RpcError::unauthorized("Invalid token")),
        }
    }

    async fn ready(&self) -> bool {
        !self.not_ready.load(Ordering::SeqCst)
    }

    /// Stands in for message translation by `Accept-Language`.
    fn finalize_error(&self, request: &RequestMeta, error: &mut RpcError) {
        if request.header("accept-language") == Some("es") {
            error.message = format!("[es] {}", error.message);
        }
    }
}

type S = TestService;

#[derive(schemars::JsonSchema)]
pub struct Hello;
impl Procedure<S> for Hello {
    const PATH: &'static str = "hello";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Public;
    type Input = NoInput;
    type Output = String;
    type Error = RpcError;
    async fn call(_: Ctx<S>, _: NoInput) -> Result<String, RpcError> {
        Ok("hi".to_owned())
    }
}

#[derive(Deserialize, ts_rs::TS, schemars::JsonSchema)]
pub struct GreetInput {
    pub name: String,
}
#[derive(Serialize, ts_rs::TS, schemars::JsonSchema)]
pub struct GreetOutput {
    pub msg: String,
}

#[derive(schemars::JsonSchema)]
pub struct Greet;
impl Procedure<S> for Greet {
    const PATH: &'static str = "greet";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Public;
    type Input = GreetInput;
    type Output = GreetOutput;
    type Error = RpcError;
    async fn call(_: Ctx<S>, input: GreetInput) -> Result<GreetOutput, RpcError> {
        Ok(GreetOutput {
            msg: format!("hello {}", input.name),
        })
    }
}

#[derive(Deserialize, ts_rs::TS, schemars::JsonSchema)]
pub struct AddInput {
    pub a: i64,
    pub b: i64,
}

#[derive(schemars::JsonSchema)]
pub struct Add;
impl Procedure<S> for Add {
    const PATH: &'static str = "add";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Public;
    type Input = AddInput;
    type Output = i64;
    type Error = RpcError;
    async fn call(_: Ctx<S>, input: AddInput) -> Result<i64, RpcError> {
        Ok(input.a + input.b)
    }
}

/// A `void` mutation.
#[derive(schemars::JsonSchema)]
pub struct Noop;
impl Procedure<S> for Noop {
    const PATH: &'static str = "noop";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Public;
    type Input = NoInput;
    type Output = ();
    type Error = RpcError;
    async fn call(_: Ctx<S>, _: NoInput) -> Result<(), RpcError> {
        Ok(())
    }
}

#[derive(schemars::JsonSchema)]
pub struct Fail;
impl Procedure<S> for Fail {
    const PATH: &'static str = "fail";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Public;
    type Input = NoInput;
    type Output = String;
    type Error = RpcError;
    async fn call(_: Ctx<S>, _: NoInput) -> Result<String, RpcError> {
        Err(RpcError::not_found("nope"))
    }
}

#[derive(Deserialize, ts_rs::TS, schemars::JsonSchema)]
pub struct SecretInput {
    pub code: String,
}

/// Needs OPERATOR and an input: the guard must run before decoding.
#[derive(schemars::JsonSchema)]
pub struct Secret;
impl Procedure<S> for Secret {
    const PATH: &'static str = "secret";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Role(Role::Operator);
    type Input = SecretInput;
    type Output = String;
    type Error = RpcError;
    async fn call(ctx: Ctx<S>, input: SecretInput) -> Result<String, RpcError> {
        Ok(format!("{}:{}", ctx.principal()?.0, input.code))
    }
}

#[derive(schemars::JsonSchema)]
pub struct Slow;
impl Procedure<S> for Slow {
    const PATH: &'static str = "slow";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Public;
    type Input = NoInput;
    type Output = String;
    type Error = RpcError;
    async fn call(_: Ctx<S>, _: NoInput) -> Result<String, RpcError> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok("slow".to_owned())
    }
}

#[derive(schemars::JsonSchema)]
pub struct Panics;
impl Procedure<S> for Panics {
    const PATH: &'static str = "panics";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Public;
    type Input = NoInput;
    type Output = String;
    type Error = RpcError;
    #[allow(clippy::unused_async)]
    async fn call(_: Ctx<S>, _: NoInput) -> Result<String, RpcError> {
        panic!("boom")
    }
}

/// Fails with 429 and a `Retry-After` header.
#[derive(schemars::JsonSchema)]
pub struct Limited;
impl Procedure<S> for Limited {
    const PATH: &'static str = "limited";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Public;
    type Input = NoInput;
    type Output = String;
    type Error = RpcError;
    async fn call(_: Ctx<S>, _: NoInput) -> Result<String, RpcError> {
        Err(
            RpcError::new(ErrorCode::TooManyRequests, "slow down").with_header(
                HeaderName::from_static("retry-after"),
                HeaderValue::from_static("42"),
            ),
        )
    }
}

/// Any JSON, returned as decoded: shows what the envelope decoder produced.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct AnyJson(pub Value);

impl ts_rs::TS for AnyJson {
    type WithoutGenerics = Self;
    type OptionInnerType = Self;
    fn name(_: &ts_rs::Config) -> String {
        "unknown".to_owned()
    }
    fn inline(_: &ts_rs::Config) -> String {
        "unknown".to_owned()
    }
}

#[derive(schemars::JsonSchema)]
pub struct Echo;
impl Procedure<S> for Echo {
    const PATH: &'static str = "echo";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Public;
    type Input = AnyJson;
    type Output = AnyJson;
    type Error = RpcError;
    async fn call(_: Ctx<S>, input: AnyJson) -> Result<AnyJson, RpcError> {
        Ok(input)
    }
}

#[derive(Deserialize, ts_rs::TS, schemars::JsonSchema)]
pub struct OptInput {
    pub name: Option<String>,
}

#[derive(schemars::JsonSchema)]
pub struct Opt;
impl Procedure<S> for Opt {
    const PATH: &'static str = "opt";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Public;
    type Input = OptInput;
    type Output = String;
    type Error = RpcError;
    async fn call(_: Ctx<S>, input: OptInput) -> Result<String, RpcError> {
        Ok(input.name.unwrap_or_else(|| "<none>".to_owned()))
    }
}

/// Any authenticated caller.
#[derive(schemars::JsonSchema)]
pub struct WhoAmI;
impl Procedure<S> for WhoAmI {
    const PATH: &'static str = "whoami";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Authenticated;
    type Input = NoInput;
    type Output = String;
    type Error = RpcError;
    async fn call(ctx: Ctx<S>, _: NoInput) -> Result<String, RpcError> {
        Ok(ctx.principal()?.0.to_string())
    }
}

pub fn router() -> Router<S> {
    Router::new()
        .procedure::<Hello>()
        .procedure::<Greet>()
        .procedure::<Add>()
        .procedure::<Noop>()
        .procedure::<Fail>()
        .procedure::<Secret>()
        .procedure::<Slow>()
        .procedure::<Panics>()
        .procedure::<Limited>()
        .procedure::<Echo>()
        .procedure::<Opt>()
        .procedure::<WhoAmI>()
}

pub fn app() -> axum::Router {
    app_with(TrpcConfig::default())
}

pub fn app_with(config: TrpcConfig) -> axum::Router {
    app_with_service(config, Arc::new(TestService::default()))
}

pub fn app_with_service(config: TrpcConfig, service: Arc<TestService>) -> axum::Router {
    match router().build() {
        Ok(registry) => gatehouse::server::app(registry, service, config),
        Err(e) => panic!("test router: {e}"),
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn send(app: &axum::Router, req: Request<Body>) -> Resp {
    let response = match app.clone().oneshot(req).await {
        Ok(r) => r,
        Err(e) => match e {},
    };
    let (parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => panic!("body: {e}"),
    };
    Resp {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

pub fn request(method: &str, uri: &str) -> http::request::Builder {
    Request::builder().method(method).uri(uri)
}

pub fn build(builder: http::request::Builder, body: impl Into<Body>) -> Request<Body> {
    match builder.body(body.into()) {
        Ok(r) => r,
        Err(e) => panic!("request: {e}"),
    }
}

pub async fn get(app: &axum::Router, uri: &str) -> Resp {
    send(app, build(request("GET", uri), Body::empty())).await
}

pub async fn get_with(app: &axum::Router, uri: &str, headers: &[(&str, &str)]) -> Resp {
    let mut b = request("GET", uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(app, build(b, Body::empty())).await
}

pub async fn post(app: &axum::Router, uri: &str, body: &str) -> Resp {
    post_with(app, uri, body, &[]).await
}

pub async fn post_with(
    app: &axum::Router,
    uri: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Resp {
    let mut b = request("POST", uri).header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(app, build(b, body.to_owned())).await
}

/// `encodeURIComponent`, for building `?input=` like the client does.
pub fn enc(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'!')
        .remove(b'~')
        .remove(b'*')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// The superjson envelope of `undefined`, as the client sends it.
pub const UNDEF: &str = r#"{"json":null,"meta":{"values":["undefined"],"v":1}}"#;

/// The error body of one failing call, as the server must write it.
pub fn error_body(message: &str, code: ErrorCode, path: Option<&str>) -> String {
    let path = path.map_or(String::new(), |p| format!(",\"path\":{}", Value::from(p)));
    format!(
        r#"{{"error":{{"json":{{"message":{},"code":{},"data":{{"code":"{}","httpStatus":{}{}}}}}}}}}"#,
        Value::from(message),
        code.json_rpc(),
        code.key(),
        code.http_status().as_u16(),
        path
    )
}
