//! Every setting of `docs/api.md#settings`, from flags or the environment (names exactly
//! as documented), and its checks at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::{Args, FromArgMatches};
use ipnet::IpNet;
use url::Url;

use crate::limits::parse_trusted;

/// Server settings. Each flag also reads the environment variable of the same
/// name in `docs/api.md#settings`, so containers can be configured without flags.
/// Grouped by what they configure; each group turns its values into its part
/// of the framework's configuration, and `--help` lists each group under its
/// own heading.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Where the default database, JWT secret and outbox live.
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_DATA_DIR",
        value_name = "GATEHOUSE_DATA_DIR",
        default_value = "./data"
    )]
    pub data_dir: PathBuf,

    /// bcrypt cost factor.
    #[arg(long, global = true, env = "BCRYPT_COST", value_name = "BCRYPT_COST", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(4..=31))]
    pub bcrypt_cost: u32,

    /// Creates this ADMIN at start if no ADMIN exists (with the password below).
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_ADMIN_EMAIL",
        value_name = "GATEHOUSE_ADMIN_EMAIL"
    )]
    pub admin_email: Option<String>,

    /// Password of the first ADMIN: from `GATEHOUSE_ADMIN_PASSWORD` only,
    /// never a flag (flags show up in `ps`).
    #[arg(skip)]
    pub admin_password: Option<String>,

    #[command(flatten)]
    pub http: HttpConfig,

    #[command(flatten)]
    pub tokens: TokenConfig,

    #[command(flatten)]
    pub database: DatabaseConfig,

    #[command(flatten)]
    pub mail: MailConfig,

    #[command(flatten)]
    pub cookies: CookieConfig,

    #[command(flatten)]
    pub limits: LimitsConfig,
}

/// The listener, the HTTP adapter (CORS, batches, timeouts, subscriptions, REST
/// prefix, API page) and the limits on client connections.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "HTTP")]
pub struct HttpConfig {
    /// Listen address (port 0 picks a free port).
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_ADDR",
        value_name = "GATEHOUSE_ADDR",
        default_value = "127.0.0.1:3000"
    )]
    pub addr: SocketAddr,

    /// Public base URL of this service (e.g. `https://auth.example.com`),
    /// for `jwks_uri` in `/.well-known/openid-configuration`; default: taken
    /// from each request's `Host`.
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_PUBLIC_URL",
        value_name = "GATEHOUSE_PUBLIC_URL"
    )]
    pub public_url: Option<String>,

    /// Request body limit in bytes.
    #[arg(long, global = true, env = "GATEHOUSE_BODY_LIMIT", value_name = "GATEHOUSE_BODY_LIMIT",
          default_value_t = u64::from(gatehouse::http::DEFAULT_BODY_LIMIT), value_parser = clap::value_parser!(u64).range(1..=1_073_741_824))]
    pub body_limit: u64,

    /// Allowed CORS origins: comma-separated, or `*`; none by default.
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_CORS_ORIGINS",
        value_name = "GATEHOUSE_CORS_ORIGINS"
    )]
    pub cors_origins: Option<String>,

    /// Accept POST for queries too, for clients using the links'
    /// `methodOverride: 'POST'` (tRPC's `allowMethodOverride`); off by default.
    #[arg(long, global = true, env = "GATEHOUSE_ALLOW_METHOD_OVERRIDE",
          value_name = "GATEHOUSE_ALLOW_METHOD_OVERRIDE", default_value_t = false,
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_method_override: bool,

    /// Most calls one batch request may carry; larger batches are refused.
    #[arg(long, global = true, env = "GATEHOUSE_MAX_BATCH_SIZE", value_name = "GATEHOUSE_MAX_BATCH_SIZE",
          default_value_t = gatehouse::http::DEFAULT_MAX_BATCH_SIZE, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_batch_size: u32,

    /// Seconds a request may take before it is answered with TIMEOUT.
    #[arg(long, global = true, env = "GATEHOUSE_REQUEST_TIMEOUT", value_name = "GATEHOUSE_REQUEST_TIMEOUT",
          default_value_t = Secs::new(gatehouse::http::DEFAULT_REQUEST_TIMEOUT_SECS), value_parser = clap::value_parser!(u64).range(1..=3600).map(Secs::new))]
    pub request_timeout: Secs,

    /// Milliseconds without an event after which a subscription stream gets
    /// a `ping` event, so proxies and clients see it is alive; 0 sends none.
    #[arg(long, global = true, env = "GATEHOUSE_SSE_PING_MS", value_name = "GATEHOUSE_SSE_PING_MS",
          default_value_t = Millis::new(gatehouse::http::DEFAULT_SSE_PING_MS), value_parser = clap::value_parser!(u64).range(0..=3_600_000).map(Millis::new))]
    pub sse_ping_ms: Millis,

    /// Most subscription streams (e.g. `auth.events`) open at once.
    #[arg(long, global = true, env = "GATEHOUSE_MAX_SUBSCRIPTIONS", value_name = "GATEHOUSE_MAX_SUBSCRIPTIONS",
          default_value_t = gatehouse::http::DEFAULT_MAX_SUBSCRIPTIONS, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub max_subscriptions: u32,

    /// Most subscription streams one user (or, signed out, one address) may
    /// hold open at once.
    #[arg(long, global = true, env = "GATEHOUSE_MAX_SUBSCRIPTIONS_PER_USER", value_name = "GATEHOUSE_MAX_SUBSCRIPTIONS_PER_USER",
          default_value_t = gatehouse::http::DEFAULT_MAX_SUBSCRIPTIONS_PER_CALLER, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_subscriptions_per_user: u32,

    /// Where the REST routes (plain JSON beside `/trpc`, e.g. `POST
    /// /api/auth/login`) are served, such as `/api/1`; `off` serves none.
    #[arg(long, global = true, env = "GATEHOUSE_REST_PREFIX", value_name = "GATEHOUSE_REST_PREFIX",
          default_value = gatehouse::http::DEFAULT_REST_PREFIX)]
    pub rest_prefix: String,

    /// Serve the API reference page at `/docs` (Swagger UI over
    /// `/openapi.json`, every file from the binary); `off` drops the page.
    #[arg(long, global = true, env = "GATEHOUSE_DOCS", value_name = "GATEHOUSE_DOCS", default_value_t = true,
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub docs: bool,

    /// Seconds a client has to send a request's head (request line and
    /// headers) once it starts; slower heads get 408 and are closed.
    #[arg(long, global = true, env = "GATEHOUSE_HEADER_TIMEOUT", value_name = "GATEHOUSE_HEADER_TIMEOUT",
          default_value_t = Secs::new(gatehouse::connections::DEFAULT_HEADER_TIMEOUT_SECS), value_parser = clap::value_parser!(u64).range(1..=3600).map(Secs::new))]
    pub header_timeout: Secs,

    /// Seconds a kept-alive connection may sit idle (no request in flight,
    /// no bytes moving) before it is closed.
    #[arg(long, global = true, env = "GATEHOUSE_IDLE_TIMEOUT", value_name = "GATEHOUSE_IDLE_TIMEOUT",
          default_value_t = Secs::new(gatehouse::connections::DEFAULT_IDLE_TIMEOUT_SECS), value_parser = clap::value_parser!(u64).range(1..=86_400).map(Secs::new))]
    pub idle_timeout: Secs,

    /// Most client connections open at once; more are closed as soon as they
    /// are accepted. Default: the open-files limit (raised to its hard limit
    /// at start) less 128 kept for the database, files and logs.
    #[arg(long, global = true, env = "GATEHOUSE_MAX_CONNECTIONS", value_name = "GATEHOUSE_MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_connections: Option<u64>,
}

