//! The operational surface of `server::app`: probes, metrics, request ids
//! and CORS.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use common::*;
use gatehouse::http::{CorsOrigins, TrpcConfig};
use http::StatusCode;

#[tokio::test]
async fn healthz() {
    let r = get(&app(), "/healthz").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, r#"{"status":"ok"}"#);
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn readyz_follows_the_service() {
    let service = Arc::new(TestService::default());
    let app = app_with_service(TrpcConfig::default(), service.clone());
    let r = get(&app, "/readyz").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, r#"{"status":"ok"}"#);
    service.not_ready.store(true, Ordering::SeqCst);
    let r = get(&app, "/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body, r#"{"status":"unavailable"}"#);
    // Liveness does not depend on readiness.
    assert_eq!(get(&app, "/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_calls_by_procedure_and_code() {
    let app = app();
    assert_eq!(get(&app, "/trpc/hello").await.status, StatusCode::OK);
    assert_eq!(get(&app, "/trpc/fail").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&app, "/trpc/whatever").await.status,
        StatusCode::NOT_FOUND
    );
    let r = get(&app, "/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain"))
    );
    let lines: Vec<&str> = r.body.lines().collect();
    let has = |metric: &str, labels: &[&str]| {
        lines
            .iter()
            .any(|l| l.starts_with(metric) && labels.iter().all(|lbl| l.contains(lbl)))
    };
    assert!(
        has(
            "gatehouse_requests_total{",
            &["procedure=\"hello\"", "code=\"OK\""]
        ),
        "{}",
        r.body
    );
    assert!(has(
        "gatehouse_requests_total{",
        &["procedure=\"fail\"", "code=\"NOT_FOUND\""]
    ));
    assert!(has(
        "gatehouse_requests_total{",
        &["procedure=\"<unknown>\""]
    ));
    assert!(!r.body.contains("whatever"), "unknown paths are not labels");
    assert!(has(
        "gatehouse_request_duration_seconds_bucket{",
        &["procedure=\"hello\"", "le=\""]
    ));
}

/// Histogram samples are kept until upkeep folds them into buckets, so a
/// server that nobody scrapes must still run upkeep, or it grows with every
/// call it serves.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn metrics_upkeep_runs_without_scrapes() {
    let _app = app();
    let names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n == gatehouse::server::METRICS_UPKEEP_THREAD),
        "no upkeep thread among {names:?}"
    );
}

#[tokio::test]
async fn request_ids_are_set_and_propagated() {
    let app = app();
    let r = get(&app, "/trpc/hello").await;
    let id = r.header("x-request-id").unwrap_or_default();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id:?}");
    let r = get_with(&app, "/trpc/fail", &[("x-request-id", "abc-123")]).await;
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    let r = get(&app, "/healthz").await;
    assert!(r.header("x-request-id").is_some());
}

/// A client's `x-request-id` is written into every log line of its request
/// and echoed back, so only a short id of a safe charset is kept; anything
/// else (log syntax, control or non-ASCII bytes, a huge id, two ids) is
/// replaced by a generated one, and the response carries the id used.
#[tokio::test]
async fn only_short_safe_request_ids_are_kept() {
    let app = app();
    let echoed = |value: &[u8]| {
        let app = app.clone();
        let value = http::HeaderValue::from_bytes(value).expect("a valid header value");
        async move {
            let req = build(
                request("GET", "/trpc/hello").header("x-request-id", value),
                Body::empty(),
            );
            send(&app, req)
                .await
                .header("x-request-id")
                .unwrap_or_default()
                .to_owned()
        }
    };
    let longest = "a".repeat(gatehouse::server::MAX_REQUEST_ID_LEN);
    for good in [
        "abc-123",
        "0af7651916cd43dd8448eb211c80319c",
        "01HZY3J5W6Q8X9V2KDTM4N7P0R",
        "edge:host-7.eu_1:42",
        longest.as_str(),
    ] {
        assert_eq!(echoed(good.as_bytes()).await, good, "kept");
    }
    let huge = "a".repeat(60 * 1024);
    let too_long = "a".repeat(gatehouse::server::MAX_REQUEST_ID_LEN + 1);
    for bad in [
        &b"x1 event=\"login.success\" user_id=\"forged\""[..],
        b"a=b",
        b"with space",
        b"tab\there",
        b"quote\"",
        b"brace}",
        b"caf\xc3\xa9",
        b"",
        too_long.as_bytes(),
        huge.as_bytes(),
    ] {
        let id = echoed(bad).await;
        assert!(
            uuid::Uuid::parse_str(&id).is_ok(),
            "{:?} replaced by a generated id, got {:?}",
            String::from_utf8_lossy(&bad[..bad.len().min(60)]),
            &id[..id.len().min(60)]
        );
    }
    // Two ids: neither is chosen.
    let req = build(
        request("GET", "/trpc/hello")
            .header("x-request-id", "one")
            .header("x-request-id", "two"),
        Body::empty(),
    );
    let id = send(&app, req).await;
    let id = id.header("x-request-id").unwrap_or_default();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id:?}");
}

