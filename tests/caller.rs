//! Calling procedures from Rust without HTTP (`RequestScope::invoke`, the
//! idea of tRPC's `createCaller`): typed input and output, the same guard.

mod common;

use std::sync::Arc;

use common::{Greet, GreetInput, Secret, SecretInput, TestService};
use gatehouse::{ErrorCode, RequestMeta, RequestScope};
use http::{HeaderMap, HeaderValue, Method};

fn scope(authorization: Option<&'static str>) -> RequestScope<TestService> {
    let mut headers = HeaderMap::new();
    if let Some(value) = authorization {
        headers.insert("authorization", HeaderValue::from_static(value));
    }
    let meta = RequestMeta {
        method: Method::POST,
        headers,
        peer: None,
        request_id: "in-process".to_owned(),
        connection_params: Vec::new(),
        response_headers: Default::default(),
    };
    RequestScope::new(Arc::new(TestService::default()), Arc::new(meta))
}

#[tokio::test]
async fn a_procedure_runs_with_typed_input_and_output() {
    let input = GreetInput {
        name: "Ada".to_owned(),
    };
    let out = scope(None)
        .invoke::<Greet>(input)
        .await
        .expect("public call");
    assert_eq!(out.msg, "hello Ada");
}

#[tokio::test]
async fn the_guard_runs_as_over_http() {
    let input = || SecretInput {
        code: "42".to_owned(),
    };
    let anonymous = scope(None).invoke::<Secret>(input()).await;
    assert_eq!(
        anonymous.err().map(|e| e.code),
        Some(ErrorCode::Unauthorized)
    );
    let viewer = scope(Some("Bearer VIEWER")).invoke::<Secret>(input()).await;
    assert_eq!(viewer.err().map(|e| e.code), Some(ErrorCode::Forbidden));
    let operator = scope(Some("Bearer OPERATOR"))
        .invoke::<Secret>(input())
        .await
        .expect("an OPERATOR may call it");
    assert_eq!(operator, "OPERATOR:42");
}