/// How tokens are signed, verified and refreshed, and where the keys come from.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Tokens")]
pub struct TokenConfig {
    /// HS256 signing secret, at least 32 bytes; generated and kept in
    /// `<data-dir>/jwt.secret` when unset.
    #[arg(
        long,
        global = true,
        env = "JWT_SECRET",
        value_name = "JWT_SECRET",
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,

    /// How tokens are signed: `HS256` (with `JWT_SECRET`), or `EdDSA`,
    /// `ES256`, `RS256` with a key set whose public keys are served at
    /// `/.well-known/jwks.json` (see `docs/keys.md`).
    #[arg(
        long,
        global = true,
        env = "JWT_ALGORITHM",
        value_name = "JWT_ALGORITHM",
        default_value = "HS256",
        ignore_case = true
    )]
    pub jwt_algorithm: crate::keys::SigningAlg,

    /// PEM private key that signs tokens (EdDSA, ES256 or RS256), instead of
    /// the key set kept in the database.
    #[arg(
        long,
        global = true,
        env = "JWT_PRIVATE_KEY_FILE",
        value_name = "JWT_PRIVATE_KEY_FILE"
    )]
    pub jwt_private_key_file: Option<PathBuf>,

    /// Folder of PEM private keys (`*.pem`) that verify tokens, instead of
    /// the key set kept in the database; the last by file name signs unless
    /// `JWT_PRIVATE_KEY_FILE` names another.
    #[arg(long, global = true, env = "JWT_KEYS_DIR", value_name = "JWT_KEYS_DIR")]
    pub jwt_keys_dir: Option<PathBuf>,

    /// Secret (at least 32 bytes) the private keys of the key set are
    /// encrypted with in the database; default: the JWT secret.
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_KEY_ENCRYPTION_SECRET",
        value_name = "GATEHOUSE_KEY_ENCRYPTION_SECRET",
        hide_env_values = true
    )]
    pub key_encryption_secret: Option<String>,

    /// Seconds between reloads of the key set from the database, so a
    /// rotation on one instance reaches the others (a token with an unknown
    /// `kid` also triggers a reload, at most once a second).
    #[arg(long, global = true, env = "GATEHOUSE_KEYS_RELOAD", value_name = "GATEHOUSE_KEYS_RELOAD",
          default_value_t = Secs::new(30), value_parser = clap::value_parser!(u64).range(1..=3600).map(Secs::new))]
    pub keys_reload: Secs,

    /// Access-token lifetime in seconds.
    #[arg(long, global = true, env = "JWT_TTL", value_name = "JWT_TTL", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub jwt_ttl: u64,

    /// Absolute refresh window of a session, in seconds from its start.
    #[arg(long, global = true, env = "JWT_REFRESH_TTL", value_name = "JWT_REFRESH_TTL", default_value_t = 1_209_600,
          value_parser = clap::value_parser!(u64).range(1..=315_360_000))]
    pub jwt_refresh_ttl: u64,

    /// The `iss` claim written and required.
    #[arg(
        long,
        global = true,
        env = "JWT_ISSUER",
        value_name = "JWT_ISSUER",
        default_value = "gatehouse"
    )]
    pub jwt_issuer: String,

    /// Clock skew tolerated on a token's `exp` and `nbf`, in seconds
    /// (0..=60), for instances whose clocks drift apart. 0: a token is
    /// refused from the very millisecond it expires.
    #[arg(long, global = true, env = "JWT_LEEWAY", value_name = "JWT_LEEWAY", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=60))]
    pub jwt_leeway: u64,

    /// How long a token replaced by refresh keeps working, in seconds (0..=10),
    /// so parallel refreshes from several tabs do not log the user out.
    #[arg(long, global = true, env = "GATEHOUSE_REFRESH_GRACE", value_name = "GATEHOUSE_REFRESH_GRACE", default_value_t = Secs::new(10),
          value_parser = clap::value_parser!(u64).range(0..=10).map(Secs::new))]
    pub refresh_grace: Secs,
}

