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

/// Unix time now, in milliseconds.
fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(since.as_millis()).expect("ms fit")
}

/// The `exp` of an access token, in Unix seconds.
fn exp(token: &str) -> i64 {
    common::claims(token)["exp"].as_i64().expect("exp")
}

/// The real binary with `JWT_TTL=2`: a stream ends with UNAUTHORIZED when
/// its token expires (by bearer token or session cookie) and delivers
/// nothing after that, while a stream whose
/// token is still valid keeps delivering; after a refresh, a resubscribe
/// from the last id gets what happened in between.
async fn a_stream_ends_when_its_token_expires(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::test_config(backend, dir.path()).await;
    let mut cmd = common::binary(dir.path());
    cmd.env("DATABASE_URL", config.database_url())
        .env("JWT_SECRET", common::SECRET)
        .env("JWT_TTL", "2");
    let (_child, addr) = common::spawn_listening(cmd).await;
    let client = Client::new(addr);
    let (first, _) = register(&client, "expiring@example.com").await;
    let mut expiring = Stream::with_token(addr, &first, "").await;
    // The same token in the session cookie (a browser's EventSource).
    let cookie = format!("gatehouse_session={first}");
    let mut by_cookie = Stream::open(addr, "", &[("cookie", &cookie)]).await;
    client
        .clone()
        .with_token(&first)
        .mutation("auth.updateProfile", json!({"firstName": "One"}))
        .await
        .data();
    let (one_id, one) = expiring.data().await;
    assert_eq!(one["user"]["firstName"], "One");
    assert_eq!(by_cookie.data().await.0, one_id);

    // A second session whose token outlives the first one's by a second
    // or more (`exp` counts whole seconds).
    let second = loop {
        let token = login_token(&client, "expiring@example.com", PASSWORD).await;
        if exp(&token) > exp(&first) {
            break token;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut valid = Stream::with_token(addr, &second, "").await;

    // Past the first token's expiry, the profile changes again.
    let expired_at = exp(&first) * 1000;
    let wait = u64::try_from(expired_at + 200 - now_ms()).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(wait)).await;
    client
        .clone()
        .with_token(&second)
        .mutation("auth.updateProfile", json!({"firstName": "Two"}))
        .await
        .data();
    // The expired token's stream ended at its expiry, before that change.
    let (code, message) = expiring.error().await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("UNAUTHORIZED", "Credentials expired")
    );
    let (code, message) = by_cookie.error().await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("UNAUTHORIZED", "Credentials expired")
    );
    // The stream of the valid token delivers it.
    let (two_id, two) = valid.data().await;
    assert_eq!(two["user"]["firstName"], "Two");

    // Refresh the expired token and resubscribe from the last id seen:
    // the change in between arrives, then live ones.
    let refreshed = client.refresh(&first).await.data()["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let bearer = format!("Bearer {refreshed}");
    let mut resumed = Stream::open(
        addr,
        "",
        &[("authorization", &bearer), ("last-event-id", &one_id)],
    )
    .await;
    let (missed_id, missed) = resumed.data().await;
    assert_eq!(
        (missed_id.as_str(), &missed["user"]["firstName"]),
        (two_id.as_str(), &json!("Two"))
    );
    client
        .clone()
        .with_token(&refreshed)
        .mutation("auth.updateProfile", json!({"firstName": "Three"}))
        .await
        .data();
    assert_eq!(resumed.data().await.1["user"]["firstName"], "Three");
}

both_backends!(
    a_stream_ends_when_its_token_expires,
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
    config.http.addr = "127.0.0.1:0".parse().expect("addr");
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

/// Commits of this process wake its own subscribers: with the poll an hour
/// apart (so it never runs after the streams open), a profile update, a
/// logout from another connection, a role change with the sessions it ends
/// and an account's deletion all reach the open streams. Without the in-process wake-up they
/// would wait for the poll on SQLite; on PostgreSQL `NOTIFY` also wakes.
async fn this_process_commits_wake_their_subscribers(backend: Backend) {
    let temp = tempfile::tempdir().expect("tempdir");
    let config = common::test_config(backend, temp.path()).await;
    let dir = temp.path().to_path_buf();
    let server = Server::start_tuned(config, dir, Some(temp), |service| {
        service.with_events_poll(Duration::from_secs(3600))
    })
    .await;
    let client = Client::new(server.addr);
    let admin = client
        .clone()
        .with_token(&admin_token(&server, "no-poll-admin@example.com").await);
    let (token, user_id) = register(&client, "no-poll@example.com").await;
    let (leaving, _) = register(&client, "no-poll-leaving@example.com").await;
    let (deleted, deleted_id) = register(&client, "no-poll-deleted@example.com").await;
    let mut events = Stream::with_token(server.addr, &token, "").await;
    let mut leaving_events = Stream::with_token(server.addr, &leaving, "").await;
    let mut deleted_events = Stream::with_token(server.addr, &deleted, "").await;

    // A change and its event in the procedure's own transaction.
    client
        .clone()
        .with_token(&token)
        .mutation("auth.updateProfile", json!({"firstName": "Awake"}))
        .await;
    let (_, event) = events.data().await;
    assert_eq!(
        (event["type"].clone(), event["user"]["firstName"].clone()),
        (json!("profile.updated"), json!("Awake"))
    );

    // A session ended outside any transaction of the caller.
    client
        .clone()
        .with_token(&leaving)
        .mutation("auth.logout", json!(null))
        .await;
    assert_eq!(
        leaving_events.data().await.1,
        json!({"type": "session.revoked", "sessionId": sid(&leaving), "reason": "logout"})
    );
    assert_eq!(leaving_events.error().await.0, "UNAUTHORIZED");

    // Two events of one transaction (the role change, then the session it ends).
    admin
        .mutation("users.setRole", json!({"id": user_id, "role": "OPERATOR"}))
        .await;
    assert_eq!(
        events.data().await.1,
        json!({"type": "role.changed", "role": "OPERATOR"})
    );
    assert_eq!(
        events.data().await.1,
        json!({"type": "session.revoked", "sessionId": sid(&token), "reason": "roleChanged"})
    );
    assert_eq!(events.error().await.0, "UNAUTHORIZED");

    // Sessions announced as ended by the deletion of their account.
    admin
        .mutation("users.delete", json!({"id": deleted_id}))
        .await;
    assert_eq!(
        deleted_events.data().await.1,
        json!({"type": "session.revoked", "sessionId": sid(&deleted), "reason": "deleted"})
    );
}

both_backends!(this_process_commits_wake_their_subscribers);
