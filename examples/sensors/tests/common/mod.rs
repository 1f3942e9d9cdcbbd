//! Test harness: the app on a real database (a SQLite file in a temp dir,
//! or a fresh database on the PostgreSQL at `GATEHOUSE_TEST_POSTGRES_URL`),
//! users of each role with a token, and in-process callers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gatehouse::{Ctx, EventStream, RequestMeta, RequestScope, Role, Subscription};
use gatehouse_auth::auth::{Login, LoginInput};
use gatehouse_auth::password::PasswordHasher;
use gatehouse_auth::{Config, NewUser};
use gatehouse_sensors::{OnReading, OnReadingInput, Reading, SensorsApp, SensorsError};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const SECRET: &str = "sensors-secret-sensors-secret-sensors-secret";
pub const PASSWORD: &str = "Sensors-User-Passw0rd";

/// A database for one test, and the folder its files live in.
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl TestDb {
    /// A SQLite file in a new temp dir.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("sensors.db").display());
        TestDb { url, dir }
    }

    /// A new database on the test PostgreSQL, or `None` (with a notice)
    /// when `GATEHOUSE_TEST_POSTGRES_URL` is not set.
    pub async fn postgres() -> Option<TestDb> {
        let admin_url = match std::env::var("GATEHOUSE_TEST_POSTGRES_URL") {
            Ok(url) if !url.trim().is_empty() => url,
            _ => {
                if std::env::var("GATEHOUSE_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                    panic!(
                        "GATEHOUSE_REQUIRE_POSTGRES=1 but GATEHOUSE_TEST_POSTGRES_URL is not set"
                    );
                }
                eprintln!("skipping PostgreSQL variant: GATEHOUSE_TEST_POSTGRES_URL is not set");
                return None;
            }
        };
        let name = format!("gh_sensors_{}", uuid::Uuid::new_v4().simple());
        let admin = sea_orm::Database::connect(&admin_url)
            .await
            .expect("connect to the PostgreSQL admin URL");
        sea_orm::ConnectionTrait::execute_unprepared(
            &admin,
            &format!("CREATE DATABASE \"{name}\""),
        )
        .await
        .expect("create test database");
        let _ = admin.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map(|(base, _)| base)
            .expect("admin URL has a database path");
        Some(TestDb {
            url: format!("{base}/{name}"),
            dir: tempfile::tempdir().expect("tempdir"),
        })
    }

    /// The settings of the `gatehouse-sensors` binary for this database.
    pub fn config(&self) -> Config {
        let mut config = Config {
            data_dir: self.dir.path().to_path_buf(),
            bcrypt_cost: 4,
            ..Config::defaults()
        };
        config.http.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.database.database_url = Some(self.url.clone());
        config.tokens.jwt_secret = Some(SECRET.to_owned());
        config.mail.outbox_dir = Some(self.dir.path().join("outbox"));
        config
    }

    /// The auth service (its migrations applied) and the app on it (its
    /// own migrations applied), as the binary starts them.
    pub async fn open(&self) -> Arc<SensorsApp> {
        self.open_with(|app| app).await
    }

    /// [`TestDb::open`], with the app adjusted by `tweak` first.
    pub async fn open_with(&self, tweak: impl FnOnce(SensorsApp) -> SensorsApp) -> Arc<SensorsApp> {
        let auth = gatehouse_auth::build_service(&self.config())
            .await
            .expect("auth service starts");
        let app = SensorsApp::open(auth)
            .await
            .expect("sensors migrations apply");
        Arc::new(tweak(app))
    }
}

/// Runs each test body on a SQLite file, and on PostgreSQL when
/// `GATEHOUSE_TEST_POSTGRES_URL` is set.
#[macro_export]
macro_rules! both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::TestDb::sqlite()).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(db) = $crate::common::TestDb::postgres().await {
                        super::$name(db).await;
                    }
                }
            }
        )*
    };
}

/// Closes the app's database pool, as a process exit would.
pub async fn shut_down(app: Arc<SensorsApp>) {
    let db = app.db().clone();
    drop(app);
    db.close().await.expect("close the pool");
}

/// A request from nobody in particular, with `token` if any.
pub fn request(token: Option<&str>) -> Arc<RequestMeta> {
    let mut headers = http::HeaderMap::new();
    if let Some(token) = token {
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header value"),
        );
    }
    Arc::new(RequestMeta {
        method: http::Method::POST,
        headers,
        peer: None,
        request_id: "sensors-test".to_owned(),
        connection_params: Vec::new(),
        response_headers: Default::default(),
    })
}

/// Creates a user with `role` and logs in; returns the token.
pub async fn user(app: &Arc<SensorsApp>, email: &str, role: Role) -> String {
    let hasher = PasswordHasher::new(4).expect("hasher");
    gatehouse_auth::create_user(
        app.db(),
        &hasher,
        NewUser {
            email,
            password: PASSWORD,
            first_name: "Sensor",
            last_name: "Tester",
            role,
            username: None,
        },
    )
    .await
    .expect("create user");
    login(app, email).await
}

/// A token for `email` (password [`PASSWORD`]), from `auth.login` on the app.
pub async fn login(app: &Arc<SensorsApp>, email: &str) -> String {
    RequestScope::new(app.clone(), request(None))
        .invoke::<Login>(LoginInput::by_email(email, PASSWORD))
        .await
        .expect("login")
        .token
}