/// Which database, and how its connection pool and health probe behave.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseConfig {
    /// `sqlite://./rel.db`, `sqlite:///abs.db` or `postgres://…`; default
    /// `sqlite://<data-dir>/gatehouse.db`.
    #[arg(long, global = true, env = "DATABASE_URL", value_name = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Longest wait for a pooled database connection, in milliseconds. A busy
    /// pool waits this long; calls already waiting when the database goes
    /// away fail after it at most.
    #[arg(long, global = true, env = "GATEHOUSE_DB_ACQUIRE_TIMEOUT_MS", value_name = "GATEHOUSE_DB_ACQUIRE_TIMEOUT_MS",
          default_value_t = Millis::new(2_000), value_parser = clap::value_parser!(u64).range(100..=600_000).map(Millis::new))]
    pub db_acquire_timeout_ms: Millis,

    /// Most pooled database connections this process keeps. Default: 16 on
    /// PostgreSQL (a server shared by several instances must not run out of
    /// its `max_connections`), the allowed cores plus one on SQLite (reads
    /// are CPU-bound there, more connections only add wake-ups). On
    /// PostgreSQL more connections than the database's cores only queue
    /// inside the database; `bench/README.md` has measured sizes.
    #[arg(long, global = true, env = "GATEHOUSE_DB_MAX_CONNECTIONS", value_name = "GATEHOUSE_DB_MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub db_max_connections: Option<u32>,

    /// How long the PostgreSQL health probe waits for a connection or a
    /// ping, in milliseconds, before it calls the database unreachable (and
    /// calls answer SERVICE_UNAVAILABLE at once until it is back).
    #[arg(long, global = true, env = "GATEHOUSE_DB_CONNECT_TIMEOUT_MS", value_name = "GATEHOUSE_DB_CONNECT_TIMEOUT_MS",
          default_value_t = Millis::new(500), value_parser = clap::value_parser!(u64).range(50..=60_000).map(Millis::new))]
    pub db_connect_timeout_ms: Millis,
}

/// Where mail goes, what it links to, and how the outbox worker sends it.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Mail")]
pub struct MailConfig {
    /// Folder for outgoing mail (`.eml` files) when SMTP is not configured;
    /// default `<data-dir>/outbox`.
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_OUTBOX_DIR",
        value_name = "GATEHOUSE_OUTBOX_DIR"
    )]
    pub outbox_dir: Option<PathBuf>,

    /// `smtp://user:pass@host:587` (or `smtps://…`) for real delivery.
    #[arg(
        long,
        global = true,
        env = "SMTP_URL",
        value_name = "SMTP_URL",
        hide_env_values = true
    )]
    pub smtp_url: Option<String>,

    /// Sender of outgoing mail.
    #[arg(long, global = true, env = "MAIL_FROM", value_name = "MAIL_FROM", default_value = crate::mail::DEFAULT_FROM)]
    pub mail_from: String,

    /// Base of the link in reset mails; `token` and `email` are appended.
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_RESET_URL",
        value_name = "GATEHOUSE_RESET_URL",
        default_value = "http://localhost:3000/reset-password"
    )]
    pub reset_url: String,

    /// Whether this instance runs the mail worker that sends queued mail.
    /// Every instance queues mail in the shared database; with several
    /// instances any one (or all) may send it.
    #[arg(long, global = true, env = "GATEHOUSE_MAIL_WORKER",
          value_name = "GATEHOUSE_MAIL_WORKER", default_value_t = true,
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub mail_worker: bool,

    /// Seconds between the mail worker's looks at the outbox for mail queued
    /// by other instances or due for a retry (mail queued by this instance
    /// wakes it at once).
    #[arg(long, global = true, env = "GATEHOUSE_MAIL_POLL", value_name = "GATEHOUSE_MAIL_POLL",
          default_value_t = Secs::new(1), value_parser = clap::value_parser!(u64).range(1..=60).map(Secs::new))]
    pub mail_poll: Secs,

    /// Seconds before a failed mail is retried; doubled for every further
    /// attempt (at most an hour).
    #[arg(long, global = true, env = "GATEHOUSE_MAIL_RETRY_DELAY", value_name = "GATEHOUSE_MAIL_RETRY_DELAY",
          default_value_t = Secs::new(5), value_parser = clap::value_parser!(u64).range(1..=3600).map(Secs::new))]
    pub mail_retry_delay: Secs,

    /// Send attempts before a mail is given up (logged as an error and
    /// counted in `gatehouse_mail_failed_total`). With the default retry
    /// delay, 10 attempts span about 43 minutes: most of a reset token's
    /// hour, so a mail server outage that long still delivers.
    #[arg(long, global = true, env = "GATEHOUSE_MAIL_MAX_ATTEMPTS", value_name = "GATEHOUSE_MAIL_MAX_ATTEMPTS",
          default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub mail_max_attempts: u32,

    /// Seconds one send may take before it counts as a failed attempt.
    #[arg(long, global = true, env = "GATEHOUSE_MAIL_SEND_TIMEOUT", value_name = "GATEHOUSE_MAIL_SEND_TIMEOUT",
          default_value_t = Secs::new(30), value_parser = clap::value_parser!(u64).range(1..=600).map(Secs::new))]
    pub mail_send_timeout: Secs,
}

