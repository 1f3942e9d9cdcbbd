//! The settings every transport of `http/` shares: the tRPC endpoint's
//! (batching, limits, deadline), REST's prefix, CORS's origins and the
//! subscriptions' caps. They live at the bottom of `http/` so that the
//! adapter, REST and SSE read them without importing `http/mod.rs`, which
//! sits above them all and wires them together.

use std::time::Duration;

/// The path every procedure is served under (`/trpc/<dotted.path>`).
pub const PREFIX: &str = "/trpc";

/// Default largest request body, in bytes (1 MiB).
pub const DEFAULT_BODY_LIMIT: u32 = 1024 * 1024;
/// Default most calls in one batch.
pub const DEFAULT_MAX_BATCH_SIZE: u32 = 100;
/// Default deadline for reading a request and running its calls, seconds.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;

/// Adapter settings. `Default` is what a production deployment wants; the
/// `DEFAULT_*` constants are its values, for settings layers (e.g. clap)
/// that must show the same defaults.
#[derive(Debug, Clone)]
pub struct TrpcConfig {
    /// Largest request body read, in bytes (1 MiB). A call that reads a
    /// larger body fails with 413 PAYLOAD_TOO_LARGE, as with the Node
    /// adapter's `maxBodySize`.
    pub body_limit: usize,
    /// Most calls in one batch (100); more is the request-level 400
    /// `Batch call exceeds maximum size`. tRPC's default is unlimited, but an
    /// unlimited batch lets one request fan out into unbounded work.
    pub max_batch_size: usize,
    /// Whether `?batch=1` requests are accepted (tRPC `allowBatching`).
    pub allow_batching: bool,
    /// Whether queries may also be sent as POST (tRPC `allowMethodOverride`,
    /// needed by clients using `methodOverride: 'POST'`).
    pub allow_method_override: bool,
    /// Origins allowed to call from browsers (CORS); none by default.
    pub cors_origins: CorsOrigins,
    /// Whether the listed origins may send credentials (cookies):
    /// `Access-Control-Allow-Credentials: true`, off by default. Only for a
    /// [`CorsOrigins::List`]: browsers refuse credentials with `*`, so with
    /// [`CorsOrigins::Any`] it is ignored (with a warning at start).
    pub cors_credentials: bool,
    /// Request headers browsers may send besides the built-in ones
    /// (`authorization`, `content-type`, tRPC's own, …), e.g. an app's own
    /// header; none by default.
    pub cors_extra_headers: Vec<http::HeaderName>,
    /// Deadline for reading the request and running its calls (30 s); a
    /// call still running then fails with TIMEOUT (408). For a
    /// subscription it covers starting it, not the stream.
    pub request_timeout: Duration,
    /// Server-sent events of subscriptions.
    pub subscriptions: SubscriptionConfig,
    /// Where procedures with a [`crate::Rest`] route are served as plain
    /// JSON (`/api`); `None` serves no REST routes.
    pub rest_prefix: Option<String>,
    /// Whether [`crate::server::app`] serves the API reference page at
    /// `/docs` (on by default): it shows only what `/openapi.json` already
    /// publishes, so turning it off hides nothing, it only drops the page.
    pub docs: bool,
}

/// Default prefix of the REST routes.
pub const DEFAULT_REST_PREFIX: &str = "/api";

/// Default most open subscriptions in all.
pub const DEFAULT_MAX_SUBSCRIPTIONS: u32 = 10_000;
/// Default most open subscriptions of one caller (user, or address when
/// anonymous).
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_CALLER: u32 = 16;
/// Default interval of `ping` events on an idle stream, in milliseconds.
pub const DEFAULT_SSE_PING_MS: u64 = 10_000;

/// How subscriptions are streamed and how many may be open.
///
/// HTTP/1.1 carries one stream per connection, so the connection cap
/// ([`crate::connections::ConnectionLimits`]) bounds them too; these caps
/// keep one user (who may open many connections) from taking them all.
#[derive(Debug, Clone)]
pub struct SubscriptionConfig {
    /// `event: ping` after this long without an event (10 s), so proxies
    /// and clients see a live stream; `None` sends none (tRPC's default).
    pub ping_interval: Option<Duration>,
    /// Sent to the client in `connected`: it reconnects when nothing (not
    /// even a ping) arrived for this long. Must exceed the ping interval.
    pub reconnect_after_inactivity: Option<Duration>,
    /// Most open subscriptions in all (10 000); more get TOO_MANY_REQUESTS.
    pub max_open: usize,
    /// Most open subscriptions of one caller (16).
    pub max_per_caller: usize,
}

impl Default for SubscriptionConfig {
    fn default() -> Self {
        Self {
            ping_interval: Some(Duration::from_millis(DEFAULT_SSE_PING_MS)),
            reconnect_after_inactivity: None,
            max_open: DEFAULT_MAX_SUBSCRIPTIONS as usize,
            max_per_caller: DEFAULT_MAX_SUBSCRIPTIONS_PER_CALLER as usize,
        }
    }
}

impl SubscriptionConfig {
    /// Whether the ping interval is shorter than the client's reconnect
    /// delay (otherwise every idle stream would be reconnected needlessly).
    /// Stricter than `@trpc/server`, which lets an equal interval through
    /// and throws only when a stream opens: here a racy equal value is
    /// refused too, once, when the app is built.
    pub fn is_consistent(&self) -> bool {
        match (self.ping_interval, self.reconnect_after_inactivity) {
            (Some(ping), Some(reconnect)) => ping < reconnect,
            _ => true,
        }
    }
}

impl Default for TrpcConfig {
    fn default() -> Self {
        Self {
            body_limit: DEFAULT_BODY_LIMIT as usize,
            max_batch_size: DEFAULT_MAX_BATCH_SIZE as usize,
            allow_batching: true,
            allow_method_override: false,
            cors_origins: CorsOrigins::None,
            cors_credentials: false,
            cors_extra_headers: Vec::new(),
            request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
            subscriptions: SubscriptionConfig::default(),
            rest_prefix: Some(DEFAULT_REST_PREFIX.to_owned()),
            docs: true,
        }
    }
}

/// Which browser origins may call the API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CorsOrigins {
    /// Same origin only: no CORS headers, preflights get tRPC's 415.
    #[default]
    None,
    /// Any origin (`*`).
    Any,
    /// Exactly these origins (e.g. `https://app.example.com`).
    List(Vec<String>),
}

/// A CORS origin list entry that is not an origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an origin like https://app.example.com")]
pub struct CorsOriginError(pub String);

/// The one parser of the `GATEHOUSE_CORS_ORIGINS` format, so the framework
/// and the settings that feed it cannot disagree about what a list means:
/// empty (or only commas) for none, `*` for any, otherwise comma-separated
/// `http://` or `https://` origins. A trailing `/` is dropped, as browsers
/// send `Origin` without one; a path-like rest with `?`, `#` or a space is
/// refused rather than silently never matching.
impl std::str::FromStr for CorsOrigins {
    type Err = CorsOriginError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let value = value.trim();
        if value == "*" {
            return Ok(Self::Any);
        }
        let mut list = Vec::new();
        for origin in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let origin_only = origin.trim_end_matches('/');
            let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin_only.contains(['?', '#', ' ']);
            if !ok {
                return Err(CorsOriginError(origin.to_owned()));
            }
            list.push(origin_only.to_owned());
        }
        Ok(if list.is_empty() {
            Self::None
        } else {
            Self::List(list)
        })
    }
}
