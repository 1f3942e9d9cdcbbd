//! Accepting TCP connections so that no single client can take the server
//! offline: a deadline for a request's head, an idle timeout for kept-alive
//! connections, a cap on open connections below the file-descriptor limit,
//! and an accept loop that backs off instead of spinning when the process
//! runs out of descriptors.
//!
//! hyper answers some malformed requests itself, before any handler runs
//! (an over-long URI, too many or too large headers, a request line or
//! header it cannot parse), with an empty body. Every answer of this server
//! should be a tRPC JSON error, so [`Tracked`] recognises those automatic
//! answers on their way out and sends a tRPC error body in their place
//! (see [`automatic_error`]). A head that does not arrive within
//! [`ConnectionLimits::header_timeout`] is answered with `408 TIMEOUT` the
//! same way; a connection that never sent a byte is simply closed.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::shutdown::Shutdown;

/// Counter of connections closed by the server before their client was done,
/// labelled `reason`: `limit` (over [`ConnectionLimits::max_connections`]),
/// `header_timeout`, `idle`.
pub const CONNECTIONS_CLOSED_TOTAL: &str = "gatehouse_connections_closed_total";
/// Gauge of open client connections.
pub const CONNECTIONS_OPEN: &str = "gatehouse_connections_open";

/// Descriptors kept free for everything but client connections (database
/// connections, the SQLite file, mail, logs).
const RESERVED_FDS: u64 = 128;

/// How long the accept loop pauses when accepting fails for lack of
/// resources (e.g. `EMFILE`), instead of retrying in a tight loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How often a connection checks whether it has been idle too long.
const IDLE_CHECK_EVERY: Duration = Duration::from_secs(1);

/// What one client may hold of the server.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Deadline for a request's head (request line and headers), from the
    /// moment the server starts waiting for it (10 s).
    pub header_timeout: Duration,
    /// A kept-alive connection with no request in flight and no bytes moving
    /// for this long is closed (60 s).
    pub idle_timeout: Duration,
    /// Most client connections open at once; more are closed as soon as they
    /// are accepted. Defaults to the descriptor limit less a reserve.
    pub max_connections: usize,
}

/// Default seconds a client has to finish a request head.
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
/// Default seconds a kept-alive connection may sit idle.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(DEFAULT_HEADER_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            max_connections: default_max_connections(),
        }
    }
}

/// Raises the soft limit on open files to the hard limit, as most servers
/// do at start (the usual soft default of 1024 is small for a server), and
/// returns the limit now in force.
pub fn raise_fd_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(error) => {
            tracing::warn!(%error, "cannot raise the open-files limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// The connection cap that keeps [`RESERVED_FDS`] descriptors free under
/// the current soft limit (at least 16).
pub fn default_max_connections() -> usize {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    usize::try_from(soft.saturating_sub(RESERVED_FDS).max(16)).unwrap_or(usize::MAX)
}

/// Serves `app` on `listener` within `limits` until `signal` resolves, then
/// stops accepting, lets requests in flight finish (at most `grace`) and
/// closes idle connections at once.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    signal: impl Future<Output = ()> + Send + 'static,
    limits: ConnectionLimits,
    grace: Duration,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut signal = std::pin::pin!(signal);
    let builder = Arc::new(http1_builder());
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut signal => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Over the cap: closed at once, so the listener keeps serving
            // everyone else instead of the process running out of files.
            metrics::counter!(CONNECTIONS_CLOSED_TOTAL, "reason" => "limit").increment(1);
            tracing::debug!(%peer, "connection refused: too many open connections");
            drop(tcp);
            continue;
        };
        // TCP_NODELAY: a JSONL stream writes each finished call as its own
        // small chunk; with Nagle's algorithm every chunk after the first
        // would wait for the client's (delayed, up to 40 ms) ACK.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let connection = Connection {
            app: app.clone(),
            builder: builder.clone(),
            peer,
            limits: limits.clone(),
            stop: stop_rx.clone(),
        };
        connections.spawn(async move {
            metrics::gauge!(CONNECTIONS_OPEN).increment(1.0);
            connection.run(tcp).await;
            metrics::gauge!(CONNECTIONS_OPEN).decrement(1.0);
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_s = grace.as_secs(),
            "requests still running after the shutdown grace period; closing them"
        );
    }
    Ok(())
}