#[tokio::test]
async fn cors_preflight_and_exposed_headers() {
    let app = app_with(TrpcConfig {
        cors_origins: CorsOrigins::List(vec!["https://app.example".to_owned()]),
        ..TrpcConfig::default()
    });
    let preflight = |origin: &str| {
        build(
            request("OPTIONS", "/trpc/auth.login")
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "content-type,authorization,trpc-accept",
                ),
            Body::empty(),
        )
    };
    let r = send(&app, preflight("https://app.example")).await;
    assert!(r.status.is_success(), "{}", r.status);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let methods = r.header("access-control-allow-methods").unwrap_or_default();
    for m in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        assert!(methods.contains(m), "{methods}");
    }
    let headers = r
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for h in [
        "authorization",
        "content-type",
        "trpc-accept",
        "trpc-batch-mode",
    ] {
        assert!(headers.contains(h), "{headers}");
    }

    // Another origin gets no grant.
    let r = send(&app, preflight("https://evil.example")).await;
    assert!(r.header("access-control-allow-origin").is_none());

    // Actual responses carry the grant and expose Retry-After.
    let r = post_with(
        &app,
        "/trpc/limited",
        UNDEF,
        &[("origin", "https://app.example")],
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let exposed = r
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(exposed.contains("retry-after"), "{exposed}");
}

#[tokio::test]
async fn cors_any_origin() {
    let app = app_with(TrpcConfig {
        cors_origins: CorsOrigins::Any,
        ..TrpcConfig::default()
    });
    let r = get_with(&app, "/trpc/hello", &[("origin", "https://x.example")]).await;
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    // CORS adds its own `vary` values without dropping tRPC's.
    let vary: Vec<&str> = r
        .headers
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(vary.contains(&"trpc-accept, accept"), "{vary:?}");
}

#[test]
fn cors_origins_parse() {
    let parse = |s: &str| s.parse::<CorsOrigins>();
    assert_eq!(parse(""), Ok(CorsOrigins::None));
    assert_eq!(parse(" , "), Ok(CorsOrigins::None));
    assert_eq!(parse(" * "), Ok(CorsOrigins::Any));
    assert_eq!(
        parse("https://a.example, https://b.example/"),
        Ok(CorsOrigins::List(vec![
            "https://a.example".to_owned(),
            "https://b.example".to_owned()
        ]))
    );
    for bad in [
        "app.example",
        "https://a.example/x?y",
        "https://a.example, *",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        parse("ftp://a.example")
            .expect_err("not http(s)")
            .to_string(),
        "\"ftp://a.example\" is not an origin like https://app.example.com"
    );
}

/// An app's own routes sit beside the framework's, behind the same layers
/// (request ids here), and the framework's routes still answer.
#[tokio::test]
async fn extra_routes_are_served_behind_the_same_layers() {
    let registry = router().build().expect("router");
    let extra = axum::Router::new().route(
        "/.well-known/example.json",
        axum::routing::get(|| async { "{\"extra\":true}" }),
    );
    let app = gatehouse::server::app_with_routes(
        registry,
        Arc::new(TestService::default()),
        TrpcConfig::default(),
        extra,
    );
    let r = get(&app, "/.well-known/example.json").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, r#"{"extra":true}"#);
    assert!(r.header("x-request-id").is_some(), "{:?}", r.headers);
    assert_eq!(get(&app, "/healthz").await.status, StatusCode::OK);
}
