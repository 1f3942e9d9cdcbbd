//! The OpenAPI document of a registry: every procedure's tRPC endpoint and
//! REST route, their schemas from the Rust types, doc comments, security,
//! and `GET /openapi.json`. (`tests/run` also validates the committed
//! documents with openapi-spec-validator.)

mod common;

use std::sync::Arc;

use common::*;
use gatehouse::http::TrpcConfig;
use gatehouse::openapi::{OpenApiOptions, document};
use gatehouse::{Bearer, Ctx, ErrorCode, Guard, Kind, NoInput, Procedure, Rest, Role, RpcError};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize, ts_rs::TS, schemars::JsonSchema)]
struct RenameInput {
    id: String,
    name: String,
}

/// Renames a thing.
///
/// The new name must not be empty.
#[derive(schemars::JsonSchema)]
struct Rename;
impl Procedure<TestService> for Rename {
    const PATH: &'static str = "things.rename";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Role(Role::Operator);
    const REST: Option<Rest> = Some(Rest::put("/things/{id}"));
    type Input = RenameInput;
    type Output = String;
    type Error = RpcError;
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::Conflict, ErrorCode::NotFound];
    async fn call(_: Ctx<TestService>, input: RenameInput) -> Result<String, RpcError> {
        Ok(format!("{}: {}", input.id, input.name))
    }
}

/// Ends the caller's session, if a token is sent.
#[derive(schemars::JsonSchema)]
struct SignOut;
impl Procedure<TestService> for SignOut {
    const PATH: &'static str = "signOut";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Public;
    const BEARER: Bearer = Bearer::Optional;
    type Input = NoInput;
    type Output = bool;
    type Error = RpcError;
    async fn call(ctx: Ctx<TestService>, _: NoInput) -> Result<bool, RpcError> {
        Ok(ctx.request.bearer_token().is_some())
    }
}

/// The test router plus the procedures above.
fn registry() -> gatehouse::Registry<TestService> {
    router()
        .procedure::<Rename>()
        .procedure::<SignOut>()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn doc(rest_prefix: Option<&str>) -> Value {
    let registry = registry();
    document(
        &registry,
        &OpenApiOptions {
            rest_prefix: rest_prefix.map(str::to_owned),
            ..OpenApiOptions::default()
        },
    )
}

#[test]
fn every_procedure_has_its_trpc_operation() {
    let doc = doc(Some("/api"));
    assert_eq!(doc["openapi"], "3.1.0");
    let registry = registry();
    for entry in registry.entries() {
        let item = &doc["paths"][format!("/trpc/{}", entry.path)];
        let method = match entry.kind {
            Kind::Mutation => "post",
            _ => "get",
        };
        assert!(
            item[method].is_object(),
            "{} has no {method} operation",
            entry.path
        );
        assert_eq!(item[method]["operationId"], format!("trpc.{}", entry.path));
    }
    // A query's input travels in `?input=` inside the envelope.
    let greet = &doc["paths"]["/trpc/greet"]["get"];
    assert_eq!(greet["parameters"][0]["name"], "input");
    assert_eq!(
        greet["parameters"][0]["content"]["application/json"]["schema"]["properties"]["json"]["$ref"],
        "#/components/schemas/GreetInput"
    );
    // The output in `result.data.json`.
    assert_eq!(
        greet["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["result"]
            ["properties"]["data"]["properties"]["json"]["$ref"],
        "#/components/schemas/GreetOutput"
    );
}

#[test]
fn rest_routes_guards_and_doc_comments_are_described() {
    let spring = doc(Some("/api/1"));
    let op = &spring["paths"]["/api/1/things/{id}"]["put"];
    assert_eq!(op["operationId"], "things_rename");
    assert_eq!(op["tags"], json!(["things"]));
    assert_eq!(op["summary"], "Renames a thing.");
    let description = op["description"].as_str().unwrap_or_default();
    assert!(
        description.contains("The new name must not be empty."),
        "{description}"
    );
    assert!(description.contains("OPERATOR role"), "{description}");
    assert_eq!(op["security"], json!([{"bearerAuth": []}]));
    // The path parameter is a parameter, and not part of the body.
    assert_eq!(op["parameters"][0]["name"], "id");
    assert_eq!(op["parameters"][0]["in"], "path");
    let body = &op["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["required"], json!(["name"]));
    // `name` is required, so the body is.
    assert_eq!(op["requestBody"]["required"], true);
    assert!(body["properties"]["id"].is_null());
    // Guarded: 401 and 403; with a path parameter: 404; errors in the REST shape.
    for status in ["400", "401", "403", "404"] {
        assert_eq!(
            op["responses"][status]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/RestError",
            "{status}"
        );
    }
    // A public procedure has no security, unless it reads a token itself.
    assert!(spring["paths"]["/trpc/hello"]["get"]["security"].is_null());
    assert_eq!(
        spring["paths"]["/trpc/signOut"]["post"]["security"],
        json!([{"bearerAuth": []}, {}])
    );
    assert_eq!(
        spring["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    // Without a REST prefix, only the tRPC endpoints.
    let trpc_only = doc(None);
    assert!(
        trpc_only["paths"]
            .as_object()
            .is_some_and(|p| p.keys().all(|k| k.starts_with("/trpc/")))
    );
}

/// The statuses of an operation's responses, in document order.
fn statuses(op: &Value) -> Vec<&str> {
    op["responses"]
        .as_object()
        .map(|r| r.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn every_error_status_is_listed_and_nothing_else() {
    let doc = doc(Some("/api"));
    // Framework: 400 (input), 401/403 (guard), 404 (path parameter),
    // 413/415 (body), 408/500/503 (any call); declared: 409 and 404 (once).
    assert_eq!(
        statuses(&doc["paths"]["/api/things/{id}"]["put"]),
        [
            "200", "400", "401", "403", "404", "408", "409", "413", "415", "500", "503"
        ]
    );
    assert_eq!(
        statuses(&doc["paths"]["/trpc/things.rename"]["post"]),
        [
            "200", "400", "401", "403", "404", "408", "409", "413", "415", "500", "503"
        ]
    );
    let conflict = &doc["paths"]["/trpc/things.rename"]["post"]["responses"]["409"];
    assert_eq!(conflict["description"], "Conflict (CONFLICT)");
    // A public query without input can only fail as any call may.
    assert_eq!(
        statuses(&doc["paths"]["/trpc/hello"]["get"]),
        ["200", "408", "500", "503"]
    );
}

#[tokio::test]
async fn the_server_serves_its_document() {
    let registry = registry();
    let app = gatehouse::server::app(
        registry,
        Arc::new(TestService::default()),
        TrpcConfig::default(),
    );
    let r = get(&app, "/openapi.json").await;
    assert_eq!(r.status, http::StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), doc(Some("/api")));
}
