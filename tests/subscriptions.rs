//! Subscriptions over server-sent events, on a real socket: the exact
//! bytes `httpSubscriptionLink` reads, resumption by `Last-Event-ID`,
//! in-stream errors with HTTP 200, the batch refusal, ping, limits, and
//! that a stream's resources go when its client does or the server stops.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use gatehouse::http::{SubscriptionConfig, TrpcConfig};
use gatehouse::{Ctx, Event, EventStream, Guard, Role, RpcError, Subscription};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Deserialize, ts_rs::TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct TicksInput {
    #[serde(default)]
    last_event_id: Option<String>,
    #[serde(default)]
    count: Option<u32>,
}

#[derive(Serialize, ts_rs::TS, schemars::JsonSchema)]
struct Tick {
    i: u32,
}

/// `count` (3) numbered events after `lastEventId`, then the end.
#[derive(schemars::JsonSchema)]
struct Ticks;
impl Subscription<TestService> for Ticks {
    const PATH: &'static str = "ticks";
    const GUARD: Guard = Guard::Public;
    const TRACKED: bool = true;
    type Input = Option<TicksInput>;
    type Output = Tick;
    type Error = RpcError;

    async fn subscribe(
        _: Ctx<TestService>,
        input: Option<TicksInput>,
    ) -> Result<EventStream<Tick, RpcError>, RpcError> {
        let (after, count) = match input {
            Some(input) => (
                input
                    .last_event_id
                    .map(|id| id.parse::<u32>())
                    .transpose()
                    .map_err(|_| RpcError::bad_request("lastEventId is not a number"))?
                    .unwrap_or(0),
                input.count.unwrap_or(3),
            ),
            None => (0, 3),
        };
        let events =
            (after + 1..=after + count).map(|i| Ok(Event::tracked(i.to_string(), Tick { i })));
        Ok(futures::stream::iter(events).boxed())
    }
}

/// Streams open right now: counted up when one starts, down when the
/// handler's stream is dropped.
static LIVE: AtomicUsize = AtomicUsize::new(0);

struct Live;
impl Drop for Live {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One event, then nothing until dropped. Only ADMIN.
#[derive(schemars::JsonSchema)]
struct Forever;
impl Subscription<TestService> for Forever {
    const PATH: &'static str = "forever";
    const GUARD: Guard = Guard::Role(Role::Admin);
    const TRACKED: bool = false;
    type Input = gatehouse::NoInput;
    type Output = String;
    type Error = RpcError;

    async fn subscribe(
        _: Ctx<TestService>,
        _: gatehouse::NoInput,
    ) -> Result<EventStream<String, RpcError>, RpcError> {
        LIVE.fetch_add(1, Ordering::SeqCst);
        let live = Live;
        let first = futures::stream::once(async { Ok(Event::new("first".to_owned())) });
        let rest = futures::stream::pending().map(move |()| {
            let _held = &live;
            Ok(Event::new(String::new()))
        });
        Ok(first.chain(rest).boxed())
    }
}

/// One event, then a domain error.
#[derive(schemars::JsonSchema)]
struct Breaks;
impl Subscription<TestService> for Breaks {
    const PATH: &'static str = "breaks";
    const GUARD: Guard = Guard::Public;
    const TRACKED: bool = false;
    type Input = gatehouse::NoInput;
    type Output = u32;
    type Error = RpcError;

