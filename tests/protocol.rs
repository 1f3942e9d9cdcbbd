//! The tRPC v11 HTTP protocol as `docs/protocol.md` describes it, with the
//! superjson envelope: URLs, methods, batching, statuses, errors, headers.

mod common;

use axum::body::Body;
use common::*;
use gatehouse::ErrorCode;
use gatehouse::http::TrpcConfig;
use http::StatusCode;
use serde_json::json;

fn assert_json_headers(r: &Resp) {
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("vary"), Some("trpc-accept, accept"));
}

#[tokio::test]
async fn single_query_with_undefined_input() {
    let app = app();
    let r = get(&app, &format!("/trpc/hello?input={}", enc(UNDEF))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, r#"{"result":{"data":{"json":"hi"}}}"#);
    assert_json_headers(&r);
    // No input parameter at all, and garbage the procedure never reads.
    let r = get(&app, "/trpc/hello").await;
    assert_eq!(r.body, r#"{"result":{"data":{"json":"hi"}}}"#);
    let r = get(&app, "/trpc/hello?input=%7Bbad").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, r#"{"result":{"data":{"json":"hi"}}}"#);
}

#[tokio::test]
async fn query_with_input_and_mutation() {
    let app = app();
    let r = get(
        &app,
        &format!("/trpc/greet?input={}", enc(r#"{"json":{"name":"Bob"}}"#)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body,
        r#"{"result":{"data":{"json":{"msg":"hello Bob"}}}}"#
    );

    let r = post(&app, "/trpc/add", r#"{"json":{"a":1,"b":2}}"#).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, r#"{"result":{"data":{"json":3}}}"#);
    assert_json_headers(&r);
}

#[tokio::test]
async fn void_output_is_superjson_undefined() {
    let app = app();
    let r = post(&app, "/trpc/noop", UNDEF).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body,
        r#"{"result":{"data":{"json":null,"meta":{"values":["undefined"],"v":1}}}}"#
    );
    // An empty body (11.25.2) is no input too.
    let r = post(&app, "/trpc/noop", "").await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn procedure_error_has_exact_shape_and_status() {
    let app = app();
    let r = get(&app, "/trpc/fail").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.body,
        r#"{"error":{"json":{"message":"nope","code":-32004,"data":{"code":"NOT_FOUND","httpStatus":404,"path":"fail"}}}}"#
    );
    assert_json_headers(&r);
}

#[tokio::test]
async fn finalize_error_sees_every_error() {
    let app = app();
    let es = [("accept-language", "es")];
    let message = |r: &Resp| r.json()["error"]["json"]["message"].clone();
    // From the procedure, the guard, the decoder, a panic.
    let r = get_with(&app, "/trpc/fail", &es).await;
    assert_eq!(message(&r), "[es] nope");
    let r = get_with(&app, "/trpc/whoami", &es).await;
    assert_eq!(message(&r), "[es] Authentication required");
    let r = get_with(&app, "/trpc/greet?input=%7Bbad", &es).await;
    assert_eq!(
        message(&r),
        "[es] Expected property name or '}' in JSON at position 1"
    );
    let r = get_with(&app, "/trpc/panics", &es).await;
    assert_eq!(message(&r), "[es] Internal server error");
    // Protocol errors, per call and request-level.
    let r = get_with(&app, "/trpc/nope", &es).await;
    assert_eq!(message(&r), "[es] No procedure found on path \"nope\"");
    let r = get_with(&app, "/trpc/add", &es).await;
    assert_eq!(
        message(&r),
        "[es] Unsupported GET-request to mutation procedure at path \"add\""
    );
    let r = get_with(
        &app,
        "/trpc/hello",
        &[es[0], ("trpc-accept", "application/jsonl")],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        message(&r),
        "[es] Streaming requests must be batched (you can do a batch of 1)"
    );
    // Without the header nothing changes.
    let r = get(&app, "/trpc/fail").await;
    assert_eq!(message(&r), "nope");
}

#[tokio::test]
async fn unknown_procedure() {
    let app = app();
    let r = get(&app, "/trpc/nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.body,
        r#"{"error":{"json":{"message":"No procedure found on path \"nope\"","code":-32004,"data":{"code":"NOT_FOUND","httpStatus":404,"path":"nope"}}}}"#
    );
}

#[tokio::test]
async fn path_handling() {
    let app = app();
    for uri in ["/trpc/hello/", "/trpc/h%65llo", "/trpc/hello?foo=bar"] {
        let r = get(&app, uri).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        assert_eq!(r.body, r#"{"result":{"data":{"json":"hi"}}}"#, "{uri}");
    }
    let r = get(&app, "/trpc/").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"]["json"]["data"]["path"], "");
    let r = get(&app, "/trpc/he%zzllo").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body,
        r#"{"error":{"json":{"message":"Invalid URL-encoding in path \"he%zzllo\"","code":-32600,"data":{"code":"BAD_REQUEST","httpStatus":400}}}}"#
    );
    assert_json_headers(&r);
}

#[tokio::test]
async fn wrong_method_is_a_per_call_405_with_allow() {
    let app = app();
    let r = get(&app, "/trpc/add").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        r.body,
        r#"{"error":{"json":{"message":"Unsupported GET-request to mutation procedure at path \"add\"","code":-32005,"data":{"code":"METHOD_NOT_SUPPORTED","httpStatus":405,"path":"add"}}}}"#
    );
    assert_eq!(r.header("allow"), Some("POST"));

    let r = post(&app, "/trpc/hello", UNDEF).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        r.json()["error"]["json"]["message"],
        "Unsupported POST-request to query procedure at path \"hello\""
    );
    assert_eq!(r.header("allow"), Some("GET"));

    let req = build(
        request("PUT", "/trpc/hello").header("content-type", "application/json"),
        UNDEF,
    );
    let r = send(&app, req).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        r.json()["error"]["json"]["message"],
        "Unsupported PUT-request to query procedure at path \"hello\""
    );
}

#[tokio::test]
async fn method_override_allows_post_queries_only_when_configured() {
    let app = app_with(TrpcConfig {
        allow_method_override: true,
        ..TrpcConfig::default()
    });
    let r = post(&app, "/trpc/greet", r#"{"json":{"name":"M"}}"#).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, r#"{"result":{"data":{"json":{"msg":"hello M"}}}}"#);
    let r = post(
        &app,
        "/trpc/hello,greet?batch=1",
        r#"{"1":{"json":{"name":"M"}}}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // Mutations are still never GET.
    let r = get(&app, "/trpc/add").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn batch_in_request_order() {
    let app = app();
    let input =
        r#"{"0":{"json":null,"meta":{"values":["undefined"],"v":1}},"1":{"json":{"name":"A"}}}"#;
    let r = get(
        &app,
        &format!("/trpc/hello,greet?batch=1&input={}", enc(input)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body,
        r#"[{"result":{"data":{"json":"hi"}}},{"result":{"data":{"json":{"msg":"hello A"}}}}]"#
    );
    assert_json_headers(&r);
    // Every input undefined: `input={}`; a batch of one is still an array.
    let r = get(&app, "/trpc/hello?batch=1&input=%7B%7D").await;
    assert_eq!(r.body, r#"[{"result":{"data":{"json":"hi"}}}]"#);
    // Missing key means undefined, and the batch flag must be exactly "1".
    let r = get(&app, "/trpc/hello,hello?batch=true").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"]["json"]["data"]["path"], "hello,hello");
}

#[tokio::test]
async fn batch_mutations() {
    let app = app();
    let r = post(
        &app,
        "/trpc/add,noop?batch=1",
        r#"{"0":{"json":{"a":1,"b":1}}}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body,
        r#"[{"result":{"data":{"json":2}}},{"result":{"data":{"json":null,"meta":{"values":["undefined"],"v":1}}}}]"#
    );
}

#[tokio::test]
async fn batch_statuses_207_and_single_distinct() {
    let app = app();
    let input = enc(r#"{"0":{"json":{"name":"world"}}}"#);
    let r = get(
        &app,
        &format!("/trpc/greet,fail,hello?batch=1&input={input}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    assert_eq!(
        r.body,
        r#"[{"result":{"data":{"json":{"msg":"hello world"}}}},{"error":{"json":{"message":"nope","code":-32004,"data":{"code":"NOT_FOUND","httpStatus":404,"path":"fail"}}}},{"result":{"data":{"json":"hi"}}}]"#
    );
    let r = get(&app, "/trpc/fail,nope?batch=1&input=%7B%7D").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let body = r.json();
    assert_eq!(body.as_array().map(Vec::len), Some(2));
    assert_eq!(body[1]["error"]["json"]["data"]["path"], "nope");
}

#[tokio::test]
async fn batch_input_must_be_an_object() {
    let app = app();
    let r = get(&app, "/trpc/hello,greet?batch=1&input=%5B1%5D").await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    assert_eq!(
        r.body,
        format!(
            "[{},{}]",
            r#"{"result":{"data":{"json":"hi"}}}"#,
            r#"{"error":{"json":{"message":"\"input\" needs to be an object when doing a batch call","code":-32600,"data":{"code":"BAD_REQUEST","httpStatus":400,"path":"greet"}}}}"#
        )
    );
}

#[tokio::test]
async fn malformed_json_fails_only_readers() {
    let app = app();
    let r = get(&app, "/trpc/greet?input=%7Bbad").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body,
        r#"{"error":{"json":{"message":"Expected property name or '}' in JSON at position 1","code":-32600,"data":{"code":"BAD_REQUEST","httpStatus":400,"path":"greet"}}}}"#
    );
    let r = post(&app, "/trpc/add", "{bad").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["json"]["data"]["path"], "add");
    let r = post(&app, "/trpc/noop", "{bad").await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn request_level_errors_are_single_objects_without_path() {
    let app = app();
    let r = post(
        &app,
        "/trpc/hello,add?batch=1",
        r#"{"1":{"json":{"a":1,"b":2}}}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body,
        r#"{"error":{"json":{"message":"Cannot mix procedure types in call: query, mutation","code":-32600,"data":{"code":"BAD_REQUEST","httpStatus":400}}}}"#
    );
    assert_json_headers(&r);

    let r = post(&app, "/trpc/add,hello?batch=1", "{}").await;
    assert_eq!(
        r.json()["error"]["json"]["message"],
        "Cannot mix procedure types in call: mutation, query"
    );
}

#[tokio::test]
async fn batching_can_be_disabled() {
    let app = app_with(TrpcConfig {
        allow_batching: false,
        ..TrpcConfig::default()
    });
    let r = get(&app, "/trpc/hello,hello?batch=1&input=%7B%7D").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body,
        r#"{"error":{"json":{"message":"Batching is not enabled on the server","code":-32600,"data":{"code":"BAD_REQUEST","httpStatus":400}}}}"#
    );
    let r = get(&app, "/trpc/hello").await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn max_batch_size() {
    let app = app_with(TrpcConfig {
        max_batch_size: 2,
        ..TrpcConfig::default()
    });
    let r = get(&app, "/trpc/hello,hello?batch=1&input=%7B%7D").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = get(&app, "/trpc/hello,hello,hello?batch=1&input=%7B%7D").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body,
        r#"{"error":{"json":{"message":"Batch call exceeds maximum size","code":-32600,"data":{"code":"BAD_REQUEST","httpStatus":400}}}}"#
    );
}

#[tokio::test]
async fn content_types() {
    let app = app();
    let req = build(
        request("POST", "/trpc/add").header("content-type", "text/plain"),
        "{}",
    );
    let r = send(&app, req).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        r.body,
        r#"{"error":{"json":{"message":"Unsupported content-type \"text/plain","code":-32015,"data":{"code":"UNSUPPORTED_MEDIA_TYPE","httpStatus":415}}}}"#
    );
    assert_json_headers(&r);

    let r = send(&app, build(request("POST", "/trpc/add"), "{}")).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        r.json()["error"]["json"]["message"],
        "Missing content-type header"
    );

    // Case-insensitive media type with parameters.
    let req = build(
        request("POST", "/trpc/add").header("content-type", "Application/JSON; charset=utf-8"),
        r#"{"json":{"a":2,"b":2}}"#,
    );
    let r = send(&app, req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, r#"{"result":{"data":{"json":4}}}"#);

    // v10 sends a JSON content-type on GET; any other is ignored on GET.
    let r = get_with(&app, "/trpc/hello", &[("content-type", "application/json")]).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = get_with(&app, "/trpc/hello", &[("content-type", "text/plain")]).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn options_without_cors_is_415() {
    let app = app();
    let req = build(
        request("OPTIONS", "/trpc/hello")
            .header("origin", "https://app.example")
            .header("access-control-request-method", "GET"),
        Body::empty(),
    );
    let r = send(&app, req).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        r.json()["error"]["json"]["message"],
        "Missing content-type header"
    );
    assert!(r.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn head_is_204_empty() {
    let app = app();
    let r = send(&app, build(request("HEAD", "/trpc/hello"), Body::empty())).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.body.is_empty());
    assert!(r.header("vary").is_none());
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let app = app_with(TrpcConfig {
        body_limit: 64,
        ..TrpcConfig::default()
    });
    let big = format!(r#"{{"json":{{"a":1,"b":2,"pad":"{}"}}}}"#, "x".repeat(200));
    let r = post(&app, "/trpc/add", &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.body,
        r#"{"error":{"json":{"message":"PAYLOAD_TOO_LARGE","code":-32013,"data":{"code":"PAYLOAD_TOO_LARGE","httpStatus":413,"path":"add"}}}}"#
    );
    let r = post(&app, "/trpc/add", r#"{"json":{"a":1,"b":2}}"#).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn error_headers_are_copied() {
    let app = app();
    let r = post(&app, "/trpc/limited", UNDEF).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("retry-after"), Some("42"));
    assert_eq!(
        r.body,
        error_body("slow down", ErrorCode::TooManyRequests, Some("limited"))
    );
}

#[tokio::test]
async fn guards() {
    let app = app();
    let good = format!("/trpc/secret?input={}", enc(r#"{"json":{"code":"x"}}"#));
    let bad = format!("/trpc/secret?input={}", enc(r#"{"json":{"nope":1}}"#));

    // No token: 401 even with an invalid input (the guard runs first).
    let r = get(&app, &bad).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"]["json"]["data"]["code"], "UNAUTHORIZED");
    let r = get(&app, "/trpc/secret?input=%7Bbad").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // A token the service refuses.
    let r = get_with(&app, &good, &[("authorization", "Bearer bogus")]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"]["json"]["message"], "Invalid token");

    // Too low a role: 403, again before decoding.
    let r = get_with(&app, &bad, &[("authorization", "Bearer VIEWER")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["error"]["json"]["code"], -32003);

    // Enough role: decoding happens, with issues on failure.
    let r = get_with(&app, &bad, &[("authorization", "Bearer OPERATOR")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let issues = &r.json()["error"]["json"]["data"]["issues"];
    assert!(issues.is_array(), "{}", r.body);
    for role in ["OPERATOR", "ADMIN"] {
        let r = get_with(&app, &good, &[("authorization", &format!("Bearer {role}"))]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.json(),
            json!({"result": {"data": {"json": format!("{role}:x")}}})
        );
    }
    let r = get_with(&app, "/trpc/whoami", &[("authorization", "Bearer VIEWER")]).await;
    assert_eq!(r.body, r#"{"result":{"data":{"json":"VIEWER"}}}"#);
    let r = get(&app, "/trpc/whoami").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn panics_become_500_and_the_server_keeps_answering() {
    let app = app();
    let r = get(&app, "/trpc/panics").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        r.body,
        error_body(
            "Internal server error",
            ErrorCode::InternalServerError,
            Some("panics")
        )
    );
    let r = get(&app, "/trpc/panics,hello?batch=1&input=%7B%7D").await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    assert_eq!(r.json()[1], json!({"result": {"data": {"json": "hi"}}}));
    let r = get(&app, "/trpc/hello").await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn timeout_is_a_trpc_error() {
    let app = app_with(TrpcConfig {
        request_timeout: std::time::Duration::from_millis(20),
        ..TrpcConfig::default()
    });
    let r = get(&app, "/trpc/slow").await;
    assert_eq!(r.status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(r.json()["error"]["json"]["data"]["code"], "TIMEOUT");
    assert_eq!(r.json()["error"]["json"]["code"], -32008);
    assert_json_headers(&r);
}

#[tokio::test]
async fn connection_params_are_checked() {
    let app = app();
    let r = get(&app, "/trpc/hello?connectionParams=%7Bx").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body,
        r#"{"error":{"json":{"message":"Not JSON-parsable query params","code":-32700,"data":{"code":"PARSE_ERROR","httpStatus":400}}}}"#
    );
    let r = get(&app, "/trpc/hello?connectionParams=%7B%22a%22%3A1%7D").await;
    assert_eq!(
        r.json()["error"]["json"]["message"],
        "Invalid connection params shape"
    );
    let r = get(&app, "/trpc/hello?connectionParams=%7B%22a%22%3A%22b%22%7D").await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn a_stalled_body_is_a_request_level_timeout() {
    let app = app_with(TrpcConfig {
        request_timeout: std::time::Duration::from_millis(20),
        ..TrpcConfig::default()
    });
    let stalled = futures::stream::pending::<Result<bytes::Bytes, std::io::Error>>();
    let req = build(
        request("POST", "/trpc/add").header("content-type", "application/json"),
        Body::from_stream(stalled),
    );
    let r = send(&app, req).await;
    assert_eq!(r.status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(
        r.body,
        r#"{"error":{"json":{"message":"Request timed out","code":-32008,"data":{"code":"TIMEOUT","httpStatus":408}}}}"#
    );
}
