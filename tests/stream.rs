//! Streaming batches: v11 JSONL (`httpBatchStreamLink`) and the v10
//! `trpc-batch-mode: stream` object, both in completion order.

mod common;

use std::collections::HashMap;

use common::*;
use http::StatusCode;
use serde_json::{Value, json};

const JSONL: (&str, &str) = ("trpc-accept", "application/jsonl");

/// Parses the JSONL body the way `@trpc/client` does: the head first, then
/// chunk lines routed by id. Returns the head, the final value of every
/// call (following the `call → {result} → {data}` promise chain) and the
/// order in which the calls' top-level chunks arrived.
fn decode_jsonl(body: &str) -> (Value, Vec<Value>, Vec<usize>) {
    assert!(body.ends_with('\n'), "lines are newline-terminated");
    let mut lines = body.lines().map(|l| {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("not an envelope: {l}"));
        assert!(obj.contains_key("json") && !obj.contains_key("meta"), "{l}");
        v["json"].clone()
    });
    let head = lines.next().unwrap_or_else(|| panic!("no head"));
    let mut chunks: HashMap<u64, Value> = HashMap::new();
    let mut arrival = Vec::new();
    let n = head.as_object().map_or(0, |o| o.len());
    for chunk in lines {
        let id = chunk[0]
            .as_u64()
            .unwrap_or_else(|| panic!("chunk id: {chunk}"));
        assert_eq!(chunk[1], 0, "promise fulfilled: {chunk}");
        if (id as usize) < n {
            arrival.push(id as usize);
        }
        assert!(chunks.insert(id, chunk[2].clone()).is_none(), "id reused");
    }
    let results = (0..n)
        .map(|i| resolve(&json!([[0], [null, 0, i]]), &chunks))
        .collect();
    (head, results, arrival)
}

/// Follows an encoded value's chunk definitions (`[key|null, 0, id]`) to
/// the final value, as the client's promise resolution does.
fn resolve(enc: &Value, chunks: &HashMap<u64, Value>) -> Value {
    let mut value = enc[0].get(0).cloned().unwrap_or(Value::Null);
    for def in enc.as_array().map(|a| &a[1..]).unwrap_or_default() {
        let id = def[2].as_u64().unwrap_or(u64::MAX);
        let chunk = chunks
            .get(&id)
            .unwrap_or_else(|| panic!("missing chunk {def}"));
        let child = resolve(chunk, chunks);
        match def[0].as_str() {
            None => return child,
            Some(key) => value[key] = child,
        }
    }
    value
}

#[tokio::test]
async fn jsonl_head_results_and_completion_order() {
    let app = app();
    let input = enc(r#"{"1":{"json":{"name":"S"}}}"#);
    let r = get_with(
        &app,
        &format!("/trpc/slow,greet,fail?batch=1&input={input}"),
        &[JSONL],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("vary"), Some("trpc-accept, accept"));

    let first = r.body.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        r#"{"json":{"0":[[0],[null,0,0]],"1":[[0],[null,0,1]],"2":[[0],[null,0,2]]}}"#
    );
    let (_, results, arrival) = decode_jsonl(&r.body);
    assert_eq!(
        results[0],
        json!({"result": {"data": "slow"}}),
        "{}",
        r.body
    );
    assert_eq!(results[1], json!({"result": {"data": {"msg": "hello S"}}}));
    assert_eq!(
        results[2],
        json!({"error": {"message": "nope", "code": -32004, "data": {"code": "NOT_FOUND", "httpStatus": 404, "path": "fail"}}})
    );
    // `slow` finishes last, so its chunks come last.
    assert_eq!(arrival.len(), 3);
    assert_eq!(arrival[2], 0, "{}", r.body);
    let last_three: Vec<&str> = r.body.lines().rev().take(3).collect();
    assert_eq!(last_three[0], r#"{"json":[6,0,[["slow"]]]}"#);
    assert_eq!(
        last_three[1],
        r#"{"json":[5,0,[[{"data":0}],["data",0,6]]]}"#
    );
    assert_eq!(
        last_three[2],
        r#"{"json":[0,0,[[{"result":0}],["result",0,5]]]}"#
    );
    // A failed call is one fulfilled line with the error item.
    assert!(r.body.lines().any(|l| l
        == r#"{"json":[2,0,[[{"error":{"message":"nope","code":-32004,"data":{"code":"NOT_FOUND","httpStatus":404,"path":"fail"}}}]]]}"#));
}

#[tokio::test]
async fn jsonl_via_accept_header_and_mutations() {
    let app = app();
    let r = post_with(
        &app,
        "/trpc/add,noop?batch=1",
        r#"{"0":{"json":{"a":2,"b":3}}}"#,
        &[("accept", "text/html, application/jsonl")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let (head, results, _) = decode_jsonl(&r.body);
    assert_eq!(
        head,
        json!({"0": [[0], [null, 0, 0]], "1": [[0], [null, 0, 1]]})
    );
    assert_eq!(results[0], json!({"result": {"data": 5}}));
    assert!(
        r.body.lines().any(|l| l.ends_with(",0,[[]]]}")),
        "void data is the empty encoding: {}",
        r.body
    );
}

#[tokio::test]
async fn jsonl_errors_stay_in_the_stream() {
    let app = app();
    let r = get_with(&app, "/trpc/nope,add?batch=1&input=%7B%7D", &[JSONL]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("allow"), Some("POST"));
    let (_, results, _) = decode_jsonl(&r.body);
    assert_eq!(results[0]["error"]["data"]["code"], "NOT_FOUND");
    assert_eq!(results[0]["error"]["data"]["path"], "nope");
    assert_eq!(results[1]["error"]["data"]["httpStatus"], 405);
    assert_eq!(
        results[1]["error"]["message"],
        "Unsupported GET-request to mutation procedure at path \"add\""
    );
    let r = get_with(&app, "/trpc/panics,hello?batch=1&input=%7B%7D", &[JSONL]).await;
    assert_eq!(r.status, StatusCode::OK);
    let (_, results, _) = decode_jsonl(&r.body);
    assert_eq!(results[0]["error"]["data"]["code"], "INTERNAL_SERVER_ERROR");
    assert_eq!(results[1], json!({"result": {"data": "hi"}}));
}

#[tokio::test]
async fn streaming_requires_a_batch() {
    let app = app();
    let r = get_with(&app, "/trpc/hello", &[JSONL]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body,
        r#"{"error":{"json":{"message":"Streaming requests must be batched (you can do a batch of 1)","code":-32600,"data":{"code":"BAD_REQUEST","httpStatus":400}}}}"#
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    // `accept` must list the exact item; a near miss is a plain response.
    let r = get_with(
        &app,
        "/trpc/hello?batch=1&input=%7B%7D",
        &[("accept", "application/jsonlines")],
    )
    .await;
    assert_eq!(r.body, r#"[{"result":{"data":{"json":"hi"}}}]"#);
}

#[tokio::test]
async fn v10_stream_mode() {
    let app = app();
    let r = get_with(
        &app,
        "/trpc/slow,hello?batch=1&input=%7B%7D",
        &[("trpc-batch-mode", "stream")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body,
        "{\"1\":{\"result\":{\"data\":{\"json\":\"hi\"}}}\n,\"0\":{\"result\":{\"data\":{\"json\":\"slow\"}}}\n}"
    );
    assert!(
        r.header("vary")
            .is_some_and(|v| v.contains("trpc-batch-mode"))
    );
}