/// Logs a failed `accept` and, when the process is out of resources, waits a
/// little so the loop does not spin while nothing can be accepted.
/// hyper's HTTP/1 settings. The head deadline is kept by
/// `Connection::run` itself: hyper's own (30 s by default once a timer is
/// set) closes silently, and also runs while a kept-alive connection merely
/// waits for its next request, which would cut every idle connection at
/// 30 s whatever `idle_timeout` says. So it is switched off explicitly.
fn http1_builder() -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    builder
}

async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    ) {
        return;
    }
    tracing::warn!(%error, "accept failed; pausing before the next attempt");
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

/// One accepted client connection.
struct Connection {
    app: axum::Router,
    builder: Arc<hyper::server::conn::http1::Builder>,
    peer: SocketAddr,
    limits: ConnectionLimits,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, tcp: TcpStream) {
        let activity = Arc::new(Activity::new());
        let io = Tracked {
            tcp,
            activity: activity.clone(),
            replacing: None,
        };
        let (app, peer, in_flight) = (self.app.clone(), self.peer, activity.clone());
        let shutdown = Shutdown::new(self.stop.clone());
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut().insert(shutdown.clone());
            let app = app.clone();
            let guard = InFlight::enter(&in_flight);
            async move {
                let response = app.oneshot(req.map(Body::new)).await;
                drop(guard);
                response
            }
        });
        let conn = self.builder.serve_connection(TokioIo::new(io), service);
        let mut conn = std::pin::pin!(conn);
        let mut idle_check = tokio::time::interval(IDLE_CHECK_EVERY);
        let mut closing = false;
        let result = loop {
            tokio::select! {
                result = conn.as_mut() => break Some(result),
                changed = self.stop.changed(), if !closing => {
                    if changed.is_err() || *self.stop.borrow() {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
                _ = idle_check.tick() => {
                    if activity.head_waiting_for() >= self.limits.header_timeout {
                        // A head that started but did not finish in time
                        // (e.g. sent a byte a second): answered 408, closed.
                        metrics::counter!(CONNECTIONS_CLOSED_TOTAL, "reason" => "header_timeout")
                            .increment(1);
                        activity.answer_timeout_on_close();
                        break None;
                    }
                    if !closing && activity.idle_for() >= self.limits.idle_timeout {
                        metrics::counter!(CONNECTIONS_CLOSED_TOTAL, "reason" => "idle").increment(1);
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        };
        if let Some(Err(error)) = result {
            tracing::debug!(%error, peer = %self.peer, "connection ended with an error");
        }
        // Dropping the connection drops `Tracked`, which writes the 408 if
        // asked to.
    }
}

/// What a connection's reads and writes have been doing.
struct Activity {
    started: Instant,
    /// Milliseconds since `started` of the last byte read or written.
    last_io_ms: AtomicU64,
    /// Bytes read since the last response began: a request head under way.
    read_since_write: AtomicU64,
    /// When (ms since `started`) the first byte of the head under way came.
    head_since_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// Set when the connection must say 408 as it closes.
    owe_timeout: std::sync::atomic::AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            read_since_write: AtomicU64::new(0),
            head_since_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            owe_timeout: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touched(&self) {
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// How long nothing has happened: no request in flight, no byte moved.
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = self.last_io_ms.load(Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }

    /// How long a request head has been arriving without being complete:
    /// bytes came since the last answer, yet no request is being handled.
    fn head_waiting_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0
            || self.read_since_write.load(Ordering::Relaxed) == 0
        {
            return Duration::ZERO;
        }
        let since = self.head_since_ms.load(Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(since))
    }

    fn answer_timeout_on_close(&self) {
        self.owe_timeout.store(true, Ordering::Relaxed);
    }
}

/// Counts a request as in flight until dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn enter(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touched();
    }
}

/// The client socket as hyper sees it: records activity, and swaps hyper's
/// empty automatic error answers for tRPC JSON ones.
struct Tracked {
    tcp: TcpStream,
    activity: Arc<Activity>,
    /// A replacement answer being written, and how much of it is out.
    replacing: Option<(Vec<u8>, usize)>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.tcp).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            let activity = &self.activity;
            activity.touched();
            let before = activity
                .read_since_write
                .fetch_add(read as u64, Ordering::Relaxed);
            if before == 0 && activity.in_flight.load(Ordering::Relaxed) == 0 {
                activity
                    .head_since_ms
                    .store(activity.now_ms(), Ordering::Relaxed);
            }
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.replacing.is_none()
            && let Some(answer) = automatic_error(buf)
        {
            self.replacing = Some((answer, 0));
        }
        self.activity.touched();
        self.activity.read_since_write.store(0, Ordering::Relaxed);
        let this = &mut *self;
        if let Some((answer, written)) = &mut this.replacing {
            // hyper's whole automatic answer is one head-only write; it is
            // reported written once the replacement is out.
            while *written < answer.len() {
                match Pin::new(&mut this.tcp).poll_write(cx, &answer[*written..]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                    }
                    Poll::Ready(Ok(n)) => *written += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            this.replacing = None;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.activity.owe_timeout.load(Ordering::Relaxed) {
            let answer = json_answer(
                408,
                "Request Timeout",
                "TIMEOUT",
                -32008,
                "Request header read timed out",
            );
            // Best effort and never blocking: a short answer into an idle
            // socket's send buffer.
            let _ = self.tcp.try_write(&answer);
        }
    }
}

/// If `buf` is one of hyper's own empty error answers (to a request it
/// could not parse, or whose URI or head is too large), the tRPC JSON answer
/// to send instead. Responses from handlers always carry a
/// `content-type`, so they never match.
fn automatic_error(buf: &[u8]) -> Option<Vec<u8>> {
    let rest = buf.strip_prefix(b"HTTP/1.1 ")?;
    let status = rest.get(..3)?;
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = &buf[..head_end];
    let lower = head.to_ascii_lowercase();
    let has = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
    if has(b"\r\ncontent-type:") || !has(b"\r\ncontent-length: 0") {
        return None;
    }
    Some(match status {
        b"400" => json_answer(
            400,
            "Bad Request",
            "BAD_REQUEST",
            -32600,
            "Malformed HTTP request",
        ),
        b"414" => json_answer(414, "URI Too Long", "BAD_REQUEST", -32600, "URI too long"),
        b"431" => json_answer(
            431,
            "Request Header Fields Too Large",
            "BAD_REQUEST",
            -32600,
            "Request header fields too large",
        ),
        _ => return None,
    })
}

/// A complete HTTP/1.1 answer with a tRPC error body, closing the
/// connection. `data.httpStatus` is the status actually sent: tRPC has no
/// code of its own for 414 and 431, so those say `BAD_REQUEST`.
fn json_answer(status: u16, reason: &str, code: &str, json_rpc: i32, message: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "error": { "json": {
            "message": message,
            "code": json_rpc,
            "data": { "code": code, "httpStatus": status },
        }}
    })
    .to_string();
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// hyper's own head timeout would close idle keep-alive connections
    /// at 30 s (see `http1_builder`); it must stay off.
    #[test]
    fn hypers_own_head_timeout_is_off() {
        let settings = format!("{:?}", http1_builder());
        assert!(
            settings.contains("h1_header_read_timeout: Configured(None)"),
            "{settings}"
        );
    }

    #[test]
    fn the_soft_fd_limit_is_raised_to_the_hard_limit() {
        let raised = raise_fd_limit().expect("a limit");
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("getrlimit");
        assert_eq!(soft, raised);
        // Linux caps the soft limit at `fs.nr_open` even when the hard one
        // is unlimited.
        assert!(soft == hard || hard == rlimit::INFINITY, "{soft} < {hard}");
        assert_eq!(
            default_max_connections() as u64,
            soft.saturating_sub(RESERVED_FDS).max(16)
        );
    }

    #[test]
    fn only_hypers_empty_errors_are_replaced() {
        let auto =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let answer = automatic_error(auto).expect("replaced");
        let text = String::from_utf8(answer).expect("utf-8");
        assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
        assert!(text.ends_with(r#""httpStatus":431}}}}"#), "{text}");
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert!(automatic_error(ours).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(automatic_error(ok).is_none());
    }
}
