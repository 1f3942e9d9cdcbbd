//! Random requests for the adapter, shared by the property test
//! (`adapter_props.rs`: structured requests, exact batch rules) and the
//! fuzz target (`fuzz_requests.rs`: the same requests, then mangled byte by
//! byte).

use axum::body::Body;
use http::StatusCode;
use serde_json::Value;

use super::{Resp, build, enc, request};

pub use super::rng::Rng;

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

/// One request, in parts that can be mangled before it is built.
#[derive(Debug, Clone)]
pub struct RandomRequest {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// What the unmangled request asked for: a batch of `calls`, streamed.
    pub batch: bool,
    pub calls: usize,
    pub jsonl: bool,
}

impl RandomRequest {
    /// A well-formed request of the kinds a client sends, with random
    /// paths, inputs, methods and headers.
    pub fn generate(rng: &mut Rng) -> Self {
        let calls = 1 + rng.below(3);
        let paths: Vec<&str> = (0..calls).map(|_| rng.pick(&PATHS)).collect();
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
        let mut headers = Vec::new();
        if method != "GET" || rng.below(4) == 0 {
            let ct = rng.pick(&[
                "application/json",
                "application/json; charset=utf-8",
                "text/plain",
            ]);
            headers.push(("content-type".to_owned(), ct.as_bytes().to_vec()));
        }
        if rng.below(3) == 0 {
            let auth = rng.pick(&["Bearer VIEWER", "Bearer ADMIN", "Bearer junk", "Basic x"]);
            headers.push(("authorization".to_owned(), auth.as_bytes().to_vec()));
        }
        let jsonl = batch && rng.below(4) == 0;
        if jsonl {
            headers.push(("trpc-accept".to_owned(), b"application/jsonl".to_vec()));
        }
        Self {
            method: method.to_owned(),
            uri,
            headers,
            body: body.into_bytes(),
            batch,
            calls,
            jsonl,
        }
    }

    /// Mangles one part: bytes flipped, inserted, removed or repeated in the
    /// URI, a header value or the body, or a header added.
    pub fn mutate(&mut self, rng: &mut Rng) {
        const SPICE: [&str; 16] = [
            "%",
            "%zz",
            "%C3%28",
            ",",
            ",,",
            "?",
            "&",
            "=",
            "batch=1&",
            "input=",
            "\u{e9}",
            "\u{1F600}",
            "[",
            "{\"json\":",
            "99999999999999999999999",
            "\\u0000",
        ];
        let target = rng.below(4);
        let bytes: &mut Vec<u8> = match target {
            0 => {
                let mut uri = std::mem::take(&mut self.uri).into_bytes();
                mangle(rng, &mut uri, &SPICE);
                self.uri = String::from_utf8_lossy(&uri).into_owned();
                return;
            }
            1 if !self.headers.is_empty() => {
                let i = rng.below(self.headers.len());
                &mut self.headers[i].1
            }
            2 => {
                let name = rng.pick(&[
                    "content-type",
                    "trpc-accept",
                    "trpc-batch-mode",
                    "authorization",
                    "accept-language",
                    "x-request-id",
                ]);
                self.headers.push((name.to_owned(), Vec::new()));
                let last = self.headers.len() - 1;
                &mut self.headers[last].1
            }
            _ => &mut self.body,
        };
        mangle(rng, bytes, &SPICE);
        if target == 3 && rng.below(8) == 0 {
            // Deep nesting or a long string.
            let depth = 1 + rng.below(5_000);
            self.body =
                format!("{}{}", "[".repeat(depth), "]".repeat(rng.below(depth + 1))).into_bytes();
        }
    }

    /// The request, or `None` when the `http` crate refuses its parts (then
    /// no HTTP server would hand it to the adapter either).
    pub fn build(&self) -> Option<http::Request<Body>> {
        let mut builder = request(&self.method, &self.uri);
        for (name, value) in &self.headers {
            let value = http::HeaderValue::from_bytes(value).ok()?;
            builder = builder.header(name.as_str(), value);
        }
        // Validate first: `build` panics on invalid parts.
        let probe = http::Request::builder()
            .method(self.method.as_str())
            .uri(self.uri.as_str())
            .body(())
            .ok()?;
        drop(probe);
        Some(build(builder, Body::from(self.body.clone())))
    }
}

