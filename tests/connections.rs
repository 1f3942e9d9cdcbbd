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
