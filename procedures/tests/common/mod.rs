//! Test harness: a fresh database per test (SQLite file, or a new database on
//! the PostgreSQL at `GATEHOUSE_TEST_POSTGRES_URL`), the real server on an
//! ephemeral port, and an HTTP client (reqwest) over real TCP.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use gatehouse_auth::Config;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";
pub const PASSWORD: &str = "correct horse battery staple";

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The admin URL of the test PostgreSQL, or `None` (with a notice) when the
/// PostgreSQL variant should be skipped. Panics when PostgreSQL is required.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("GATEHOUSE_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            if std::env::var("GATEHOUSE_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("GATEHOUSE_REQUIRE_POSTGRES=1 but GATEHOUSE_TEST_POSTGRES_URL is not set");
            }
            eprintln!("skipping PostgreSQL variant: GATEHOUSE_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// Creates a fresh, uniquely named database and returns its URL.
pub async fn fresh_postgres_db(admin_url: &str) -> String {
    let name = format!("gh_test_{}", uuid::Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(admin_url)
        .await
        .expect("connect to the PostgreSQL admin URL");
    sea_orm::ConnectionTrait::execute_unprepared(&admin, &format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create test database");
    let _ = admin.close().await;
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .expect("admin URL has a database path");
    format!("{base}/{name}")
}

/// Runs each test body once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if $crate::common::postgres_admin_url().is_some() {
                        super::$name($crate::common::Backend::Postgres).await;
                    }
                }
            }
        )*
    };
}

/// A config for tests: temp data dir, fixed secret, cheapest bcrypt.
pub async fn test_config(backend: Backend, dir: &std::path::Path) -> Config {
    let database_url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.join("db/gatehouse.db").display()),
        Backend::Postgres => {
            let admin = postgres_admin_url().expect("PostgreSQL URL");
            fresh_postgres_db(&admin).await
        }
    };
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        bcrypt_cost: 4,
        ..Config::defaults()
    };
    config.http.addr = "127.0.0.1:0".parse().expect("addr");
    config.database.database_url = Some(database_url);
    config.tokens.jwt_secret = Some(SECRET.to_owned());
    config.mail.outbox_dir = Some(dir.join("outbox"));
    config
}

/// A running server on its own database.
pub struct Server {
    pub addr: SocketAddr,
    pub config: Config,
    pub dir: PathBuf,
    /// The service behind the server (its database, its outbox).
    pub service: Arc<gatehouse_auth::AuthService>,
    _temp: Option<tempfile::TempDir>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    mail_worker: Option<gatehouse_auth::outbox::MailWorker>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some(worker) = self.mail_worker.take() {
            worker.abort();
        }
    }
}

impl Server {
    /// A server with the default test config on `backend`.
    pub async fn start(backend: Backend) -> Server {
        Self::start_with(backend, |_| {}).await
    }

    /// A server whose config `tweak` adjusts first.
    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Server {
        let temp = tempfile::tempdir().expect("tempdir");
        let mut config = test_config(backend, temp.path()).await;
        tweak(&mut config);
        let dir = temp.path().to_path_buf();
        Self::start_config(config, dir, Some(temp)).await
    }

    pub async fn start_config(
        config: Config,
        dir: PathBuf,
        temp: Option<tempfile::TempDir>,
    ) -> Server {
        Self::start_tuned(config, dir, temp, |service| service).await
    }

    /// [`Server::start_config`] with the built service adjusted by `tune`
    /// (its `with_*` settings that have no config) before it serves.
    pub async fn start_tuned(
        config: Config,
        dir: PathBuf,
        temp: Option<tempfile::TempDir>,
        tune: impl FnOnce(gatehouse_auth::AuthService) -> gatehouse_auth::AuthService,
    ) -> Server {
        let service = Arc::new(tune(
            gatehouse_auth::build_service(&config)
                .await
                .expect("service starts"),
        ));
        let (addr, tx, task) = serve(&config, gatehouse_auth::app_router(), service.clone()).await;
        let mail_worker = gatehouse_auth::spawn_mail_worker(&service);
        Server {
            addr,
            config,
            dir,
            service,
            _temp: temp,
            shutdown: Some(tx),
            task: Some(task),
            mail_worker,
        }
    }

