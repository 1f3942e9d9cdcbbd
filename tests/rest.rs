//! REST routes: procedures that declare a `Rest` route answer plain JSON
//! under the REST prefix, through the same guard, decoding, handler and
//! error translation as their tRPC calls.

mod common;

use std::sync::Arc;

use axum::body::Body;
use common::*;
use gatehouse::http::TrpcConfig;
use gatehouse::{Ctx, ErrorCode, Guard, Kind, NoInput, Procedure, Rest, Role, Router, RpcError};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Deserialize, ts_rs::TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ItemInput {
    id: String,
    name: Option<String>,
    #[serde(default)]
    copies: Option<u32>,
}

#[derive(Serialize, ts_rs::TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Item {
    id: String,
    name: String,
    copies: u32,
}

/// `POST /items/{id}` (201): creates, echoing its input.
#[derive(schemars::JsonSchema)]
struct CreateItem;
impl Procedure<TestService> for CreateItem {
    const PATH: &'static str = "items.create";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Public;
    const REST: Option<Rest> = Some(Rest::post("/items/{id}").created());
    type Input = ItemInput;
    type Output = Item;
    type Error = RpcError;
    async fn call(_: Ctx<TestService>, input: ItemInput) -> Result<Item, RpcError> {
        let name = input.name.unwrap_or_default();
        if name.trim().is_empty() {
            return Err(RpcError::validation(vec![gatehouse::Issue::new(
                ["name"],
                "Must not be empty",
            )]));
        }
        Ok(Item {
            id: input.id,
            name,
            copies: input.copies.unwrap_or(1),
        })
    }
}

/// `GET /items/{id}`: the query string is the rest of the input.
#[derive(schemars::JsonSchema)]
struct GetItem;
impl Procedure<TestService> for GetItem {
    const PATH: &'static str = "items.get";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Public;
    const REST: Option<Rest> = Some(Rest::get("/items/{id}"));
    type Input = ItemInput;
    type Output = Item;
    type Error = RpcError;
    async fn call(_: Ctx<TestService>, input: ItemInput) -> Result<Item, RpcError> {
        Ok(Item {
            id: input.id,
            name: input.name.unwrap_or_else(|| "stored".to_owned()),
            copies: input.copies.unwrap_or(1),
        })
    }
}

/// `DELETE /items/{id}`: no output (204); ADMIN only.
#[derive(schemars::JsonSchema)]
struct DeleteItem;
impl Procedure<TestService> for DeleteItem {
    const PATH: &'static str = "items.delete";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Role(Role::Admin);
    const REST: Option<Rest> = Some(Rest::delete("/items/{id}"));
    type Input = ItemInput;
    type Output = ();
    type Error = RpcError;
    async fn call(_: Ctx<TestService>, _: ItemInput) -> Result<(), RpcError> {
        Ok(())
    }
}

/// `GET /busy`: always throttled, with `Retry-After`.
#[derive(schemars::JsonSchema)]
struct Busy;
impl Procedure<TestService> for Busy {
    const PATH: &'static str = "busy";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Public;
    const REST: Option<Rest> = Some(Rest::get("/busy"));
    type Input = NoInput;
    type Output = String;
    type Error = RpcError;
    async fn call(_: Ctx<TestService>, _: NoInput) -> Result<String, RpcError> {
        Err(
            RpcError::new(ErrorCode::TooManyRequests, "Slow down").with_header(
                http::HeaderName::from_static("retry-after"),
                http::HeaderValue::from_static("7"),
            ),
        )
    }
}

fn routes() -> Router<TestService> {
    router()
        .procedure::<CreateItem>()
        .procedure::<GetItem>()
        .procedure::<DeleteItem>()
        .procedure::<Busy>()
}

fn rest_app(prefix: Option<&str>) -> axum::Router {
    let registry = routes().build().unwrap_or_else(|e| panic!("{e}"));
    let config = TrpcConfig {
        rest_prefix: prefix.map(str::to_owned),
        ..TrpcConfig::default()
    };
    gatehouse::server::app(registry, Arc::new(TestService::default()), config)
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Resp {
    let mut builder = request(method, uri);
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_owned()));
    send(app, build(builder, body)).await
}

