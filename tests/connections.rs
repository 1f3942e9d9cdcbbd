//! Connection handling over real TCP: keep-alive survives bodies nobody
//! reads.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Serves the common test app until the test ends.
async fn serve(app: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(gatehouse::server::serve_with_shutdown(
        listener,
        app,
        std::future::pending(),
    ));
    addr
}

/// One response read off a keep-alive connection (content-length bodies).
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn read_reply(conn: &mut BufReader<TcpStream>) -> std::io::Result<Reply> {
    let mut status_line = String::new();
    if conn.read_line(&mut status_line).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).await?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await?;
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_survives_a_late_body_nobody_reads() {
    let addr = serve(common::app()).await;
    let mut conn = BufReader::new(TcpStream::connect(addr).await.expect("connect"));
    let body = r#"{"json":null}"#;
    for round in 0..20 {
        // A mutation without input, whose body arrives after its head: the
        // server has nothing to read it for.
        let head = format!(
            "POST /trpc/noop HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        conn.get_mut()
            .write_all(head.as_bytes())
            .await
            .expect("head");
        tokio::time::sleep(Duration::from_millis(20)).await;
        conn.get_mut()
            .write_all(body.as_bytes())
            .await
            .expect("body");
        let reply = read_reply(&mut conn).await.expect("reply");
        assert_eq!(reply.status, 200, "round {round}: {}", reply.body);
        assert_ne!(reply.header("connection"), Some("close"));
        // The next request on the same connection is answered.
        conn.get_mut()
            .write_all(b"GET /trpc/hello HTTP/1.1\r\nhost: t\r\n\r\n")
            .await
            .expect("next request");
        let next = read_reply(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("round {round}: the next request failed: {e}"));
        assert_eq!(next.status, 200, "round {round}: {}", next.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_with_a_body_keeps_the_connection() {
    let addr = serve(common::app()).await;
    let mut conn = BufReader::new(TcpStream::connect(addr).await.expect("connect"));
    // Refused before any input is read (unsupported content type).
    conn.get_mut()
        .write_all(b"POST /trpc/noop HTTP/1.1\r\nhost: t\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\n")
        .await
        .expect("head");
    tokio::time::sleep(Duration::from_millis(20)).await;
    conn.get_mut().write_all(b"hello").await.expect("body");
    let reply = read_reply(&mut conn).await.expect("reply");
    assert_eq!(reply.status, 415, "{}", reply.body);
    conn.get_mut()
        .write_all(b"GET /trpc/hello HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .expect("next request");
    assert_eq!(read_reply(&mut conn).await.expect("next reply").status, 200);
}

/// Serves the common test app with `limits`.
async fn serve_limited(limits: gatehouse::server::ConnectionLimits) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(gatehouse::server::serve_with_limits(
        listener,
        common::app(),
        std::future::pending(),
        limits,
    ));
    addr
}

fn short_limits() -> gatehouse::server::ConnectionLimits {
    gatehouse::server::ConnectionLimits {
        header_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        max_connections: 1000,
    }
}

/// Everything the server sends until it closes (bounded by `within`).
async fn read_until_closed(conn: &mut TcpStream, within: Duration) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(within, conn.read_to_end(&mut out)).await;
    assert!(
        read.is_ok(),
        "the server did not close the connection within {within:?}"
    );
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_sent_too_slowly_is_answered_408_in_json() {
    let addr = serve_limited(short_limits()).await;
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    // A byte a fraction of a second, never finishing the head.
    for b in b"GET /trpc/hello HTTP/1.1\r\nhost" {
        if conn.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = read_until_closed(&mut conn, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(
        answer.contains("content-type: application/json"),
        "{answer}"
    );
    assert!(
        answer.ends_with(r#""data":{"code":"TIMEOUT","httpStatus":408}}}}"#),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let addr = serve_limited(short_limits()).await;
    // Never a byte: closed silently after the idle timeout.
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(
        read_until_closed(&mut silent, Duration::from_secs(6)).await,
        ""
    );
    // Kept alive after an answer, then idle: closed too, after the answer.
    let mut kept = TcpStream::connect(addr).await.expect("connect");
    kept.write_all(b"GET /trpc/hello HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .expect("request");
    let answer = read_until_closed(&mut kept, Duration::from_secs(6)).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed_and_the_listener_keeps_serving() {
    let addr = serve_limited(gatehouse::server::ConnectionLimits {
        max_connections: 4,
        ..short_limits()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = TcpStream::connect(addr).await.expect("connect");
        // A byte so each is surely accepted and counted.
        c.write_all(b"G").await.expect("write");
        held.push(c);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(addr)
        .await
        .expect("the listener still accepts");
    let _ = extra
        .write_all(b"GET /trpc/hello HTTP/1.1\r\nhost: t\r\n\r\n")
        .await;
    let answer = read_until_closed(&mut extra, Duration::from_secs(1)).await;
    assert_eq!(answer, "", "over the cap: closed without an answer");
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut next = TcpStream::connect(addr).await.expect("connect");
    next.write_all(b"GET /trpc/hello HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        .await
        .expect("request");
    let answer = read_until_closed(&mut next, Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 200 "),
        "a freed slot serves again: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_http_parser_refuses_get_trpc_json_errors() {
    let addr = serve(common::app()).await;
    let long_uri = format!("/trpc/hello?input={}", "a".repeat(70 * 1024));
    let many_headers: String = (0..150).map(|i| format!("x-h{i}: v\r\n")).collect();
    // Each with the statuses it may get: refused by the HTTP parser (the
    // status the parser chose, 400/414/431), or parsed and then refused by
    // the adapter (e.g. an odd but legal path is a 404 NOT_FOUND): either
    // way a tRPC JSON error.
    let cases: Vec<(Vec<u8>, &[&str])> = vec![
        (format!("GET {long_uri} HTTP/1.1\r\nhost: t\r\n\r\n").into_bytes(), &["414"]),
        (format!("GET /trpc/hello HTTP/1.1\r\nhost: t\r\n{many_headers}\r\n").into_bytes(), &["431"]),
        (
            format!("GET /trpc/hello HTTP/1.1\r\nhost: t\r\nx-big: {}\r\n\r\n", "b".repeat(700 * 1024))
                .into_bytes(),
            &["431"],
        ),
        (b"GET /trpc/he\"llo HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n".to_vec(), &["400", "404"]),
        (b"GET /trpc/he\x01llo HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n".to_vec(), &["400", "404"]),
        (b"GET /trpc/h\xffllo HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n".to_vec(), &["400", "404"]),
        (b"GET /trpc/hello HTTP/1.1\r\nhost: t\r\nx-nul: a\x00b\r\n\r\n".to_vec(), &["400"]),
        (
            b"POST /trpc/noop HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: -5\r\n\r\n"
                .to_vec(),
            &["400"],
        ),
        (b"GARBAGE\r\n\r\n".to_vec(), &["400"]),
    ];
    for (request, statuses) in cases {
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        let _ = conn.write_all(&request).await;
        let shown: String = String::from_utf8_lossy(&request).chars().take(60).collect();
        let answer = read_until_closed(&mut conn, Duration::from_secs(5)).await;
        let status = answer.get(9..12).unwrap_or_default().to_owned();
        assert!(statuses.contains(&status.as_str()), "{shown:?}: {answer}");
        assert!(
            answer.contains("content-type: application/json"),
            "{shown:?}: {answer}"
        );
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{shown:?}: body is not JSON ({e}): {answer}"));
        assert_eq!(
            json["error"]["json"]["data"]["httpStatus"].to_string(),
            status
        );
        assert!(json["error"]["json"]["data"]["code"].is_string(), "{json}");
    }
}
