//! Random requests against the adapter: whatever arrives, the answer is a
//! well-formed tRPC response (never a 500, never a non-JSON body) and the
//! batch status rule holds.

mod common;

use axum::body::Body;
use common::*;
use http::StatusCode;
use serde_json::Value;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const PATHS: [&str; 12] = [
    "hello", "greet", "add", "noop", "fail", "secret", "echo", "opt", "whoami", "nope", "", "a%2Eb",
];
const INPUTS: [&str; 14] = [
    r#"{"json":null,"meta":{"values":["undefined"],"v":1}}"#,
    r#"{"json":{"name":"A"}}"#,
    r#"{"json":{"a":1,"b":2}}"#,
    r#"{"json":{"code":"x"}}"#,
    r#"{"json":1,"meta":{"values":["nope"],"v":1}}"#,
    r#"{"json":{"a.b":"1"},"meta":{"values":{"a\\.b":["bigint"],"x\\y":["Date"]},"v":1}}"#,
    r#"{"0":{"json":{"name":"B"}},"1":{"json":{"a":1,"b":1}}}"#,
    r#"{"5":{}}"#,
    "[1]",
    "null",
    "{bad",
    "",
    "\"str\"",
    r#"{"json":{"name":"\u00e9\n"}}"#,
];

/// Checks one error shape; returns its httpStatus.
fn check_error(shape: &Value, body: &str) -> u16 {
    let json = &shape["json"];
    assert!(json["message"].is_string(), "{body}");
    assert!(json["code"].is_i64(), "{body}");
    let status = json["data"]["httpStatus"].as_u64().unwrap_or_default() as u16;
    assert!((400..600).contains(&status), "{body}");
    assert!(json["data"]["code"].is_string(), "{body}");
    let keys: Vec<&String> = json
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["message", "code", "data"], "{body}");
    status
}

#[tokio::test]
async fn random_requests_get_well_formed_answers() {
    let app = app();
    let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
    for _ in 0..3_000 {
        let n = 1 + rng.below(3);
        let paths: Vec<&str> = (0..n).map(|_| rng.pick(&PATHS)).collect();
        let batch = rng.below(3) != 0;
        let method = rng.pick(&["GET", "GET", "POST", "PUT"]);
        let input = rng.pick(&INPUTS);
        let mut uri = format!("/trpc/{}", paths.join(","));
        let mut query = Vec::new();
        if batch {
            query.push("batch=1".to_owned());
        }
        let mut body = String::new();
        if method == "GET" {
            if rng.below(4) != 0 {
                query.push(format!("input={}", enc(input)));
            }
        } else {
            body = input.to_owned();
        }
        if !query.is_empty() {
            uri = format!("{uri}?{}", query.join("&"));
        }
        let mut builder = request(method, &uri);
        if method != "GET" || rng.below(4) == 0 {
            builder = builder.header(
                "content-type",
                rng.pick(&[
                    "application/json",
                    "application/json; charset=utf-8",
                    "text/plain",
                ]),
            );
        }
        if rng.below(3) == 0 {
            builder = builder.header(
                "authorization",
                rng.pick(&["Bearer VIEWER", "Bearer ADMIN", "Bearer junk", "Basic x"]),
            );
        }
        let jsonl = batch && rng.below(4) == 0;
        if jsonl {
            builder = builder.header("trpc-accept", "application/jsonl");
        }
        let r = send(&app, build(builder, Body::from(body))).await;
        let ctx = format!("{method} {uri}: {} {}", r.status, r.body);
        assert_ne!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{ctx}");
        assert_eq!(r.header("content-type"), Some("application/json"), "{ctx}");
        if jsonl && r.status == StatusCode::OK {
            for line in r.body.lines() {
                let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {ctx}"));
                assert!(v.get("json").is_some(), "{ctx}");
            }
            continue;
        }
        let v = r.json();
        match &v {
            Value::Array(items) => {
                assert!(batch, "{ctx}");
                assert_eq!(items.len(), n, "{ctx}");
                let mut statuses = std::collections::BTreeSet::new();
                for item in items {
                    if let Some(error) = item.get("error") {
                        statuses.insert(check_error(error, &ctx));
                    } else {
                        assert!(item["result"].is_object(), "{ctx}");
                        statuses.insert(200);
                    }
                }
                let expected = if statuses.len() == 1 {
                    statuses.first().copied().unwrap_or_default()
                } else {
                    207
                };
                assert_eq!(r.status.as_u16(), expected, "{ctx}");
            }
            Value::Object(o) if o.contains_key("error") => {
                let status = check_error(&v["error"], &ctx);
                assert_eq!(r.status.as_u16(), status, "{ctx}");
            }
            Value::Object(o) if o.contains_key("result") => {
                assert!(!batch, "{ctx}");
                assert_eq!(r.status, StatusCode::OK, "{ctx}");
                assert!(v["result"]["data"].get("json").is_some(), "{ctx}");
            }
            _ => panic!("not a tRPC response: {ctx}"),
        }
    }
}
