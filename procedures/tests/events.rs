//! `auth.events` over real sockets: the subscriber hears its own session
//! end (from another connection, another instance, another process on the
//! same file) and the stream then ends with UNAUTHORIZED; role and profile
//! changes arrive; a reconnect with the last id misses nothing and repeats
//! nothing; other sessions' revocations stay private.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Backend, Client, PASSWORD, Server, admin_token, login_token, register};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for an event before failing (a bound on a hung
/// test, not a latency requirement).
const PATIENCE: Duration = Duration::from_secs(10);

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
struct Sse {
    event: Option<String>,
    data: String,
    id: Option<String>,
}

impl Sse {
    /// The value of a data event (inside its superjson envelope).
    fn value(&self) -> Value {
        let envelope: Value = serde_json::from_str(&self.data).expect("data is JSON");
        envelope["json"].clone()
    }
}

/// An open `auth.events` stream, read event by event.
struct Stream {
    tcp: TcpStream,
    buffer: String,
    head_done: bool,
}

impl Stream {
    async fn open(addr: SocketAddr, query: &str, headers: &[(&str, &str)]) -> Stream {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let mut head = format!("GET /trpc/auth.events{query} HTTP/1.0\r\nhost: test\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        tcp.write_all(head.as_bytes()).await.expect("write");
        let mut stream = Stream {
            tcp,
            buffer: String::new(),
            head_done: false,
        };
        // The answer starts once the subscription is in place (or refused).
        let first = stream.next_raw().await.expect("an answer");
        assert_eq!(first.event.as_deref(), Some("connected"), "{first:?}");
        stream
    }

    async fn with_token(addr: SocketAddr, token: &str, query: &str) -> Stream {
        let bearer = format!("Bearer {token}");
        Self::open(addr, query, &[("authorization", &bearer)]).await
    }

    /// The next event that is not `connected` or `ping`; `None` at the end.
    async fn next(&mut self) -> Option<Sse> {
        let wanted = async {
            loop {
                let event = self.next_raw().await?;
                match event.event.as_deref() {
                    Some("connected" | "ping") => continue,
                    _ => return Some(event),
                }
            }
        };
        tokio::time::timeout(PATIENCE, wanted)
            .await
            .unwrap_or_else(|_| panic!("no event within {PATIENCE:?}"))
    }

    async fn next_raw(&mut self) -> Option<Sse> {
        let read = async {
            loop {
                if !self.head_done
                    && let Some(end) = self.buffer.find("\r\n\r\n")
                {
                    assert!(self.buffer.starts_with("HTTP/1.0 200"), "{}", self.buffer);
                    self.buffer.drain(..end + 4);
                    self.head_done = true;
                }
                if self.head_done {
                    let trimmed = self.buffer.trim_start_matches('\n');
                    let skipped = self.buffer.len() - trimmed.len();
                    self.buffer.drain(..skipped);
                    if let Some(end) = self.buffer.find("\n\n") {
                        let block: String = self.buffer.drain(..end + 2).collect();
                        return Some(parse(&block));
                    }
                }
                let mut chunk = [0u8; 4096];
                let n = self.tcp.read(&mut chunk).await.expect("read");
                if n == 0 {
                    return None;
                }
                self.buffer.push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        };
        read.await
    }

    /// A data event (panics on anything else).
    async fn data(&mut self) -> (String, Value) {
        let event = self.next().await.expect("an event");
        assert_eq!(event.event, None, "{event:?}");
        (event.id.clone().expect("tracked"), event.value())
    }

    /// The error that ends the stream, as `(code, message)`, then the end.
    async fn error(&mut self) -> (String, String) {
        let event = self.next().await.expect("an error event");
        assert_eq!(
            event.event.as_deref(),
            Some("serialized-error"),
            "{event:?}"
        );
        let shape = event.value();
        assert!(
            self.next().await.is_none(),
            "the stream ends after its error"
        );
        (
            shape["data"]["code"].as_str().expect("code").to_owned(),
            shape["message"].as_str().expect("message").to_owned(),
        )
    }
}

fn parse(block: &str) -> Sse {
    let mut sse = Sse {
        event: None,
        data: String::new(),
        id: None,
    };
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event: ") {
            sse.event = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("data: ") {
            sse.data = v.to_owned();
        } else if let Some(v) = line.strip_prefix("id: ") {
            sse.id = Some(v.to_owned());
        }
    }
    sse
}

/// The session id inside an access token.
fn sid(token: &str) -> String {
    common::claims(token)["sid"]
        .as_str()
        .expect("sid")
        .to_owned()
}

async fn logout_revokes_the_subscribers_session(backend: Backend) {
    let server = Server::start(backend).await;
    let client = Client::new(server.addr);
    let (token, _) = register(&client, "watch@example.com").await;
    let mut events = Stream::with_token(server.addr, &token, "").await;
    // Another connection logs this session out.
    let r = client
        .clone()
        .with_token(&token)
        .mutation("auth.logout", json!(null))
        .await;
    assert_eq!(r.data()["success"], true);
    let (_, event) = events.data().await;
    assert_eq!(
        event,
        json!({"type": "session.revoked", "sessionId": sid(&token), "reason": "logout"})
    );
    let (code, message) = events.error().await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("UNAUTHORIZED", "Session expired or revoked")
    );
}