    async fn subscribe(
        _: Ctx<TestService>,
        _: gatehouse::NoInput,
    ) -> Result<EventStream<u32, RpcError>, RpcError> {
        let events = vec![
            Ok(Event::new(1)),
            Err(RpcError::new(gatehouse::ErrorCode::Conflict, "it broke")),
        ];
        Ok(futures::stream::iter(events).boxed())
    }
}

struct Server {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(subscriptions: SubscriptionConfig) -> Server {
    let registry = router()
        .subscription::<Ticks>()
        .subscription::<Forever>()
        .subscription::<Breaks>()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let config = TrpcConfig {
        subscriptions,
        ..TrpcConfig::default()
    };
    let app = gatehouse::server::app(registry, Arc::new(TestService::default()), config);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(gatehouse::server::serve_with_shutdown(
        listener,
        app,
        async {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        stop: Some(stop),
        done,
    }
}

/// An open request: HTTP/1.0, so the body is everything until close.
struct Stream {
    tcp: TcpStream,
    seen: Vec<u8>,
}

impl Stream {
    async fn open(addr: std::net::SocketAddr, target: &str, headers: &[&str]) -> Stream {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let mut head = format!("GET {target} HTTP/1.0\r\nhost: test\r\n");
        for header in headers {
            head.push_str(header);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        tcp.write_all(head.as_bytes()).await.expect("write");
        Stream {
            tcp,
            seen: Vec::new(),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Reads until `needle` has arrived (panics after 5 s).
    async fn until(&mut self, needle: &str) -> String {
        let read = async {
            while !self.text().contains(needle) {
                let mut buf = [0u8; 4096];
                let n = self.tcp.read(&mut buf).await.expect("read");
                assert!(n > 0, "closed before {needle:?}:\n{}", self.text());
                self.seen.extend_from_slice(&buf[..n]);
            }
        };
        if tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .is_err()
        {
            panic!("no {needle:?} within 5 s:\n{}", self.text());
        }
        self.text()
    }

    /// Everything until the server closes.
    async fn read_to_close(mut self) -> String {
        let read = async {
            let mut rest = Vec::new();
            self.tcp.read_to_end(&mut rest).await.expect("read");
            self.seen.extend_from_slice(&rest);
        };
        if tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .is_err()
        {
            panic!("still open after 5 s:\n{}", self.text());
        }
        self.text()
    }
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

fn head(response: &str) -> String {
    response
        .split_once("\r\n\r\n")
        .map_or("", |(h, _)| h)
        .to_ascii_lowercase()
}

#[tokio::test]
async fn a_subscription_is_written_byte_for_byte_as_trpc_writes_it() {
    let server = start(SubscriptionConfig::default()).await;
    let response = Stream::open(server.addr, "/trpc/ticks", &[])
        .await
        .read_to_close()
        .await;
    let head = head(&response);
    assert!(head.starts_with("http/1.0 200"), "{head}");
    for line in [
        "content-type: text/event-stream",
        "cache-control: no-cache, no-transform",
        "x-accel-buffering: no",
    ] {
        assert!(head.contains(line), "{line} missing:\n{head}");
    }
    assert_eq!(
        body(&response),
        "event: connected\ndata: {}\n\n\n\
         data: {\"json\":{\"i\":1}}\nid: 1\n\n\n\
         data: {\"json\":{\"i\":2}}\nid: 2\n\n\n\
         data: {\"json\":{\"i\":3}}\nid: 3\n\n\n\
         event: return\ndata: \n\n\n"
    );
}

#[tokio::test]
async fn a_reconnecting_client_resumes_after_its_last_event_id() {
    let server = start(SubscriptionConfig::default()).await;
    // The header an EventSource sends on reconnecting wins over the input.
    let input = enc(r#"{"json":{"lastEventId":"1","count":2}}"#);
    let resumed = Stream::open(
        server.addr,
        &format!("/trpc/ticks?input={input}"),
        &["last-event-id: 5"],
    )
    .await
    .read_to_close()
    .await;
    assert!(
        body(&resumed).contains("data: {\"json\":{\"i\":6}}\nid: 6\n"),
        "{resumed}"
    );
    assert!(body(&resumed).contains("id: 7\n"), "{resumed}");
    assert!(!body(&resumed).contains("id: 5\n"), "{resumed}");
    // Without the header: the URL's `lastEventId`, merged into no input.
    let from_url = Stream::open(server.addr, "/trpc/ticks?lastEventId=2", &[])
        .await
        .read_to_close()
        .await;
    let ids: Vec<&str> = body(&from_url)
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .collect();
    assert_eq!(ids, ["3", "4", "5"], "{from_url}");
}

#[tokio::test]
async fn errors_before_the_first_event_arrive_in_the_stream_with_200() {
    let server = start(SubscriptionConfig::default()).await;
    // No credentials for an ADMIN subscription.
    let anonymous = Stream::open(server.addr, "/trpc/forever", &[])
        .await
        .read_to_close()
        .await;
    assert!(head(&anonymous).starts_with("http/1.0 200"), "{anonymous}");
    assert_eq!(
        body(&anonymous),
        "event: connected\ndata: {}\n\n\n\
         event: serialized-error\ndata: {\"json\":{\"message\":\"Authentication required\",\"code\":-32001,\"data\":{\"code\":\"UNAUTHORIZED\",\"httpStatus\":401,\"path\":\"forever\"}}}\n\n\n"
    );
    // Signed in, but not an admin.
    let viewer = Stream::open(
        server.addr,
        "/trpc/forever",
        &["authorization: Bearer VIEWER"],
    )
    .await
    .read_to_close()
    .await;
    assert!(body(&viewer).contains("\"code\":\"FORBIDDEN\""), "{viewer}");
    // Input the handler refuses.
    let bad = Stream::open(server.addr, "/trpc/ticks?lastEventId=x", &[])
        .await
        .read_to_close()
        .await;
    assert!(
        body(&bad).contains("\"message\":\"lastEventId is not a number\""),
        "{bad}"
    );
    // Wrong method: 405 inside the stream, and an `allow` header.
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    tcp.write_all(
        b"POST /trpc/ticks HTTP/1.0\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
    )
    .await
    .expect("write");
    let mut post = String::new();
    tcp.read_to_string(&mut post).await.expect("read");
    assert!(head(&post).starts_with("http/1.0 200"), "{post}");
    assert!(head(&post).contains("allow: get"), "{post}");
    assert!(
        body(&post).contains("\"message\":\"Unsupported POST-request to subscription procedure at path \\\"ticks\\\"\",\"code\":-32005"),
        "{post}"
    );
}

#[tokio::test]
async fn an_error_mid_stream_ends_it_with_serialized_error() {
    let server = start(SubscriptionConfig::default()).await;
    let response = Stream::open(server.addr, "/trpc/breaks", &["accept-language: es"])
        .await
        .read_to_close()
        .await;
    assert_eq!(
        body(&response),
        "event: connected\ndata: {}\n\n\n\
         data: {\"json\":1}\n\n\n\
         event: serialized-error\ndata: {\"json\":{\"message\":\"[es] it broke\",\"code\":-32009,\"data\":{\"code\":\"CONFLICT\",\"httpStatus\":409,\"path\":\"breaks\"}}}\n\n\n"
    );
}

#[tokio::test]
async fn subscriptions_cannot_be_batched() {
    let app = {
        let registry = router()
            .subscription::<Ticks>()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        gatehouse::server::app(
            registry,
            Arc::new(TestService::default()),
            TrpcConfig::default(),
        )
    };
    let response = get(&app, "/trpc/ticks,hello?batch=1").await;
    assert_eq!(response.status, http::StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json()["error"]["json"]["message"],
        "Cannot mix procedure types in call: subscription, query"
    );
    let single = get(&app, "/trpc/ticks?batch=1").await;
    assert_eq!(single.status, http::StatusCode::BAD_REQUEST);
    assert_eq!(
        single.json()[0]["error"]["json"]["message"],
        "Cannot batch subscription calls"
    );
    // An unknown path is no subscription: an ordinary JSON 404.
    let unknown = get(&app, "/trpc/nope").await;
    assert_eq!(unknown.status, http::StatusCode::NOT_FOUND);
}

/// A ping interval that is not shorter than the reconnect delay the
/// clients are told would make every idle stream reconnect: refused when
/// the app is built (`@trpc/server` throws when such a stream opens).
#[test]
fn a_ping_slower_than_the_reconnect_delay_is_refused_at_start() {
    let build = |ping: u64, reconnect: u64| {
        let registry = router()
            .subscription::<Forever>()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let config = TrpcConfig {
            subscriptions: SubscriptionConfig {
                ping_interval: Some(Duration::from_millis(ping)),
                reconnect_after_inactivity: Some(Duration::from_millis(reconnect)),
                ..SubscriptionConfig::default()
            },
            ..TrpcConfig::default()
        };
        std::panic::catch_unwind(|| {
            gatehouse::server::app(registry, Arc::new(TestService::default()), config)
        })
    };
    let refused = build(1000, 1000).expect_err("ping == reconnect delay was accepted");
    let message = refused
        .downcast_ref::<String>()
        .map(String::as_str)
        .unwrap_or_default();
    assert!(message.contains("ping_interval"), "{message}");
    assert!(
        build(2000, 1000).is_err(),
        "ping > reconnect delay was accepted"
    );
    assert!(build(999, 1000).is_ok(), "a consistent config was refused");
}

#[tokio::test]
async fn idle_streams_are_pinged() {
    let server = start(SubscriptionConfig {
        ping_interval: Some(Duration::from_millis(100)),
        reconnect_after_inactivity: Some(Duration::from_millis(1000)),
        ..SubscriptionConfig::default()
    })
    .await;
    let mut stream = Stream::open(
        server.addr,
        "/trpc/forever",
        &["authorization: Bearer ADMIN"],
    )
    .await;
    let text = stream.until("event: ping\ndata: \n\n\n").await;
    assert!(
        body(&text)
            .starts_with("event: connected\ndata: {\"reconnectAfterInactivityMs\":1000}\n\n\n"),
        "{text}"
    );
}

/// Waits until no [`Forever`] stream is alive; panics after 5 s.
async fn all_released() {
    for _ in 0..100 {
        if LIVE.load(Ordering::SeqCst) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{} stream(s) still held after their client left",
        LIVE.load(Ordering::SeqCst)
    );
}

// The tests below count `LIVE`, so they run one after another.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn a_client_that_goes_away_releases_its_stream_and_its_place() {
    let _serial = SERIAL.lock().await;
    let server = start(SubscriptionConfig {
        max_per_caller: 2,
        ..SubscriptionConfig::default()
    })
    .await;
    let admin = ["authorization: Bearer ADMIN"];
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut stream = Stream::open(server.addr, "/trpc/forever", &admin).await;
        stream.until("data: {\"json\":\"first\"}").await;
        streams.push(stream);
    }
    assert_eq!(LIVE.load(Ordering::SeqCst), 2);
    // A third for the same caller is refused, in the stream.
    let third = Stream::open(server.addr, "/trpc/forever", &admin)
        .await
        .read_to_close()
        .await;
    assert!(
        body(&third).contains("\"code\":\"TOO_MANY_REQUESTS\""),
        "{third}"
    );
    // The clients hang up: their handlers' streams are dropped…
    streams.clear();
    all_released().await;
    // …and their places are free again.
    let mut again = Stream::open(server.addr, "/trpc/forever", &admin).await;
    again.until("data: {\"json\":\"first\"}").await;
    drop(again);
    all_released().await;
}

#[tokio::test]
async fn shutting_down_ends_open_streams_with_return() {
    let _serial = SERIAL.lock().await;
    let mut server = start(SubscriptionConfig::default()).await;
    let mut stream = Stream::open(
        server.addr,
        "/trpc/forever",
        &["authorization: Bearer ADMIN"],
    )
    .await;
    stream.until("data: {\"json\":\"first\"}").await;
    if let Some(stop) = server.stop.take() {
        let _ = stop.send(());
    }
    let text = stream.read_to_close().await;
    assert!(
        body(&text).ends_with("event: return\ndata: \n\n\n"),
        "{text}"
    );
    let done = tokio::time::timeout(Duration::from_secs(5), server.done)
        .await
        .expect("the server stops without waiting for the grace period");
    assert!(matches!(done, Ok(Ok(()))));
    all_released().await;
}