/// The httpOnly session cookie for browsers (`docs/cookies.md`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Cookies")]
pub struct CookieConfig {
    /// httpOnly cookie sessions for browsers (`docs/cookies.md`): `off`,
    /// `opt-in` (requests sending `x-gatehouse-session: cookie` get the token
    /// in a cookie) or `always` (every request that passes the CSRF checks,
    /// unless it sends `x-gatehouse-session: bearer`).
    #[arg(long, global = true, env = "GATEHOUSE_COOKIE_MODE", value_name = "GATEHOUSE_COOKIE_MODE",
          value_enum, default_value_t = crate::cookies::CookieMode::OptIn)]
    pub cookie_mode: crate::cookies::CookieMode,

    /// Name of the session cookie.
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_COOKIE_NAME",
        value_name = "GATEHOUSE_COOKIE_NAME",
        default_value = "gatehouse_session"
    )]
    pub cookie_name: String,

    /// `Domain` of the session cookie; unset (the default) scopes it to the
    /// API's own host.
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_COOKIE_DOMAIN",
        value_name = "GATEHOUSE_COOKIE_DOMAIN"
    )]
    pub cookie_domain: Option<String>,

    /// `SameSite` of the session cookie: `strict`, `lax` or `none`.
    #[arg(long, global = true, env = "GATEHOUSE_COOKIE_SAMESITE", value_name = "GATEHOUSE_COOKIE_SAMESITE",
          value_enum, default_value_t = crate::cookies::CookieSameSite::Lax)]
    pub cookie_samesite: crate::cookies::CookieSameSite,
}

/// Login lock-outs and which proxies are believed about the client address.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitsConfig {
    /// Failed logins per account within the window before it is locked.
    #[arg(long, global = true, env = "GATEHOUSE_LOGIN_MAX_FAILURES", value_name = "GATEHOUSE_LOGIN_MAX_FAILURES",
          default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub login_max_failures: u32,

    /// Failure-counting window and lock time, in seconds.
    #[arg(long, global = true, env = "GATEHOUSE_LOGIN_WINDOW", value_name = "GATEHOUSE_LOGIN_WINDOW",
          default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub login_window: u64,

    /// Failed logins per client address within the window before it is locked.
    #[arg(long, global = true, env = "GATEHOUSE_IP_MAX_FAILURES", value_name = "GATEHOUSE_IP_MAX_FAILURES",
          default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub ip_max_failures: u32,

    /// Proxies (IPs or CIDRs, comma-separated) whose `X-Forwarded-For` is
    /// believed when working out the client address.
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_TRUSTED_PROXIES",
        value_name = "GATEHOUSE_TRUSTED_PROXIES"
    )]
    pub trusted_proxies: Option<String>,
}

/// Durations the settings give as whole numbers of one unit (`Secs`,
/// `Millis`), as `docs/api.md#settings` documents them. clap parses them
/// once with its ranged `u64` parser mapped to the type, so a bad or
/// out-of-range value gets the same error as a plain number would, and
/// `Display` prints the number again, so `--help` shows the same default;
/// the program only ever sees the `Duration`.
macro_rules! duration_setting {
    ($(#[$doc:meta])* $name:ident, $from:ident, $as:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(Duration);

        impl $name {
            /// The duration of `n` units.
            pub const fn new(n: u64) -> Self {
                Self(Duration::$from(n))
            }

            /// The duration itself.
            pub const fn get(self) -> Duration {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0.$as())
            }
        }
    };
}

duration_setting!(
    /// A duration set in whole seconds.
    Secs,
    from_secs,
    as_secs
);
duration_setting!(
    /// A duration set in whole milliseconds.
    Millis,
    from_millis,
    as_millis
);