    /// Stops this server (gracefully, its mail worker too) and starts a new
    /// one on the same database, folders and config as `tweak` leaves it.
    pub async fn restart(mut self, tweak: impl FnOnce(&mut Config)) -> Server {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(worker) = self.mail_worker.take() {
            worker.shutdown(std::time::Duration::from_secs(5)).await;
        }
        let mut config = self.config.clone();
        config.http.addr = "127.0.0.1:0".parse().expect("addr");
        tweak(&mut config);
        let temp = self._temp.take();
        let dir = self.dir.clone();
        drop(self);
        Self::start_config(config, dir, temp).await
    }

    pub fn client(&self) -> Client {
        Client::new(self.addr)
    }

    /// The `.eml` files in the outbox right now, oldest first. Mail is sent
    /// by the outbox worker after the answer: use [`Server::mails`] to wait.
    pub fn outbox(&self) -> Vec<String> {
        read_outbox(&self.config.outbox_dir())
    }

    /// Mails queued in the database and not sent yet (every instance).
    pub async fn pending_mails(&self) -> i64 {
        gatehouse_auth::outbox::pending_count(self.service.db())
            .await
            .expect("count pending mails")
    }

    /// Waits (10 s at most) until the outbox folder holds at least `n` mails
    /// and nothing is left queued, so the list is final; returns it.
    pub async fn mails(&self, n: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let mails = self.outbox();
            if mails.len() >= n && self.pending_mails().await == 0 {
                return mails;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "expected {n} mails within 10 s, have {} ({} still queued)",
                mails.len(),
                self.pending_mails().await
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// Serves `router` on `state` at `config.http.addr` until the returned sender is
/// used or dropped; returns the address it listens on and the serving task.
pub async fn serve<S: gatehouse::Service>(
    config: &Config,
    router: gatehouse::Router<S>,
    state: Arc<S>,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let registry = router.build().expect("router builds");
    let app = gatehouse::server::app(
        registry,
        state,
        config.validate().expect("valid config").trpc,
    );
    let listener = tokio::net::TcpListener::bind(config.http.addr)
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = gatehouse::server::serve_with_shutdown(listener, app, async move {
            let _ = rx.await;
        })
        .await;
    });
    (addr, tx, task)
}

/// Waits (10 s at most) until the outbox folder `dir` holds at least `n`
/// mails; returns them, oldest first.
pub async fn wait_outbox(dir: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mails = read_outbox(dir);
        if mails.len() >= n {
            return mails;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "expected {n} mails in {} within 10 s, have {}",
            dir.display(),
            mails.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

pub fn read_outbox(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

/// The reset token of a mail (`Token: <token>` line).
pub fn token_from_mail(mail: &str) -> String {
    // Quoted-printable soft breaks would split long lines; undo them first.
    let unfolded = mail.replace("=\r\n", "").replace("=\n", "");
    unfolded
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Token: ")
                .map(|t| t.trim().to_owned())
        })
        .expect("mail has a Token: line")
}

/// One HTTP response, body parsed as JSON (Null when empty).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `result.data.json` of a successful call.
    pub fn data(&self) -> &Value {
        assert!(
            self.body.get("result").is_some(),
            "expected success, got {} {}",
            self.status,
            self.body
        );
        &self.body["result"]["data"]["json"]
    }

    fn error(&self) -> &Value {
        &self.body["error"]["json"]
    }

    /// `error.data.code`, e.g. `UNAUTHORIZED`; `None` on success.
    pub fn code(&self) -> Option<&str> {
        self.error()["data"]["code"].as_str()
    }

    pub fn message(&self) -> &str {
        self.error()["message"].as_str().unwrap_or_default()
    }

    /// `error.data.issues[*].path[0]`.
    pub fn issue_fields(&self) -> Vec<String> {
        self.error()["data"]["issues"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["path"][0].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts an error with this code and HTTP status.
    #[track_caller]
    pub fn assert_error(&self, code: &str, status: u16) {
        assert_eq!(
            (self.code(), self.status),
            (Some(code), status),
            "unexpected response: {}",
            self.body
        );
    }
}

/// How long one call may take, connecting included, before the client gives
/// up with a timeout error. Generous (the slowest calls hash passwords or
/// wait out a database outage), but bounded so a hung server fails a test
/// instead of hanging it.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// An HTTP client (reqwest: kept-alive connections, no proxy) so tests talk
/// to the server over real TCP like any other client. Clones share the
/// connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    addr: SocketAddr,
    http: reqwest::Client,
    pub token: Option<String>,
    pub headers: Vec<(String, String)>,
}

/// Everything but `A-Z a-z 0-9 - _ . ~` is escaped in a query's input.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode_component(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

/// `value` as a URL query value: in the superjson envelope for `?input=`
/// when `envelope`, as plain JSON otherwise (`?connectionParams=`).
pub fn url_json(value: &Value, envelope: bool) -> String {
    let text = if envelope {
        json!({ "json": value }).to_string()
    } else {
        value.to_string()
    };
    encode_component(&text)
}

impl Client {
    pub fn new(addr: SocketAddr) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("HTTP client");
        Self {
            addr,
            http,
            token: None,
            headers: Vec::new(),
        }
    }

    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub async fn raw(&self, method: &str, target: &str, body: Option<&str>) -> Response {
        self.try_raw(method, target, body)
            .await
            .expect("request over TCP")
    }

    /// [`Self::raw`] that reports a refused, reset, timed-out or unreadable
    /// exchange as an [`std::io::Error`] instead of panicking, for tests that
    /// kill or stop the server mid-call.
    pub async fn try_raw(
        &self,
        method: &str,
        target: &str,
        body: Option<&str>,
    ) -> std::io::Result<Response> {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let url = format!("http://{}{target}", self.addr);
        let mut request = self.http.request(method, url);
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        if let Some(b) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_owned());
        }
        let response = request.send().await.map_err(io_error)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let bytes = response.bytes().await.map_err(io_error)?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// [`Self::mutation`] that reports transport failures instead of panicking.
    pub async fn try_mutation(&self, path: &str, input: Value) -> std::io::Result<Response> {
        let body = json!({ "json": input }).to_string();
        self.try_raw("POST", &format!("/trpc/{path}"), Some(&body))
            .await
    }

