//! Fault suite: hostile connections against the real `gatehouse` binary.
//! A thousand idle sockets and a hundred heads sent a byte a second must not
//! slow down everyone else, the server closes them by its timeouts, and
//! under a low open-files limit a flood of connections is refused at the cap
//! instead of taking the listener down.
//!
//! Slow and socket-hungry, so ignored by default; `tests/faults` runs it.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Client, SECRET, register};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

struct Instance {
    _child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// Starts the binary through `sh -c "<prefix> exec gatehouse"` (e.g. a
/// `ulimit`), with `env` on top of a test configuration.
async fn start(prefix: &str, env: &[(&str, &str)]) -> Instance {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{prefix} exec \"$0\""))
        .arg(common::BIN)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("BCRYPT_COST", "4")
        .env("GATEHOUSE_ADDR", "127.0.0.1:0")
        .env("JWT_SECRET", SECRET)
        .env("GATEHOUSE_DATA_DIR", dir.path())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (child, addr) = common::spawn_listening(cmd).await;
    Instance {
        _child: child,
        addr,
        _dir: dir,
    }
}

/// Latencies of `n` sequential `auth.me` calls, sorted, all required to
/// succeed.
async fn me_latencies(client: &Client, token: &str, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let r = client.me(token).await;
        out.push(start.elapsed());
        assert_eq!(r.status, 200, "auth.me during the flood: {}", r.body);
    }
    out.sort();
    out
}

fn median(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() / 2]
}

/// Whether the server closed `conn` (EOF or reset) within `within`, and
/// what it sent before.
async fn closed_within(conn: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    match tokio::time::timeout(within, conn.read_to_end(&mut out)).await {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fault suite: tests/faults"]
async fn idle_and_slow_clients_do_not_hold_the_server() {
    // The test process holds 1 100+ sockets itself.
    gatehouse::connections::raise_fd_limit();
    let server = start(
        "",
        &[
            ("GATEHOUSE_HEADER_TIMEOUT", "4"),
            ("GATEHOUSE_IDLE_TIMEOUT", "8"),
        ],
    )
    .await;
    let client = Client::new(server.addr);
    let (token, _) = register(&client, "flood@example.com").await;
    let baseline = me_latencies(&client, &token, 100).await;

    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(
            TcpStream::connect(server.addr)
                .await
                .expect("idle connection"),
        );
    }
    let mut slow = Vec::new();
    for _ in 0..100 {
        slow.push(
            TcpStream::connect(server.addr)
                .await
                .expect("slow connection"),
        );
    }
    // The slow ones send their head a byte a second from now on.
    let dribble = tokio::spawn(async move {
        let head = b"GET /trpc/auth.me HTTP/1.1\r\nhost: x\r\n\r\n";
        for byte in head.iter().take(8) {
            for conn in &mut slow {
                let _ = conn.write_all(&[*byte]).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        slow
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = me_latencies(&client, &token, 100).await;
    let (m0, m1) = (median(&baseline), median(&during));
    eprintln!(
        "auth.me median {m0:?} before, {m1:?} with 1000 idle + 100 slow connections (p99 {:?} → {:?})",
        baseline[98], during[98]
    );
    assert!(
        m1 <= m0 * 5 + Duration::from_millis(20),
        "calls slowed down by the idle/slow connections: {m0:?} → {m1:?}"
    );

    // The slow heads are answered 408 and closed by the head deadline.
    let mut slow = dribble.await.expect("dribble");
    let mut timed_out = 0;
    for conn in &mut slow {
        if let Some(answer) = closed_within(conn, Duration::from_secs(5)).await
            && answer.starts_with("HTTP/1.1 408 ")
        {
            timed_out += 1;
        }
    }
    assert_eq!(timed_out, 100, "every slow head got 408 and was closed");
    // The idle ones are closed by the idle timeout.
    let mut closed = 0;
    for conn in &mut idle {
        if closed_within(conn, Duration::from_secs(10)).await.is_some() {
            closed += 1;
        }
    }
    assert_eq!(closed, 1000, "every idle connection was closed");
    assert_eq!(client.me(&token).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fault suite: tests/faults"]
async fn a_low_fd_limit_caps_connections_instead_of_breaking_accept() {
    gatehouse::connections::raise_fd_limit();
    // Soft and hard limit 256: the server keeps 128 for itself, so at most
    // 128 client connections.
    let server = start("ulimit -n 256;", &[("GATEHOUSE_IDLE_TIMEOUT", "600")]).await;
    let client = Client::new(server.addr);
    let (token, _) = register(&client, "fd@example.com").await;

    // Under the cap: everyone is served.
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    assert_eq!(client.me(&token).await.status, 200);

    // Far past the cap and the process's own limit: the excess is closed at
    // once, the server does not fall over.
    let mut refused = 0;
    for _ in 0..400 {
        match TcpStream::connect(server.addr).await {
            Ok(mut c) => {
                if closed_within(&mut c, Duration::from_millis(500))
                    .await
                    .is_some()
                {
                    refused += 1;
                } else {
                    held.push(c);
                }
            }
            Err(_) => refused += 1,
        }
    }
    eprintln!(
        "{} connections held, {refused} refused at the cap",
        held.len()
    );
    assert!(refused >= 300, "the excess was refused ({refused})");
    assert!(
        held.len() <= 128 + 1,
        "no more than the cap were kept ({})",
        held.len()
    );

    // Once the flood lets go, service resumes at once.
    drop(held);
    let start = Instant::now();
    loop {
        if let Ok(r) = client.try_raw("GET", "/healthz", None).await
            && r.status == 200
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "service did not resume"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(client.me(&token).await.status, 200);
}