/// A setting that stops the start, named as in `docs/api.md#settings`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("JWT_SECRET must be at least 32 bytes long (it has {0})")]
    SecretTooShort(usize),
    #[error("JWT_SECRET: could not read or create {path}: {source}")]
    SecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("GATEHOUSE_TRUSTED_PROXIES: {0}")]
    TrustedProxies(#[from] crate::limits::IpNetError),
    #[error("GATEHOUSE_CORS_ORIGINS: {0}")]
    CorsOrigin(#[from] gatehouse::http::CorsOriginError),
    #[error("GATEHOUSE_ADMIN_EMAIL and GATEHOUSE_ADMIN_PASSWORD must be set together")]
    AdminPair,
    #[error("GATEHOUSE_RESET_URL must be an http(s) URL, got {0:?}")]
    ResetUrl(String),
    #[error("GATEHOUSE_KEY_ENCRYPTION_SECRET must be at least 32 bytes long (it has {0})")]
    KeyEncryptionSecretTooShort(usize),
    #[error("GATEHOUSE_PUBLIC_URL must be an http(s) URL, got {0:?}")]
    PublicUrl(String),
    #[error(
        "JWT_PRIVATE_KEY_FILE / JWT_KEYS_DIR need an asymmetric JWT_ALGORITHM (EdDSA, ES256 or RS256)"
    )]
    KeyFilesWithHs256,
    #[error("JWT_ISSUER must not be empty")]
    Issuer,
    #[error(
        "GATEHOUSE_COOKIE_NAME must be a cookie name (letters, digits, ! # $ % & ' * + - . ^ _ ` | ~), got {0:?}"
    )]
    CookieName(String),
    #[error(
        "GATEHOUSE_REST_PREFIX must be `off` or a path like /api or /api/1 (letters, digits, - _ . between slashes, not /trpc, /healthz, /readyz, /metrics, /docs or /openapi.json), got {0:?}"
    )]
    RestPrefix(String),
}

impl Config {
    /// Every setting at its default, for tests and apps that embed the
    /// service. The defaults live only in the `#[arg]` attributes above, so
    /// this asks clap for them by parsing an empty command line rather than
    /// repeating them in a `Default` impl that could drift. The environment
    /// is deliberately not read (every argument's `env` is dropped first):
    /// a `GATEHOUSE_*` variable left in a developer's shell must not change
    /// what a test runs with. `admin_password` (never a flag) is `None`.
    ///
    /// # Panics
    ///
    /// If a `default_value` fails its own value parser, a bug the tests of
    /// this module catch.
    pub fn defaults() -> Self {
        let command = Self::augment_args(clap::Command::new("gatehouse"))
            .mut_args(|arg| arg.env(None::<&str>));
        command
            .try_get_matches_from(["gatehouse"])
            .and_then(|matches| Self::from_arg_matches(&matches))
            .expect("the #[arg] defaults of Config parse")
    }