    /// A mutation: `POST /trpc/<path>` with `{"json": input}`.
    pub async fn mutation(&self, path: &str, input: Value) -> Response {
        self.try_mutation(path, input)
            .await
            .expect("request over TCP")
    }

    /// `auth.me` with `token`.
    pub async fn me(&self, token: &str) -> Response {
        self.clone()
            .with_token(token)
            .query("auth.me", Value::Null)
            .await
    }

    /// `auth.refreshToken` presenting `token`.
    pub async fn refresh(&self, token: &str) -> Response {
        self.clone()
            .with_token(token)
            .mutation("auth.refreshToken", Value::Null)
            .await
    }

    /// A query: `GET /trpc/<path>?input=<{"json": input}>`.
    pub async fn query(&self, path: &str, input: Value) -> Response {
        let target = if input.is_null() {
            format!(
                "/trpc/{path}?input={}",
                encode_component(r#"{"json":null,"meta":{"values":["undefined"],"v":1}}"#)
            )
        } else {
            format!(
                "/trpc/{path}?input={}",
                encode_component(&json!({ "json": input }).to_string())
            )
        };
        self.raw("GET", &target, None).await
    }
}

/// A transport failure as the `io::Error` the tests match on: the kind of
/// the underlying socket error when there is one (refused, reset, ...),
/// `TimedOut` for a timeout, `Other` for the rest; the message keeps
/// reqwest's whole chain of causes.
fn io_error(error: reqwest::Error) -> std::io::Error {
    use std::error::Error as _;
    let mut kind = if error.is_timeout() {
        std::io::ErrorKind::TimedOut
    } else {
        std::io::ErrorKind::Other
    };
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            kind = io.kind();
        }
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    std::io::Error::new(kind, message)
}

