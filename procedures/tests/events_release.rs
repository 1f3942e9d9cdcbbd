//! Nothing is left behind when `auth.events` clients go away: no stream
//! counted open, no task still running. Alone in its binary, since it reads
//! the process-wide metrics and the runtime's task count.

mod common;

use std::time::Duration;

use common::{Backend, PASSWORD, Server, login_token, register};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Opens `auth.events` with `token` and waits for its `connected` event.
async fn subscribe(addr: std::net::SocketAddr, token: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "GET /trpc/auth.events HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {token}\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("event: connected") {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .expect("connected within 10 s")
            .expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(
        !String::from_utf8_lossy(&seen).contains("serialized-error"),
        "refused: {}",
        String::from_utf8_lossy(&seen)
    );
    tcp
}

/// The `gatehouse_subscriptions_open` gauge as `/metrics` shows it.
async fn open_gauge(server: &Server) -> f64 {
    let metrics = server.client().raw("GET", "/metrics", None).await;
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    text.lines()
        .find_map(|line| line.strip_prefix("gatehouse_subscriptions_open "))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

/// Polls `check` for up to 10 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnected_subscribers_leave_no_stream_and_no_task_behind() {
    let server = Server::start(Backend::Sqlite).await;
    let client = server.client();
    let mut tokens = Vec::new();
    for n in 0..4 {
        let email = format!("leak{n}@example.com");
        register(&client, &email).await;
        // Several sessions per user: 4 users × 10 streams.
        for _ in 0..10 {
            tokens.push(login_token(&client, &email, PASSWORD).await);
        }
    }
    // Warm up (the hub's poller starts with the first subscriber and stays),
    // then take the baseline with nothing open.
    drop(subscribe(server.addr, &tokens[0]).await);
    eventually("the warm-up stream ends", async || {
        open_gauge(&server).await == 0.0
    })
    .await;
    let metrics = tokio::runtime::Handle::current().metrics();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = metrics.num_alive_tasks();

    for round in 0..2 {
        let mut streams = Vec::new();
        for token in &tokens {
            streams.push(subscribe(server.addr, token).await);
        }
        assert_eq!(open_gauge(&server).await, 40.0, "round {round}");
        assert!(
            metrics.num_alive_tasks() > baseline,
            "the streams run as tasks"
        );
        drop(streams);
        eventually("every stream is released", async || {
            open_gauge(&server).await == 0.0
        })
        .await;
        eventually("every connection task ends", async || {
            metrics.num_alive_tasks() <= baseline
        })
        .await;
    }
}