    /// Treats settings set to an empty string (`DATABASE_URL=`) as unset, as
    /// shells and compose files often export empty variables.
    pub fn normalized(mut self) -> Self {
        fn clean(v: &mut Option<String>) {
            if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
                *v = None;
            }
        }
        fn clean_path(v: &mut Option<PathBuf>) {
            if v.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                *v = None;
            }
        }
        for v in [
            &mut self.database.database_url,
            &mut self.admin_email,
            &mut self.admin_password,
            &mut self.mail.smtp_url,
            &mut self.http.cors_origins,
            &mut self.limits.trusted_proxies,
            &mut self.tokens.key_encryption_secret,
            &mut self.http.public_url,
        ] {
            clean(v);
        }
        for path in [
            &mut self.tokens.jwt_private_key_file,
            &mut self.tokens.jwt_keys_dir,
            &mut self.mail.outbox_dir,
        ] {
            clean_path(path);
        }
        self
    }

    /// The database URL, defaulting to a SQLite file in the data folder.
    pub fn database_url(&self) -> String {
        self.database
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("gatehouse.db").display()))
    }

    /// The outbox folder, defaulting to `<data-dir>/outbox`.
    pub fn outbox_dir(&self) -> PathBuf {
        self.mail
            .outbox_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("outbox"))
    }

    /// Checks what clap cannot (cross-field and format rules), in a fixed
    /// order so a start with several bad settings always names the same
    /// one first, and returns what the checked strings parse into, so the
    /// start-up uses these values instead of parsing the strings again.
    pub fn validate(&self) -> Result<Checked, ConfigError> {
        let trusted_proxies = self.limits.trusted_proxies()?;
        let cors = self.http.cors()?;
        let cookies = self
            .cookies
            .settings(&cors, Duration::from_secs(self.tokens.jwt_refresh_ttl))?;
        if self.admin_email.is_some() != self.admin_password.is_some() {
            return Err(ConfigError::AdminPair);
        }
        let reset_url = self.mail.reset_url()?;
        let public_url = self.http.public_url()?;
        let rest_prefix = self.http.rest_prefix()?;
        self.tokens.validate()?;
        Ok(Checked {
            trpc: self.http.trpc(cors, rest_prefix, self.cookies.cookie_mode),
            cookies,
            trusted_proxies,
            reset_url,
            public_url,
        })
    }

    /// The signing secret: `JWT_SECRET`, or the one kept in
    /// `<data-dir>/jwt.secret` (created with mode 0600 on first start).
    pub fn load_secret(&self) -> Result<Vec<u8>, ConfigError> {
        if let Some(secret) = &self.tokens.jwt_secret {
            if secret.len() < 32 {
                return Err(ConfigError::SecretTooShort(secret.len()));
            }
            return Ok(secret.as_bytes().to_vec());
        }
        let path = self.data_dir.join("jwt.secret");
        let err = |source| ConfigError::SecretFile {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(s) if s.trim().len() >= 32 => {
                tracing::warn!(path = %path.display(),
                    "JWT_SECRET is not set; using the secret kept in this file");
                return Ok(s.trim().as_bytes().to_vec());
            }
            Ok(s) => return Err(ConfigError::SecretTooShort(s.trim().len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        std::fs::create_dir_all(&self.data_dir).map_err(err)?;
        let mut raw = [0u8; 48];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
        let secret = hex::encode(raw);
        write_private(&path, secret.as_bytes()).map_err(err)?;
        tracing::warn!(path = %path.display(),
            "JWT_SECRET is not set; generated a new secret and saved it to this file \
             (set JWT_SECRET when running several instances)");
        Ok(secret.into_bytes())
    }
}

/// What the settings that are strings on the command line (origins, CIDRs,
/// URLs, the REST prefix, the cookie name) become once
/// [`Config::validate`] has checked them: each parsed once at start, and
/// built into the framework's and the service's own configuration.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The HTTP adapter's settings, CORS origins and REST prefix included.
    pub trpc: gatehouse::http::TrpcConfig,
    /// The session cookie, living as long as the refresh window, its CSRF
    /// checks allowing the listed CORS origins.
    pub cookies: crate::cookies::CookieSettings,
    /// `GATEHOUSE_TRUSTED_PROXIES`.
    pub trusted_proxies: Vec<IpNet>,
    /// `GATEHOUSE_RESET_URL`.
    pub reset_url: Url,
    /// `GATEHOUSE_PUBLIC_URL`, when set.
    pub public_url: Option<Url>,
}

impl HttpConfig {
    /// `GATEHOUSE_PUBLIC_URL`, an http(s) URL when set.
    pub fn public_url(&self) -> Result<Option<Url>, ConfigError> {
        let Some(raw) = &self.public_url else {
            return Ok(None);
        };
        let refused = || ConfigError::PublicUrl(raw.clone());
        let url = Url::parse(raw).map_err(|_| refused())?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(refused());
        }
        Ok(Some(url))
    }

    /// `GATEHOUSE_CORS_ORIGINS` for the HTTP layer, read by the framework's
    /// own parser so the binary accepts exactly what the framework documents.
    pub fn cors(&self) -> Result<gatehouse::http::CorsOrigins, ConfigError> {
        Ok(self.cors_origins.as_deref().unwrap_or_default().parse()?)
    }

    /// `GATEHOUSE_REST_PREFIX`: `None` for `off`.
    pub fn rest_prefix(&self) -> Result<Option<String>, ConfigError> {
        let prefix = self.rest_prefix.trim();
        if prefix.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let refuse = || ConfigError::RestPrefix(prefix.to_owned());
        let rest = prefix.strip_prefix('/').ok_or_else(refuse)?;
        let segments_ok = rest.split('/').all(|segment| {
            !segment.is_empty()
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        });
        let first = rest.split('/').next().unwrap_or_default();
        if !segments_ok
            || matches!(
                first,
                "trpc" | "healthz" | "readyz" | "metrics" | "docs" | "openapi.json"
            )
        {
            return Err(refuse());
        }
        Ok(Some(prefix.to_owned()))
    }

    /// The HTTP adapter's settings, from the checked `cors_origins` and
    /// `rest_prefix` ([`Self::cors`], [`Self::rest_prefix`]). With cookie
    /// sessions on (`cookie_mode`), the listed CORS origins may send
    /// credentials and `x-gatehouse-session`.
    fn trpc(
        &self,
        cors_origins: gatehouse::http::CorsOrigins,
        rest_prefix: Option<String>,
        cookie_mode: crate::cookies::CookieMode,
    ) -> gatehouse::http::TrpcConfig {
        let cookies = cookie_mode != crate::cookies::CookieMode::Off;
        gatehouse::http::TrpcConfig {
            body_limit: usize::try_from(self.body_limit).unwrap_or(usize::MAX),
            cors_credentials: cookies
                && matches!(cors_origins, gatehouse::http::CorsOrigins::List(_)),
            cors_extra_headers: if cookies {
                vec![crate::cookies::session_header()]
            } else {
                Vec::new()
            },
            cors_origins,
            allow_method_override: self.allow_method_override,
            max_batch_size: usize::try_from(self.max_batch_size).unwrap_or(usize::MAX),
            request_timeout: self.request_timeout.get(),
            rest_prefix,
            docs: self.docs,
            subscriptions: gatehouse::http::SubscriptionConfig {
                ping_interval: Some(self.sse_ping_ms.get()).filter(|ping| !ping.is_zero()),
                reconnect_after_inactivity: None,
                max_open: usize::try_from(self.max_subscriptions).unwrap_or(usize::MAX),
                max_per_caller: usize::try_from(self.max_subscriptions_per_user)
                    .unwrap_or(usize::MAX),
            },
            ..Default::default()
        }
    }

    /// What each client connection may hold of the server. Call after
    /// [`gatehouse::connections::raise_fd_limit`], so the default cap is
    /// taken from the raised limit.
    pub fn connection_limits(&self) -> gatehouse::server::ConnectionLimits {
        gatehouse::server::ConnectionLimits {
            header_timeout: self.header_timeout.get(),
            idle_timeout: self.idle_timeout.get(),
            max_connections: self
                .max_connections
                .map_or_else(gatehouse::connections::default_max_connections, |n| {
                    usize::try_from(n).unwrap_or(usize::MAX)
                }),
        }
    }
}