/// Registers a user and returns `(token, user id)`.
pub async fn register(client: &Client, email: &str) -> (String, String) {
    let r = client
        .mutation(
            "auth.register",
            json!({ "email": email, "password": PASSWORD, "firstName": "Test", "lastName": "User" }),
        )
        .await;
    let data = r.data();
    (
        data["token"].as_str().expect("token").to_owned(),
        data["user"]["id"].as_str().expect("id").to_owned(),
    )
}

/// Logs in and returns the token.
pub async fn login(client: &Client, email: &str, password: &str) -> Response {
    client
        .mutation(
            "auth.login",
            json!({ "email": email, "password": password }),
        )
        .await
}

/// Logs in and returns just the token (the login must succeed).
pub async fn login_token(client: &Client, email: &str, password: &str) -> String {
    login(client, email, password).await.data()["token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// Creates an ADMIN directly in the database and returns a token for it.
pub async fn admin_token(server: &Server, email: &str) -> String {
    let db = gatehouse_auth::db::connect(&server.config.database_url())
        .await
        .expect("db");
    let hasher = gatehouse_auth::password::PasswordHasher::new(4).expect("hasher");
    let admin = gatehouse_auth::NewUser {
        email,
        password: PASSWORD,
        first_name: "Ada",
        last_name: "Admin",
        role: gatehouse::Role::Admin,
        username: None,
    };
    gatehouse_auth::create_user(&db, &hasher, admin)
        .await
        .expect("admin created");
    login_token(&server.client(), email, PASSWORD).await
}

/// The claims of a token, without checking anything.
pub fn claims(token: &str) -> Value {
    use base64_lite::decode_url;
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&decode_url(payload)).expect("claims JSON")
}

/// Minimal base64url decoding for reading token payloads in tests.
pub mod base64_lite {
    pub fn decode_url(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut acc = 0u32;
        let mut bits = 0;
        for c in s.bytes() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'-' | b'+' => 62,
                b'_' | b'/' => 63,
                _ => continue,
            };
            acc = (acc << 6) | u32::from(v);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        out
    }

    pub fn encode_url(data: &[u8]) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

/// A PostgreSQL server of the test's own (`tests/postgres.sh` in a private
/// state folder) that it may stop and start again to stage an outage,
/// without touching the shared server other tests use. Stopped and deleted
/// on drop.
pub struct PrivatePostgres {
    state_dir: PathBuf,
    pub admin_url: String,
}

impl PrivatePostgres {
    const SCRIPT: &'static str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/postgres.sh");

    /// Starts one; `None` (with a notice) when the PostgreSQL server
    /// binaries are missing, unless `GATEHOUSE_REQUIRE_POSTGRES=1`.
    pub fn start() -> Option<Self> {
        // Under /tmp itself: the server runs as the `postgres` user, which
        // cannot enter a root-owned private temp folder.
        let state_dir = PathBuf::from(format!(
            "/tmp/gatehouse-pg-private-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let out = std::process::Command::new("bash")
            .arg(Self::SCRIPT)
            .arg("start")
            .env("GATEHOUSE_PG_DIR", &state_dir)
            .output()
            .expect("run tests/postgres.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let url = stdout.lines().rev().find(|l| l.starts_with("postgres://"));
        match url {
            Some(url) if out.status.success() => Some(Self {
                admin_url: url.trim().to_owned(),
                state_dir,
            }),
            _ => {
                let why = String::from_utf8_lossy(&out.stderr);
                if std::env::var("GATEHOUSE_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                    panic!(
                        "GATEHOUSE_REQUIRE_POSTGRES=1 but a private PostgreSQL did not start: {why}"
                    );
                }
                eprintln!("skipping: no private PostgreSQL ({why})");
                None
            }
        }
    }

    fn script(&self, verb: &str) {
        let status = std::process::Command::new("bash")
            .arg(Self::SCRIPT)
            .arg(verb)
            .env("GATEHOUSE_PG_DIR", &self.state_dir)
            .status()
            .expect("run tests/postgres.sh");
        assert!(status.success(), "tests/postgres.sh {verb} failed");
    }

    /// Stops the server, keeping its data: clients see an outage.
    pub fn halt(&self) {
        self.script("halt");
    }

    /// Starts it again on the same port.
    pub fn resume(&self) {
        self.script("resume");
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(Self::SCRIPT)
            .arg("stop")
            .env("GATEHOUSE_PG_DIR", &self.state_dir)
            .status();
    }
}

/// A small SMTP server on a real loopback socket, enough of RFC 5321 for
/// lettre: any number of connections and messages, each message's DATA
/// kept. `delay` is waited before the greeting and before accepting each
/// message, like a real mail server's latency.
pub struct FakeSmtp {
    pub port: u16,
    pub messages: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSmtp {
    /// Listens on a new loopback port.
    pub async fn start(delay: std::time::Duration) -> FakeSmtp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind SMTP");
        Self::serve(listener, delay)
    }

    /// Listens on `port` (e.g. one that was closed until now).
    pub async fn start_on(port: u16, delay: std::time::Duration) -> FakeSmtp {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind SMTP port");
        Self::serve(listener, delay)
    }

    fn serve(listener: tokio::net::TcpListener, delay: std::time::Duration) -> FakeSmtp {
        let port = listener.local_addr().expect("addr").port();
        let messages = Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = messages.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let _ = smtp_session(stream, delay, store).await;
                });
            }
        });
        FakeSmtp {
            port,
            messages,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().expect("lock").clone()
    }

    /// Waits (10 s at most) for at least `n` messages.
    pub async fn wait(&self, n: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "expected {n} SMTP messages within 10 s, have {}",
                m.len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

async fn smtp_session(
    stream: TcpStream,
    delay: std::time::Duration,
    store: Arc<std::sync::Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    use tokio::io::AsyncBufReadExt;
    let (read, mut write) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(read).lines();
    tokio::time::sleep(delay).await;
    write.write_all(b"220 fake.test ESMTP ready\r\n").await?;
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            write
                .write_all(b"250-fake.test\r\n250 8BITMIME\r\n")
                .await?;
        } else if upper == "DATA" {
            write.write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            while let Some(l) = lines.next_line().await? {
                if l == "." {
                    break;
                }
                data.push_str(&l);
                data.push('\n');
            }
            tokio::time::sleep(delay).await;
            store.lock().expect("lock").push(data);
            write.write_all(b"250 2.0.0 queued\r\n").await?;
        } else if upper == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            write.write_all(b"250 OK\r\n").await?;
        }
    }
    Ok(())
}

