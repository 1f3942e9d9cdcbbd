//! Over a real TCP socket: the peer address reaches procedures, and
//! `serve_with_shutdown` lets an in-flight request finish after the signal.

mod common;

use std::sync::{Arc, LazyLock};

use common::*;
use gatehouse::http::TrpcConfig;
use gatehouse::{Ctx, Guard, Kind, NoInput, Procedure, RpcError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

static STARTED: LazyLock<Notify> = LazyLock::new(Notify::new);
static RELEASE: LazyLock<Notify> = LazyLock::new(Notify::new);

/// Signals that it is running, then waits until the test releases it.
#[derive(schemars::JsonSchema)]
struct Parked;
impl Procedure<TestService> for Parked {
    const PATH: &'static str = "parked";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Public;
    type Input = NoInput;
    type Output = String;
    type Error = RpcError;
    async fn call(_: Ctx<TestService>, _: NoInput) -> Result<String, RpcError> {
        STARTED.notify_one();
        RELEASE.notified().await;
        Ok("released".to_owned())
    }
}

/// Returns the peer address the framework saw.
#[derive(schemars::JsonSchema)]
struct Peer;
impl Procedure<TestService> for Peer {
    const PATH: &'static str = "peer";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Public;
    type Input = NoInput;
    type Output = String;
    type Error = RpcError;
    async fn call(ctx: Ctx<TestService>, _: NoInput) -> Result<String, RpcError> {
        Ok(ctx
            .request
            .peer
            .map_or_else(|| "none".to_owned(), |p| p.ip().to_string()))
    }
}

fn tcp_app() -> axum::Router {
    let registry = match router().procedure::<Parked>().procedure::<Peer>().build() {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    gatehouse::server::app(
        registry,
        Arc::new(TestService::default()),
        TrpcConfig::default(),
    )
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => panic!("connect: {e}"),
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    if let Err(e) = stream.write_all(req.as_bytes()).await {
        panic!("write: {e}");
    }
    let mut out = String::new();
    if let Err(e) = stream.read_to_string(&mut out).await {
        panic!("read: {e}");
    }
    out
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("{e}"),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gatehouse::server::serve_with_shutdown(
        listener,
        tcp_app(),
        async move {
            let _ = stop_rx.await;
        },
    ));

    let peer = http_get(addr, "/trpc/peer").await;
    assert!(peer.starts_with("HTTP/1.1 200"), "{peer}");
    assert!(
        peer.ends_with(r#"{"result":{"data":{"json":"127.0.0.1"}}}"#),
        "{peer}"
    );

    let in_flight = tokio::spawn(http_get(addr, "/trpc/parked"));
    STARTED.notified().await;
    let _ = stop_tx.send(());
    // The server is draining: it must not finish while the call is parked.
    tokio::task::yield_now().await;
    assert!(!server.is_finished());
    RELEASE.notify_one();

    let response = match in_flight.await {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("x-request-id: "), "{response}");
    assert!(
        response.ends_with(r#"{"result":{"data":{"json":"released"}}}"#),
        "{response}"
    );
    match server.await {
        Ok(Ok(())) => {}
        other => panic!("server ended badly: {other:?}"),
    }
    // After shutdown nothing listens any more.
    assert!(TcpStream::connect(addr).await.is_err());
}