impl TokenConfig {
    /// The token settings' own rules (secret lengths, key files only with
    /// an asymmetric algorithm, an issuer).
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(secret) = &self.key_encryption_secret
            && secret.len() < 32
        {
            return Err(ConfigError::KeyEncryptionSecretTooShort(secret.len()));
        }
        if !self.jwt_algorithm.is_asymmetric()
            && (self.jwt_private_key_file.is_some() || self.jwt_keys_dir.is_some())
        {
            return Err(ConfigError::KeyFilesWithHs256);
        }
        if self.jwt_issuer.trim().is_empty() {
            return Err(ConfigError::Issuer);
        }
        if let Some(secret) = &self.jwt_secret
            && secret.len() < 32
        {
            return Err(ConfigError::SecretTooShort(secret.len()));
        }
        Ok(())
    }

    /// The secret the key set's private keys are sealed with in the
    /// database: `GATEHOUSE_KEY_ENCRYPTION_SECRET`, else the JWT secret
    /// (`jwt_secret`, from [`Config::load_secret`]), which every instance
    /// already shares (it seals queued mail too), so nothing new has to be
    /// distributed. A secret of its own keeps the two apart, e.g. to change
    /// `JWT_SECRET` without losing the key set.
    pub fn key_encryption_secret(&self, jwt_secret: &[u8]) -> Result<Vec<u8>, ConfigError> {
        match &self.key_encryption_secret {
            Some(s) if s.len() < 32 => Err(ConfigError::KeyEncryptionSecretTooShort(s.len())),
            Some(s) => Ok(s.as_bytes().to_vec()),
            None => Ok(jwt_secret.to_vec()),
        }
    }

    /// How long a retired signing key keeps verifying, in milliseconds: the
    /// longest a token it signed can still be presented (its lifetime, or the
    /// refresh window for `auth.refreshToken`, whichever is longer), plus the
    /// leeway.
    pub fn key_window_ms(&self) -> i64 {
        let secs = self
            .jwt_ttl
            .max(self.jwt_refresh_ttl)
            .saturating_add(self.jwt_leeway);
        i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX / 4)
    }
}

impl MailConfig {
    /// `GATEHOUSE_RESET_URL`, parsed at start-up so a malformed base stops
    /// the start instead of mailing broken links. Only http(s): the link is
    /// opened in a browser.
    pub fn reset_url(&self) -> Result<Url, ConfigError> {
        let refused = || ConfigError::ResetUrl(self.reset_url.clone());
        let url = Url::parse(&self.reset_url).map_err(|_| refused())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refused());
        }
        Ok(url)
    }

    /// The mail outbox worker's settings; queued bodies are encrypted with
    /// a key derived from the JWT `secret` ([`Config::load_secret`]).
    pub fn outbox(&self, secret: &[u8]) -> crate::outbox::OutboxSettings {
        crate::outbox::OutboxSettings {
            key: crate::outbox::MailKey::derive(secret),
            worker: self.mail_worker,
            poll: self.mail_poll.get(),
            retry_delay: self.mail_retry_delay.get(),
            max_attempts: self.mail_max_attempts,
            send_timeout: self.mail_send_timeout.get(),
            max_age: crate::outbox::MAX_AGE,
        }
    }
}

impl CookieConfig {
    /// The session cookie's settings, living `max_age` (the refresh
    /// window). Its CSRF checks allow the `cors` origins when they are a
    /// list; with `*` only the API's own origin may change anything by
    /// cookie (browsers never send credentials to `*`).
    pub fn settings(
        &self,
        cors: &gatehouse::http::CorsOrigins,
        max_age: Duration,
    ) -> Result<crate::cookies::CookieSettings, ConfigError> {
        let name = self.cookie_name.trim();
        let token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(token_char) {
            return Err(ConfigError::CookieName(self.cookie_name.clone()));
        }
        let allowed_origins = match cors {
            gatehouse::http::CorsOrigins::List(list) => list.clone(),
            gatehouse::http::CorsOrigins::None | gatehouse::http::CorsOrigins::Any => Vec::new(),
        };
        Ok(crate::cookies::CookieSettings {
            mode: self.cookie_mode,
            name: name.to_owned(),
            domain: self
                .cookie_domain
                .as_deref()
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
            same_site: self.cookie_samesite,
            max_age,
            allowed_origins,
        })
    }
}

