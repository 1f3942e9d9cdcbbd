//! What an application plugs into the framework: its shared state and how a
//! request's caller is identified. The framework never looks inside a
//! principal beyond its role, so it stays ignorant of JWTs and user tables.

use std::future::Future;
use std::net::SocketAddr;

use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::error::{ErrorCode, RpcError};
use crate::role::Role;

/// Who is calling, as far as guards care.
pub trait Principal: Send + Sync + Clone + 'static {
    fn role(&self) -> Role;

    /// A stable id of the caller (e.g. the user id), so that limits on
    /// open subscriptions count per caller rather than per address. `None`
    /// counts the caller by its network address instead.
    fn subject(&self) -> Option<&str> {
        None
    }

    /// When these credentials stop being accepted (e.g. a token's `exp`),
    /// if ever. A subscription the caller opened ends at that moment with
    /// `UNAUTHORIZED` ([`crate::router::credentials_expired`]), because the
    /// stream was authorised only once, when it opened: without an end it
    /// would keep delivering to credentials that no other call accepts any
    /// more. The client then renews them and resubscribes (from its last
    /// event id, so a tracked stream loses nothing). `None` (the default)
    /// never ends a stream for this reason.
    fn expires_at(&self) -> Option<std::time::SystemTime> {
        None
    }
}

/// The application behind a router: its state plus its authenticator.
///
/// One value is shared by every request (`Arc<S>`).
pub trait Service: Send + Sync + 'static {
    type Principal: Principal;
    /// The error codes [`Self::authenticate`] may answer with besides
    /// `UNAUTHORIZED` (e.g. `NOT_FOUND` for a token whose user is gone), so
    /// the OpenAPI document lists them on every guarded operation.
    const AUTHENTICATE_ERRORS: &'static [ErrorCode] = &[];

    /// Identifies the caller from the request. `Ok(None)` means the request
    /// carries no credentials; an `Err` (expired token, revoked session, …)
    /// is answered as is. Called at most once per HTTP request, and only when
    /// a guarded procedure is called, so a batch of ten guarded calls costs
    /// one authentication.
    fn authenticate(
        &self,
        request: &RequestMeta,
    ) -> impl Future<Output = Result<Option<Self::Principal>, RpcError>> + Send;

    /// Whether the service can take traffic (e.g. its database answers);
    /// `GET /readyz` reports it. The default is always ready.
    fn ready(&self) -> impl Future<Output = bool> + Send {
        async { true }
    }

    /// Last look at an error before it is sent, e.g. to translate its
    /// message by `Accept-Language`. The HTTP adapter calls it for every
    /// error it answers with: from procedures, guards and input decoding,
    /// and the protocol's own (unknown path, wrong method, request-level
    /// errors). The default leaves it unchanged.
    fn finalize_error(&self, _request: &RequestMeta, _error: &mut RpcError) {}
}

/// Longest `x-request-id` a client may choose, in bytes.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether a client's `x-request-id` may be the request's id: 1 to
/// [`MAX_REQUEST_ID_LEN`] bytes of ASCII letters, digits and `-_.:`. The id
/// is echoed in the response and written into every log line of the
/// request, so anything that could pass for log syntax (spaces, quotes,
/// `=`, braces, control or non-ASCII bytes) or bloat every line is refused;
/// UUIDs, ULIDs, W3C trace ids and `service:host:counter` styles all fit.
pub fn is_acceptable_request_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The parts of an HTTP request a procedure may need, without the body.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub method: Method,
    pub headers: HeaderMap,
    /// The TCP peer; `None` only for in-process calls without a socket.
    pub peer: Option<SocketAddr>,
    /// The id in the `x-request-id` response header and every log line.
    pub request_id: String,
    /// tRPC's `connectionParams` of a subscription request: string values
    /// `httpSubscriptionLink` sends in the URL (a browser's `EventSource`
    /// cannot set headers), e.g. a token. Empty for every other request.
    pub connection_params: Vec<(String, String)>,
    /// Headers the authenticator and the procedures add to the answer (e.g.
    /// `Set-Cookie`); see [`ResponseHeaders`].
    pub response_headers: ResponseHeaders,
}

/// Headers for the response, added while a request is being served: by the
/// authenticator, or by a procedure on success or failure (an error's own
/// headers travel with [`RpcError`] instead).
///
/// Every call of a request shares one set, because a request has one
/// response: the calls of a tRPC batch all add to the same headers, in the
/// order they run, and values are appended, never replaced, so two
/// `Set-Cookie`s of a batch both arrive. Plain answers (a single call, a
/// batch array, a REST route) carry them, and so does a subscription (SSE)
/// for what is added while it is opened. A streamed batch (JSONL) sends its
/// headers before any call has finished, so what is added there is dropped,
/// with a warning in the log: a client that
/// needs such headers calls those procedures without streaming.
#[derive(Debug, Clone, Default)]
pub struct ResponseHeaders(Arc<Mutex<HeaderMap>>);

impl ResponseHeaders {
    /// Adds a header value to the answer, beside any earlier one of the
    /// same name.
    pub fn append(&self, name: HeaderName, value: HeaderValue) {
        self.lock().append(name, value);
    }

    /// Takes what was added so far, leaving none.
    pub fn take(&self) -> HeaderMap {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HeaderMap> {
        // A panic while holding the lock cannot leave a header map half
        // written in a way that matters: keep using it.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl RequestMeta {
    /// A header as UTF-8 text, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A value of [`RequestMeta::connection_params`].
    pub fn connection_param(&self, name: &str) -> Option<&str> {
        self.connection_params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The token of an `Authorization: Bearer <token>` header.
    pub fn bearer_token(&self) -> Option<&str> {
        let value = self.header("authorization")?.trim();
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }
}
