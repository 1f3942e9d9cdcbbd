//! Inputs in the superjson envelope, decoded through the HTTP adapter.

mod common;

use common::*;
use http::StatusCode;
use serde_json::{Value, json};

async fn echo(input: &str) -> Resp {
    get(&app(), &format!("/trpc/echo?input={}", enc(input))).await
}

async fn echo_ok(input: &str) -> Value {
    let r = echo(input).await;
    assert_eq!(r.status, StatusCode::OK, "{input}: {}", r.body);
    r.json()["result"]["data"]["json"].clone()
}

#[tokio::test]
async fn special_values_become_plain_json() {
    let v = echo_ok(
        r#"{"json":{"d":"1970-01-01T00:00:00.000Z","n":"10","big":"123456789012345678901234567890","x":"NaN","z":"-0","s":[1,2],"r":"/ab.c/gi","u":"https://a.example/","e":{"name":"Error","message":"inner"},"t":[1,2,3]},"meta":{"values":{"d":["Date"],"n":["bigint"],"big":["bigint"],"x":["number"],"z":["number"],"s":["set"],"r":["regexp"],"u":["URL"],"e":["Error"],"t":[["typed-array","Uint8Array"]]},"v":1}}"#,
    )
    .await;
    assert_eq!(v["d"], "1970-01-01T00:00:00.000Z");
    assert_eq!(v["n"], 10);
    assert_eq!(v["big"], "123456789012345678901234567890");
    assert_eq!(v["x"], Value::Null);
    assert_eq!(v["z"].as_f64(), Some(0.0));
    assert_eq!(v["s"], json!([1, 2]));
    assert_eq!(v["r"], "/ab.c/gi");
    assert_eq!(v["u"], "https://a.example/");
    assert_eq!(v["e"], json!({"name": "Error", "message": "inner"}));
    assert_eq!(v["t"], json!([1, 2, 3]));
}

#[tokio::test]
async fn maps_and_nested_trees() {
    // Map([[{k:1n}, Set([Date])]]) from the spec: non-string keys stay pairs.
    let v = echo_ok(
        r#"{"json":[[{"k":"1"},["1970-01-01T00:00:00.000Z"]]],"meta":{"values":["map",{"0.1":["set",{"0":["Date"]}],"0.0.k":["bigint"]}],"v":1}}"#,
    )
    .await;
    assert_eq!(v, json!([[{"k": 1}, ["1970-01-01T00:00:00.000Z"]]]));
    // String keys become an object.
    let v = echo_ok(
        r#"{"json":{"m":[["a","1"],["b","2"]]},"meta":{"values":{"m":["map",{"0.1":["bigint"],"1.1":["bigint"]}]},"v":1}}"#,
    )
    .await;
    assert_eq!(v, json!({"m": {"a": 1, "b": 2}}));
}

#[tokio::test]
async fn undefined_in_objects_arrays_and_at_the_root() {
    for meta in [
        r#""meta":{"values":{"name":["undefined"]},"v":1}"#,
        r#""meta":{"values":{"name":["undefined"]}}"#,
    ] {
        let input = format!(r#"{{"json":{{"name":null}},{meta}}}"#);
        let r = get(&app(), &format!("/trpc/opt?input={}", enc(&input))).await;
        assert_eq!(r.body, r#"{"result":{"data":{"json":"<none>"}}}"#, "{meta}");
    }
    let v = echo_ok(r#"{"json":{"a":[1,null],"b":null},"meta":{"values":{"a.1":["undefined"],"b":["undefined"]},"v":1}}"#).await;
    assert_eq!(v, json!({"a": [1, null]}));
    // Root undefined to a procedure needing an object: a validation error.
    let r = get(&app(), &format!("/trpc/greet?input={}", enc(UNDEF))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["json"]["data"]["path"], "greet");
    // No `json` key means undefined too.
    let r = get(
        &app(),
        &format!("/trpc/greet?input={}", enc(r#"{"name":"a"}"#)),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn escaped_paths_v1_and_legacy() {
    let v = echo_ok(r#"{"json":{"x.y":"1","a\\b":"2"},"meta":{"values":{"x\\.y":["bigint"],"a\\\\b":["bigint"]},"v":1}}"#).await;
    assert_eq!(v, json!({"x.y": 1, "a\\b": 2}));
    // Legacy (no `v`): only `\.` is an escape, a lone backslash is literal.
    let v = echo_ok(
        r#"{"json":{"x.y":"1","a\\b":"2"},"meta":{"values":{"x\\.y":["bigint"],"a\\b":["bigint"]}}}"#,
    )
    .await;
    assert_eq!(v, json!({"x.y": 1, "a\\b": 2}));
    // v1: any other escape is invalid.
    let r = echo(r#"{"json":{"ab":"2"},"meta":{"values":{"a\\b":["bigint"]},"v":1}}"#).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["json"]["message"], "invalid path");
    assert_eq!(r.json()["error"]["json"]["data"]["path"], "echo");
}

#[tokio::test]
async fn unknown_transformations_are_bad_requests() {
    let r = echo(r#"{"json":1,"meta":{"values":["nope"],"v":1}}"#).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body,
        r#"{"error":{"json":{"message":"Unknown transformation: nope","code":-32600,"data":{"code":"BAD_REQUEST","httpStatus":400,"path":"echo"}}}}"#
    );
    let r = echo(r#"{"json":{},"meta":{"values":{"a":[["class","Foo"]]},"v":1}}"#).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn referential_equalities_and_junk_metas_are_harmless() {
    let v = echo_ok(
        r#"{"json":{"a":{"x":1},"b":{"x":1}},"meta":{"referentialEqualities":{"a":["b"]},"v":1}}"#,
    )
    .await;
    assert_eq!(v, json!({"a": {"x": 1}, "b": {"x": 1}}));
    for input in [
        r#"{"json":[1],"meta":{"values":{"7.3.1":["Date"]},"v":1}}"#,
        r#"{"json":[1],"meta":{"values":{"0.a":["undefined"]},"v":1}}"#,
        r#"{"json":[1],"meta":"x"}"#,
        r#"{"json":[1],"meta":{"values":7}}"#,
    ] {
        let r = echo(input).await;
        assert_eq!(r.status, StatusCode::OK, "{input}: {}", r.body);
        assert_eq!(r.json()["result"]["data"]["json"], json!([1]), "{input}");
    }
    // An empty annotation is superjson's `undefined` rule (JavaScript looks
    // up the rule named `String(undefined)`).
    let r = echo(r#"{"json":[1],"meta":{"values":[]}}"#).await;
    assert_eq!(r.body, r#"{"result":{"data":{"json":null}}}"#);
}