impl LimitsConfig {
    /// Parsed `GATEHOUSE_TRUSTED_PROXIES`.
    pub fn trusted_proxies(&self) -> Result<Vec<IpNet>, ConfigError> {
        Ok(match &self.trusted_proxies {
            Some(list) => parse_trusted(list)?,
            None => Vec::new(),
        })
    }
}

/// Writes a file readable only by its owner.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(tweak: impl FnOnce(&mut Config)) -> Config {
        let mut config = Config::defaults();
        tweak(&mut config);
        config
    }

    #[test]
    fn defaults_pass_the_start_up_checks() {
        let config = Config::defaults();
        config.validate().expect("the defaults are valid");
        assert_eq!(
            config.http.cors().expect("cors"),
            gatehouse::http::CorsOrigins::None
        );
        assert!(config.limits.trusted_proxies().expect("proxies").is_empty());
        assert_eq!(config.mail.reset_url().expect("reset url").scheme(), "http");
        assert!(config.admin_password.is_none());
        assert_eq!(
            config.http.rest_prefix().expect("rest prefix").as_deref(),
            Some("/api")
        );
        assert!(config.http.docs, "the API reference page is on by default");
        assert_eq!(config.tokens.refresh_grace.get(), Duration::from_secs(10));
        assert_eq!(
            config.http.sse_ping_ms.get(),
            Duration::from_millis(gatehouse::http::DEFAULT_SSE_PING_MS)
        );
        assert_eq!(
            config.http.sse_ping_ms.to_string(),
            gatehouse::http::DEFAULT_SSE_PING_MS.to_string(),
            "--help shows a duration's default in its unit"
        );
    }

    #[test]
    fn the_rest_prefix_is_a_plain_path_or_off() {
        let prefixed = |prefix: &str| with(|c| c.http.rest_prefix = prefix.to_owned());
        assert_eq!(prefixed("OFF").http.rest_prefix().expect("off"), None);
        assert_eq!(
            prefixed("/api/1")
                .http
                .rest_prefix()
                .expect("a path")
                .as_deref(),
            Some("/api/1")
        );
        for bad in [
            "api",
            "/api/",
            "/",
            "/trpc",
            "/metrics/x",
            "/docs",
            "/openapi.json",
            "/a b",
            "/{x}",
            "/api//1",
        ] {
            assert!(prefixed(bad).validate().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn settings_are_parsed_by_the_shared_parsers() {
        let config = with(|c| {
            c.http.cors_origins = Some("https://a.example/, http://b.example:8080".to_owned());
            c.limits.trusted_proxies = Some("10.0.0.0/8, 192.0.2.1, ::1, fd00::/8".to_owned());
            c.mail.reset_url = "https://app.example/reset?lang=es".to_owned();
        });
        let checked = config.validate().expect("valid");
        let origins = vec![
            "https://a.example".to_owned(),
            "http://b.example:8080".to_owned(),
        ];
        assert_eq!(
            checked.trpc.cors_origins,
            gatehouse::http::CorsOrigins::List(origins.clone())
        );
        assert!(
            checked.trpc.cors_credentials,
            "cookie sessions (opt-in) let the listed origins send credentials"
        );
        assert_eq!(checked.cookies.allowed_origins, origins);
        let prefixes: Vec<u8> = checked
            .trusted_proxies
            .iter()
            .map(IpNet::prefix_len)
            .collect();
        assert_eq!(prefixes, [8, 32, 128, 8]);
        assert_eq!(checked.reset_url.query(), Some("lang=es"));
    }

    #[test]
    fn bad_values_name_their_setting() {
        let message =
            |tweak: fn(&mut Config)| with(tweak).validate().expect_err("refused").to_string();
        assert_eq!(
            message(|c| c.http.cors_origins = Some("https://a.example, ftp://b".to_owned())),
            r#"GATEHOUSE_CORS_ORIGINS: "ftp://b" is not an origin like https://app.example.com"#
        );
        assert_eq!(
            message(|c| c.cookies.cookie_name = "session; Domain=evil.example".to_owned()),
            r#"GATEHOUSE_COOKIE_NAME must be a cookie name (letters, digits, ! # $ % & ' * + - . ^ _ ` | ~), got "session; Domain=evil.example""#
        );
        assert_eq!(
            message(|c| c.limits.trusted_proxies = Some("10.0.0.0/8, 10.0.0.0/99".to_owned())),
            r#"GATEHOUSE_TRUSTED_PROXIES: "10.0.0.0/99" is not an IP address or CIDR network"#
        );
        assert_eq!(
            message(|c| c.mail.reset_url = "ftp://app.example/reset".to_owned()),
            r#"GATEHOUSE_RESET_URL must be an http(s) URL, got "ftp://app.example/reset""#
        );
        for bad in ["http://", "app.example/reset", "https://exa mple/"] {
            let config = with(|c| c.mail.reset_url = bad.to_owned());
            assert!(
                matches!(config.validate(), Err(ConfigError::ResetUrl(_))),
                "{bad}"
            );
        }
    }
}