/// The `gatehouse` binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// A command running the binary in `dir` with a clean environment (none of
/// the developer's settings leak in): quiet logs, the cheapest bcrypt, a
/// free port; killed when dropped.
pub fn binary(dir: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.current_dir(dir).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("RUST_LOG", "error")
        .env("BCRYPT_COST", "4")
        .env("GATEHOUSE_ADDR", "127.0.0.1:0")
        .kill_on_drop(true);
    cmd
}

/// Runs a command of the binary (`migrate`, `users create`, `keys …`) to its
/// end, with `stdin` piped in (then closed), within 60 s: whether it
/// succeeded, its stdout and its stderr.
pub async fn run_to_end(
    mut cmd: tokio::process::Command,
    stdin: Option<&str>,
) -> (bool, String, String) {
    use std::process::Stdio;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).await.expect("write stdin");
    }
    drop(child.stdin.take());
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("finished in time")
        .expect("output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Reads the binary's one stdout line, `gatehouse listening on
/// http://…`, within 60 s: the address it listens on.
pub async fn listening_addr(stdout: tokio::process::ChildStdout) -> SocketAddr {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
        .await
        .expect("server printed its address in time")
        .expect("read stdout")
        .expect("a line on stdout");
    line.strip_prefix("gatehouse listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .parse()
        .expect("socket address")
}

/// Spawns `cmd` (the binary, or a shell that `exec`s it) and waits for its
/// `gatehouse listening on http://…` line.
pub async fn spawn_listening(
    mut cmd: tokio::process::Command,
) -> (tokio::process::Child, SocketAddr) {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn gatehouse");
    let stdout = child.stdout.take().expect("stdout");
    let addr = listening_addr(stdout).await;
    (child, addr)
}