async fn account_events_arrive_and_a_reconnect_misses_nothing(backend: Backend) {
    let server = Server::start(backend).await;
    let client = Client::new(server.addr);
    let (token, _) = register(&client, "resume@example.com").await;
    let me = client.clone().with_token(&token);
    let mut events = Stream::with_token(server.addr, &token, "").await;
    // Subscribed from now: nothing earlier (registration) is replayed.
    me.mutation("auth.updateProfile", json!({"firstName": "One"}))
        .await;
    let (first_id, first) = events.data().await;
    assert_eq!(first["type"], "profile.updated");
    assert_eq!(first["user"]["firstName"], "One");
    drop(events);
    // While disconnected: two more changes.
    for name in ["Two", "Three"] {
        me.mutation("auth.updateProfile", json!({"firstName": name}))
            .await;
    }
    // An EventSource reconnecting sends the last id it saw.
    let bearer = format!("Bearer {token}");
    let mut resumed = Stream::open(
        server.addr,
        "",
        &[("authorization", &bearer), ("last-event-id", &first_id)],
    )
    .await;
    let (second_id, second) = resumed.data().await;
    let (third_id, third) = resumed.data().await;
    assert_eq!(
        (
            second["user"]["firstName"].clone(),
            third["user"]["firstName"].clone()
        ),
        (json!("Two"), json!("Three"))
    );
    let ids: Vec<i64> = [&first_id, &second_id, &third_id]
        .iter()
        .map(|id| id.parse().expect("numeric id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");
    // Live again after the replay, with nothing repeated.
    me.mutation("auth.updateProfile", json!({"firstName": "Four"}))
        .await;
    let (_, fourth) = resumed.data().await;
    assert_eq!(fourth["user"]["firstName"], "Four");
    // The same resume point in the input (httpSubscriptionLink's way).
    let input = common::url_json(&json!({"lastEventId": third_id}), true);
    let mut from_input = Stream::with_token(server.addr, &token, &format!("?input={input}")).await;
    let (_, again) = from_input.data().await;
    assert_eq!(again["user"]["firstName"], "Four");
}

async fn a_role_change_is_announced_then_ends_the_session(backend: Backend) {
    let server = Server::start(backend).await;
    let client = Client::new(server.addr);
    let admin = client
        .clone()
        .with_token(&admin_token(&server, "boss@example.com").await);
    let (token, user_id) = register(&client, "promoted@example.com").await;
    let mut events = Stream::with_token(server.addr, &token, "").await;
    let r = admin
        .mutation("users.setRole", json!({"id": user_id, "role": "OPERATOR"}))
        .await;
    assert_eq!(r.data()["role"], "OPERATOR");
    assert_eq!(
        events.data().await.1,
        json!({"type": "role.changed", "role": "OPERATOR"})
    );
    assert_eq!(
        events.data().await.1,
        json!({"type": "session.revoked", "sessionId": sid(&token), "reason": "roleChanged"})
    );
    assert_eq!(events.error().await.0, "UNAUTHORIZED");
}

async fn other_sessions_revocations_stay_private(backend: Backend) {
    let server = Server::start(backend).await;
    let client = Client::new(server.addr);
    let (first, _) = register(&client, "two-tabs@example.com").await;
    let second = login_token(&client, "two-tabs@example.com", PASSWORD).await;
    let mut events = Stream::with_token(server.addr, &first, "").await;
    // The second session ends: not the subscriber's business.
    client
        .clone()
        .with_token(&second)
        .mutation("auth.logout", json!(null))
        .await;
    // The next event it gets is its own revocation by logoutAll.
    client
        .clone()
        .with_token(&first)
        .mutation("auth.logoutAll", json!(null))
        .await;
    assert_eq!(
        events.data().await.1,
        json!({"type": "session.revoked", "sessionId": sid(&first), "reason": "logoutAll"})
    );
    assert_eq!(events.error().await.0, "UNAUTHORIZED");
}

async fn browsers_pass_the_token_in_connection_params(backend: Backend) {
    let server = Server::start(backend).await;
    let client = Client::new(server.addr);
    let (token, _) = register(&client, "browser@example.com").await;
    let params = common::url_json(&json!({"token": token}), false);
    let mut events = Stream::open(server.addr, &format!("?connectionParams={params}"), &[]).await;
    client
        .clone()
        .with_token(&token)
        .mutation(
            "auth.changePassword",
            json!({"currentPassword": PASSWORD, "newPassword": "another horse battery staple"}),
        )
        .await;
    // A password change keeps the session that made it: so this one too.
    // Its end comes from logoutAll instead.
    let fresh = login_token(
        &client,
        "browser@example.com",
        "another horse battery staple",
    )
    .await;
    client
        .clone()
        .with_token(&fresh)
        .mutation("auth.logoutAll", json!(null))
        .await;
    let (_, event) = events.data().await;
    assert_eq!(event["reason"], "logoutAll");
    assert_eq!(events.error().await.0, "UNAUTHORIZED");
    // Ordinary calls never take a token from the URL, even a live one.
    let live = login_token(
        &client,
        "browser@example.com",
        "another horse battery staple",
    )
    .await;
    let live_params = common::url_json(&json!({"token": live}), false);
    let me = client
        .raw(
            "GET",
            &format!("/trpc/auth.me?connectionParams={live_params}"),
            None,
        )
        .await;
    me.assert_error("UNAUTHORIZED", 401);
    // Without credentials, or with bad ones: UNAUTHORIZED in the stream.
    let mut anonymous = Stream::open(server.addr, "", &[]).await;
    assert_eq!(anonymous.error().await.0, "UNAUTHORIZED");
    let mut revoked = Stream::with_token(server.addr, &token, "").await;
    assert_eq!(revoked.error().await.0, "UNAUTHORIZED");
}

async fn a_bad_resume_point_is_bad_request(backend: Backend) {
    let server = Server::start(backend).await;
    let client = Client::new(server.addr);
    let (token, _) = register(&client, "bad-id@example.com").await;
    let mut events = Stream::with_token(server.addr, &token, "?lastEventId=yesterday").await;
    let (code, message) = events.error().await;
    assert_eq!(code, "BAD_REQUEST");
    assert_eq!(message, "lastEventId must be the id of an earlier event");
}

both_backends!(
    logout_revokes_the_subscribers_session,
    account_events_arrive_and_a_reconnect_misses_nothing,
    a_role_change_is_announced_then_ends_the_session,
    other_sessions_revocations_stay_private,
    browsers_pass_the_token_in_connection_params,
    a_bad_resume_point_is_bad_request,
);

/// Two instances on one database (two processes' worth of state: separate
/// services, pools and hubs): a logout through one reaches a subscriber of
/// the other, through `LISTEN/NOTIFY` on PostgreSQL and by polling the
/// table on SQLite.
async fn events_cross_instances(backend: Backend) {
    let a = Server::start(backend).await;
    let mut config = a.config.clone();
    config.addr = "127.0.0.1:0".parse().expect("addr");
    let b = Server::start_config(config, a.dir.clone(), None).await;
    let client_a = Client::new(a.addr);
    let client_b = Client::new(b.addr);
    let (token, _) = register(&client_a, "two-instances@example.com").await;
    let mut events = Stream::with_token(a.addr, &token, "").await;
    client_b
        .with_token(&token)
        .mutation("auth.logout", json!(null))
        .await;
    assert_eq!(events.data().await.1["type"], "session.revoked");
    assert_eq!(events.error().await.0, "UNAUTHORIZED");
}

both_backends!(events_cross_instances);