/// An in-process caller authenticated by `token`.
pub fn caller(app: &Arc<SensorsApp>, token: &str) -> RequestScope<SensorsApp> {
    RequestScope::new(app.clone(), request(Some(token)))
}

/// Starts `sensors.onReading` for `input` in-process, as the router would
/// after its guard.
pub async fn subscribe(
    app: &Arc<SensorsApp>,
    input: OnReadingInput,
) -> Result<EventStream<Reading, SensorsError>, SensorsError> {
    let ctx = Ctx {
        service: app.clone(),
        principal: None,
        request: request(None),
        path: Arc::from("sensors.onReading"),
    };
    OnReading::subscribe(ctx, input).await
}

/// The input of a subscription resuming after `last` (if any), for `sensor` (if any).
pub fn resume(sensor: Option<&str>, last: Option<&str>) -> OnReadingInput {
    OnReadingInput {
        sensor_id: sensor.map(str::to_owned),
        last_event_id: last.map(str::to_owned),
    }
}

/// The next `n` events (panics after 5 s without one).
pub async fn take(events: &mut EventStream<Reading, SensorsError>, n: usize) -> Vec<Reading> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let next = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap_or_else(|_| panic!("no event within 5 s after {} of {n}", out.len()));
        let event = next
            .expect("the stream goes on")
            .expect("an event, not an error");
        let reading = event.data;
        assert_eq!(
            event.id.as_deref(),
            Some(reading.id.as_str()),
            "tracked by the reading id"
        );
        out.push(reading);
    }
    out
}

/// Asserts that no event arrives for a while.
pub async fn assert_quiet(events: &mut EventStream<Reading, SensorsError>) {
    if let Ok(next) = tokio::time::timeout(Duration::from_millis(300), events.next()).await {
        panic!("unexpected event: {:?}", next.map(|e| e.map(|e| e.data)));
    }
}

/// The ids of `readings`, as numbers.
pub fn ids<R: std::borrow::Borrow<Reading>>(readings: &[R]) -> Vec<i64> {
    readings
        .iter()
        .map(|r| r.borrow().id.parse().expect("numeric id"))
        .collect()
}

/// The whole app (`auth.*`, `users.*`, `sensors.*`) served on a loopback
/// port, until dropped.
pub struct Server {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub async fn start(db: &TestDb, app: Arc<SensorsApp>) -> Server {
        let registry = gatehouse_sensors::app_router()
            .build()
            .expect("router builds");
        let service = gatehouse::server::app(
            registry,
            app,
            db.config().validate().expect("valid config").trpc,
        );
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(gatehouse::server::serve_with_shutdown(
            listener,
            service,
            std::future::pending(),
        ));
        Server { addr, task }
    }
}

/// One HTTP/1.0 exchange (the server closes the connection after it, so
/// the body is everything after the headers). Returns status and JSON body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!("{method} {target} HTTP/1.0\r\nhost: {addr}\r\n");
    if let Some(token) = token {
        request.push_str(&format!("authorization: Bearer {token}\r\n"));
    }
    if method == "POST" {
        request.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers end");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// A mutation with `{"json": input}`; returns status and `result.data.json`
/// or the error's `data.code`.
pub async fn mutation(
    addr: SocketAddr,
    path: &str,
    input: Value,
    token: Option<&str>,
) -> (u16, Value) {
    let (status, body) = http(
        addr,
        "POST",
        &format!("/trpc/{path}"),
        token,
        Some(&json!({ "json": input })),
    )
    .await;
    (status, result_or_code(body))
}

/// A query (GET) with `{"json": input}` unless `input` is null.
pub async fn query(
    addr: SocketAddr,
    path: &str,
    input: Value,
    token: Option<&str>,
) -> (u16, Value) {
    let target = if input.is_null() {
        format!("/trpc/{path}")
    } else {
        format!(
            "/trpc/{path}?input={}",
            url_encode(&json!({ "json": input }).to_string())
        )
    };
    let (status, body) = http(addr, "GET", &target, token, None).await;
    (status, result_or_code(body))
}

fn result_or_code(body: Value) -> Value {
    if let Some(data) = body.pointer("/result/data/json") {
        data.clone()
    } else if let Some(code) = body.pointer("/error/json/data/code") {
        code.clone()
    } else {
        body
    }
}

/// Percent-encodes everything but unreserved URL characters.
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An open server-sent-events response, read as it arrives.
pub struct EventSource {
    tcp: TcpStream,
    seen: Vec<u8>,
}

impl EventSource {
    /// `GET target` with `headers` (e.g. `last-event-id: 7`), over HTTP/1.0.
    pub async fn open(addr: SocketAddr, target: &str, headers: &[String]) -> EventSource {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let mut head = format!("GET {target} HTTP/1.0\r\nhost: sensors.test\r\n");
        for header in headers {
            head.push_str(header);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        tcp.write_all(head.as_bytes()).await.expect("write");
        EventSource {
            tcp,
            seen: Vec::new(),
        }
    }

    /// Everything received so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// The `id:` lines received so far.
    pub fn ids(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter_map(|line| line.strip_prefix("id: "))
            .map(str::to_owned)
            .collect()
    }

    /// Reads until `needle` has arrived (panics after 5 s).
    pub async fn until(&mut self, needle: &str) -> String {
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
}