fn mangle(rng: &mut Rng, bytes: &mut Vec<u8>, spice: &[&str]) {
    for _ in 0..1 + rng.below(4) {
        let at = if bytes.is_empty() {
            0
        } else {
            rng.below(bytes.len() + 1)
        };
        match rng.below(5) {
            0 if at < bytes.len() => bytes[at] = rng.next() as u8,
            1 => bytes.insert(at, rng.next() as u8),
            2 if at < bytes.len() => {
                let end = (at + 1 + rng.below(8)).min(bytes.len());
                bytes.drain(at..end);
            }
            3 => {
                let s = rng.pick(spice);
                bytes.splice(at..at, s.bytes());
            }
            _ => {
                let len = bytes.len().min(64);
                let copy: Vec<u8> = bytes[..len].to_vec();
                bytes.splice(at..at, copy);
            }
        }
    }
}

/// Checks one error shape; returns its httpStatus.
pub fn check_error(shape: &Value, ctx: &str) -> u16 {
    let json = &shape["json"];
    assert!(json["message"].is_string(), "{ctx}");
    assert!(json["code"].is_i64(), "{ctx}");
    let status = json["data"]["httpStatus"].as_u64().unwrap_or_default() as u16;
    assert!((400..600).contains(&status), "{ctx}");
    assert!(json["data"]["code"].is_string(), "{ctx}");
    let keys: Vec<&String> = json
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["message", "code", "data"], "{ctx}");
    status
}

/// Asserts that `r` is a well-formed tRPC answer to `req`: never a 500,
/// always JSON; a batch array with the status rule, a single item, a JSONL
/// stream, or the empty 204 of a HEAD. `exact` also holds the answer to the
/// shape the unmangled request asked for.
pub fn check_answer(req: &RandomRequest, r: &Resp, exact: bool) {
    let ctx = format!("{} {}: {} {}", req.method, req.uri, r.status, r.body);
    assert_ne!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{ctx}");
    // HEAD is answered with an empty 204; outside `/trpc` (a mangled path)
    // the other routes answer as they do (e.g. axum's empty 404).
    let path = req.uri.split('?').next().unwrap_or_default();
    if req.method == "HEAD" || !(path == "/trpc" || path.starts_with("/trpc/")) {
        return;
    }
    assert_eq!(r.header("content-type"), Some("application/json"), "{ctx}");
    // v10's `trpc-batch-mode: stream` answer is one JSON object written in
    // pieces (`{"0":…\n,"1":…\n}`).
    let v10_stream = req
        .headers
        .iter()
        .any(|(k, v)| k == "trpc-batch-mode" && v.as_slice() == b"stream");
    if r.status == StatusCode::OK && v10_stream {
        let v: Value =
            serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {ctx}"));
        assert!(v.is_object(), "{ctx}");
        return;
    }
    let streamed = r.header("transfer-encoding").is_some() || r.body.contains('\n');
    if r.status == StatusCode::OK && streamed && (!exact || req.jsonl) {
        for line in r.body.lines().filter(|l| !l.is_empty()) {
            let _: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {ctx}"));
        }
        return;
    }
    let v: Value =
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {ctx}"));
    match &v {
        Value::Array(items) => {
            if exact {
                assert!(req.batch, "{ctx}");
                assert_eq!(items.len(), req.calls, "{ctx}");
            }
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
            if exact {
                assert!(!req.batch, "{ctx}");
            }
            assert_eq!(r.status, StatusCode::OK, "{ctx}");
            assert!(v["result"]["data"].get("json").is_some(), "{ctx}");
        }
        _ => panic!("not a tRPC response: {ctx}"),
    }
}
