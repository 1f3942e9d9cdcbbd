//! The upper bound for `bench/run`: a bare axum 0.8 route that answers
//! `GET /trpc/auth.me` with a fixed body shaped like Gatehouse's answer, on
//! the same tokio runtime settings as the `gatehouse` binary
//! (`#[tokio::main]`, multi-threaded, one worker per allowed core). Whatever
//! Gatehouse spends above this is framework, auth and database work.
//!
//! Env: `GATEHOUSE_ADDR` (default `127.0.0.1:0`). Prints
//! `bench-baseline listening on http://ip:port` on stdout once bound.

use axum::Router;
use axum::http::header;
use axum::routing::get;
use axum::serve::ListenerExt;

/// Same bytes a real `auth.me` returns for a seeded user, so response size
/// and header count match the Gatehouse scenario.
const ME_BODY: &str = r#"{"result":{"data":{"json":{"id":"0193a4f2-7b1c-7d3e-9a2b-4c5d6e7f8a9b","email":"bench-user-0@example.com","firstName":"Bench","lastName":"User0","role":"VIEWER","phone":null,"createdAt":"2026-11-22T04:00:00.000000Z","updatedAt":"2026-11-22T04:00:00.000000Z"}}}}"#;

async fn me() -> impl axum::response::IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::VARY, "trpc-accept, accept"),
        ],
        ME_BODY,
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::var("GATEHOUSE_ADDR").unwrap_or_else(|_| "127.0.0.1:0".to_owned());
    let app = Router::new()
        .route("/trpc/auth.me", get(me))
        .route("/readyz", get(|| async { "ok" }))
        .route("/healthz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "bench-baseline listening on http://{}",
        listener.local_addr()?
    );
    // Same socket option as `gatehouse::server::serve`.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}
