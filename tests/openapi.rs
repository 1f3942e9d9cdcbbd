//! The OpenAPI document of a registry: every procedure's tRPC endpoint and
//! REST route, their schemas from the Rust types, doc comments, security,
//! and `GET /openapi.json`. (`tests/run` also validates the committed
//! documents with openapi-spec-validator.)

mod common;

use std::sync::Arc;

use common::*;
use gatehouse::http::TrpcConfig;
use gatehouse::openapi::{OpenApiOptions, document};
use gatehouse::{Ctx, Guard, Kind, Procedure, Rest, Role, RpcError};
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
    async fn call(_: Ctx<TestService>, input: RenameInput) -> Result<String, RpcError> {
        Ok(format!("{}: {}", input.id, input.name))
    }
}

fn doc(rest_prefix: Option<&str>) -> Value {
    let registry = router()
        .procedure::<Rename>()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
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
    let registry = router()
        .procedure::<Rename>()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
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
    assert!(body["properties"]["id"].is_null());
    // Guarded: 401 and 403; with a path parameter: 404; errors in the REST shape.
    for status in ["400", "401", "403", "404"] {
        assert_eq!(
            op["responses"][status]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/RestError",
            "{status}"
        );
    }
    // A public procedure has no security.
    assert!(spring["paths"]["/trpc/hello"]["get"]["security"].is_null());
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

#[tokio::test]
async fn the_server_serves_its_document() {
    let registry = router()
        .procedure::<Rename>()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
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