/// The error body without its timestamp (checked to be RFC 3339 first).
fn error_body(response: &Resp) -> serde_json::Value {
    let mut body = response.json();
    let timestamp = body["timestamp"].as_str().expect("timestamp").to_owned();
    assert!(
        chrono::DateTime::parse_from_rfc3339(&timestamp).is_ok(),
        "{timestamp}"
    );
    body.as_object_mut().expect("object").remove("timestamp");
    body
}

#[tokio::test]
async fn routes_answer_plain_json_with_their_status() {
    let app = rest_app(Some("/api"));
    let created = call(
        &app,
        "POST",
        "/api/items/a%2Fb",
        Some(r#"{"name":"Lamp","copies":2}"#),
        &[],
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.header("content-type"), Some("application/json"));
    // The path parameter fills `id`, percent-decoded.
    assert_eq!(
        created.json(),
        json!({"id": "a/b", "name": "Lamp", "copies": 2})
    );

    // GET: the query string, numbers included; the path wins over it.
    let got = get(&app, "/api/items/7?name=Desk&copies=3&id=ignored").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json(), json!({"id": "7", "name": "Desk", "copies": 3}));

    // No output: 204 with no body.
    let deleted = call(
        &app,
        "DELETE",
        "/api/items/7",
        None,
        &[("authorization", "Bearer ADMIN")],
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(deleted.body, "");

    // The same procedure over tRPC is unchanged.
    let trpc = get(
        &app,
        &format!("/trpc/items.get?input={}", enc(r#"{"json":{"id":"7"}}"#)),
    )
    .await;
    assert_eq!(
        trpc.json(),
        json!({"result": {"data": {"json": {"id": "7", "name": "stored", "copies": 1}}}})
    );
}

#[tokio::test]
async fn errors_have_the_spring_shape_with_the_trpc_code() {
    let app = rest_app(Some("/api"));
    // The handler's validation.
    let invalid = call(&app, "POST", "/api/items/1", Some(r#"{"name":"  "}"#), &[]).await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_body(&invalid),
        json!({
            "status": 400, "error": "Bad Request", "message": "Must not be empty",
            "path": "/api/items/1", "code": "BAD_REQUEST",
            "issues": [{"path": ["name"], "message": "Must not be empty"}]
        })
    );
    // serde's complaint, with the field.
    let wrong_type = get(&app, "/api/items/1?copies=many").await;
    assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_body(&wrong_type)["issues"][0]["path"],
        json!(["copies"])
    );
    // Guards: 401 without credentials, 403 without the role; translated.
    let anonymous = call(
        &app,
        "DELETE",
        "/api/items/1",
        None,
        &[("accept-language", "es")],
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        error_body(&anonymous),
        json!({
            "status": 401, "error": "Unauthorized", "message": "[es] Authentication required",
            "path": "/api/items/1", "code": "UNAUTHORIZED"
        })
    );
    let viewer = call(
        &app,
        "DELETE",
        "/api/items/1",
        None,
        &[("authorization", "Bearer VIEWER")],
    )
    .await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN);
    assert_eq!(error_body(&viewer)["code"], "FORBIDDEN");
    // Retry-After as tRPC sends it.
    let busy = get(&app, "/api/busy").await;
    assert_eq!(busy.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(busy.header("retry-after"), Some("7"));
    assert_eq!(error_body(&busy)["code"], "TOO_MANY_REQUESTS");
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_bad_bodies_are_refused_in_the_same_shape() {
    let app = rest_app(Some("/api"));
    let unknown = get(&app, "/api/nothing/here").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(error_body(&unknown)["code"], "NOT_FOUND");
    let wrong = call(&app, "PATCH", "/api/items/1", Some("{}"), &[]).await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.header("allow"), Some("POST, GET, DELETE"));
    assert_eq!(error_body(&wrong)["code"], "METHOD_NOT_SUPPORTED");
    let text = send(
        &app,
        build(
            request("POST", "/api/items/1").header("content-type", "text/plain"),
            "name=x",
        ),
    )
    .await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let broken = call(&app, "POST", "/api/items/1", Some("{\"name\":"), &[]).await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_body(&broken)["message"],
        "Unexpected end of JSON input"
    );
    let not_object = call(&app, "POST", "/api/items/1", Some("[1]"), &[]).await;
    assert_eq!(not_object.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_body(&not_object)["message"],
        "The body must be a JSON object"
    );
}

#[tokio::test]
async fn the_prefix_is_configurable_and_can_be_turned_off() {
    let spring = rest_app(Some("/api/1"));
    let created = call(
        &spring,
        "POST",
        "/api/1/items/9",
        Some(r#"{"name":"x"}"#),
        &[],
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let off = rest_app(None);
    let none = call(&off, "POST", "/api/items/9", Some(r#"{"name":"x"}"#), &[]).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    assert_eq!(none.body, "");
}

#[test]
fn clashing_or_malformed_routes_are_refused_at_build() {
    #[derive(schemars::JsonSchema)]
    struct Clash;
    impl Procedure<TestService> for Clash {
        const PATH: &'static str = "clash";
        const KIND: Kind = Kind::Query;
        const GUARD: Guard = Guard::Public;
        const REST: Option<Rest> = Some(Rest::get("/items/{key}"));
        type Input = NoInput;
        type Output = ();
        type Error = RpcError;
        async fn call(_: Ctx<TestService>, _: NoInput) -> Result<(), RpcError> {
            Ok(())
        }
    }
    #[derive(schemars::JsonSchema)]
    struct Malformed;
    impl Procedure<TestService> for Malformed {
        const PATH: &'static str = "malformed";
        const KIND: Kind = Kind::Query;
        const GUARD: Guard = Guard::Public;
        const REST: Option<Rest> = Some(Rest::get("items//{}"));
        type Input = NoInput;
        type Output = ();
        type Error = RpcError;
        async fn call(_: Ctx<TestService>, _: NoInput) -> Result<(), RpcError> {
            Ok(())
        }
    }
    let clash = routes()
        .procedure::<Clash>()
        .build()
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        clash.as_deref(),
        Some("REST route GET /items/{key} is declared by both \"items.get\" and \"clash\"")
    );
    assert!(routes().procedure::<Malformed>().build().is_err());
}

/// An input that may be left out (decodes from an optional object), as
/// `users.list`'s does.
#[derive(Debug, Default, Deserialize, ts_rs::TS, schemars::JsonSchema)]
#[serde(from = "Option<PageFields>")]
struct PageInput {
    page: i64,
    search: Option<String>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default)]
struct PageFields {
    page: Option<i64>,
    search: Option<String>,
}

impl From<Option<PageFields>> for PageInput {
    fn from(fields: Option<PageFields>) -> Self {
        let fields = fields.unwrap_or_default();
        Self {
            page: fields.page.unwrap_or(1),
            search: fields.search,
        }
    }
}

#[derive(schemars::JsonSchema)]
struct ListPages;
impl Procedure<TestService> for ListPages {
    const PATH: &'static str = "pages";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Public;
    const REST: Option<Rest> = Some(Rest::get("/pages"));
    type Input = PageInput;
    type Output = String;
    type Error = RpcError;
    async fn call(_: Ctx<TestService>, input: PageInput) -> Result<String, RpcError> {
        Ok(format!(
            "{}:{}",
            input.page,
            input.search.unwrap_or_default()
        ))
    }
}

#[tokio::test]
async fn optional_inputs_read_from_the_query_string() {
    let registry = routes()
        .procedure::<ListPages>()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let app = gatehouse::server::app(
        registry,
        Arc::new(TestService::default()),
        TrpcConfig::default(),
    );
    assert_eq!(get(&app, "/api/pages").await.json(), json!("1:"));
    // A number-looking search stays text; the page is a number.
    assert_eq!(
        get(&app, "/api/pages?page=3&search=123").await.json(),
        json!("3:123")
    );
    let bad = get(&app, "/api/pages?page=three").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_body(&bad)["issues"][0]["path"], json!(["page"]));
}
