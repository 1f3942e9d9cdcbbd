//! tRPC error codes and the one error type every procedure returns.
//!
//! Domain crates keep their own `thiserror` enums and convert them into
//! [`RpcError`]; the HTTP adapter is the only place that turns an `RpcError`
//! into bytes, so the wire shape cannot drift between procedures.

use std::borrow::Cow;
use std::sync::Arc;

use http::{HeaderName, HeaderValue, StatusCode};
use serde::Serialize;

/// The tRPC error keys with their JSON-RPC numbers and HTTP statuses, exactly
/// as `@trpc/server` 11.25 maps them (`rpc/codes.ts`, `getHTTPStatusCode.ts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    ParseError,
    BadRequest,
    Unauthorized,
    PaymentRequired,
    Forbidden,
    NotFound,
    MethodNotSupported,
    Timeout,
    Conflict,
    PreconditionFailed,
    PayloadTooLarge,
    UnsupportedMediaType,
    UnprocessableContent,
    PreconditionRequired,
    TooManyRequests,
    ClientClosedRequest,
    InternalServerError,
    NotImplemented,
    BadGateway,
    ServiceUnavailable,
    GatewayTimeout,
}

impl ErrorCode {
    /// Every code, for exhaustive tests and metrics label pre-registration.
    pub const ALL: [ErrorCode; 21] = [
        Self::ParseError,
        Self::BadRequest,
        Self::Unauthorized,
        Self::PaymentRequired,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotSupported,
        Self::Timeout,
        Self::Conflict,
        Self::PreconditionFailed,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::UnprocessableContent,
        Self::PreconditionRequired,
        Self::TooManyRequests,
        Self::ClientClosedRequest,
        Self::InternalServerError,
        Self::NotImplemented,
        Self::BadGateway,
        Self::ServiceUnavailable,
        Self::GatewayTimeout,
    ];

    /// The string key clients switch on (`TRPCClientError.data.code`).
    pub const fn key(self) -> &'static str {
        match self {
            Self::ParseError => "PARSE_ERROR",
            Self::BadRequest => "BAD_REQUEST",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::PaymentRequired => "PAYMENT_REQUIRED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotSupported => "METHOD_NOT_SUPPORTED",
            Self::Timeout => "TIMEOUT",
            Self::Conflict => "CONFLICT",
            Self::PreconditionFailed => "PRECONDITION_FAILED",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::UnprocessableContent => "UNPROCESSABLE_CONTENT",
            Self::PreconditionRequired => "PRECONDITION_REQUIRED",
            Self::TooManyRequests => "TOO_MANY_REQUESTS",
            Self::ClientClosedRequest => "CLIENT_CLOSED_REQUEST",
            Self::InternalServerError => "INTERNAL_SERVER_ERROR",
            Self::NotImplemented => "NOT_IMPLEMENTED",
            Self::BadGateway => "BAD_GATEWAY",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Self::GatewayTimeout => "GATEWAY_TIMEOUT",
        }
    }

    /// The JSON-RPC number in `error.code`. Five server-side keys share -32603.
    pub const fn json_rpc(self) -> i32 {
        match self {
            Self::ParseError => -32700,
            Self::BadRequest => -32600,
            Self::Unauthorized => -32001,
            Self::PaymentRequired => -32002,
            Self::Forbidden => -32003,
            Self::NotFound => -32004,
            Self::MethodNotSupported => -32005,
            Self::Timeout => -32008,
            Self::Conflict => -32009,
            Self::PreconditionFailed => -32012,
            Self::PayloadTooLarge => -32013,
            Self::UnsupportedMediaType => -32015,
            Self::UnprocessableContent => -32022,
            Self::PreconditionRequired => -32028,
            Self::TooManyRequests => -32029,
            Self::ClientClosedRequest => -32099,
            Self::InternalServerError
            | Self::NotImplemented
            | Self::BadGateway
            | Self::ServiceUnavailable
            | Self::GatewayTimeout => -32603,
        }
    }

    /// The HTTP status of a single call failing with this code.
    pub fn http_status(self) -> StatusCode {
        let n = match self {
            Self::ParseError | Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::PaymentRequired => 402,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotSupported => 405,
            Self::Timeout => 408,
            Self::Conflict => 409,
            Self::PreconditionFailed => 412,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::UnprocessableContent => 422,
            Self::PreconditionRequired => 428,
            Self::TooManyRequests => 429,
            Self::ClientClosedRequest => 499,
            Self::InternalServerError => 500,
            Self::NotImplemented => 501,
            Self::BadGateway => 502,
            Self::ServiceUnavailable => 503,
            Self::GatewayTimeout => 504,
        };
        StatusCode::from_u16(n).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// One failing field of an input, carried in `error.data.issues` so forms can
/// put each message beside its field (see `docs/protocol.md#errors`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS, schemars::JsonSchema)]
pub struct Issue {
    pub path: Vec<String>,
    pub message: String,
    /// The message's stable key (e.g. `required`), for translation; never
    /// sent. Empty when the message has none.
    #[serde(skip)]
    #[ts(skip)]
    pub key: Cow<'static, str>,
}

impl Issue {
    pub fn new(
        path: impl IntoIterator<Item = impl Into<String>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into_iter().map(Into::into).collect(),
            message: message.into(),
            key: Cow::Borrowed(""),
        }
    }

    /// An issue whose message has a stable key.
    #[must_use]
    pub fn with_key(mut self, key: impl Into<Cow<'static, str>>) -> Self {
        self.key = key.into();
        self
    }
}

/// The error every procedure, guard and protocol step produces.
///
/// `message` is what the client sees, so it must never hold internal error
/// text; use [`RpcError::internal`] (or [`RpcError::with_cause`]) for
/// failures whose detail belongs in the log only: the cause is logged once
/// by the HTTP adapter, with the request id and the procedure path, and
/// never sent.
#[derive(Debug, Clone)]
pub struct RpcError {
    pub code: ErrorCode,
    pub message: String,
    /// Per-field validation failures, sent as `data.issues` when present.
    pub issues: Option<Vec<Issue>>,
    /// Response headers this error asks for (e.g. `Retry-After` on 429).
    pub headers: Box<[(HeaderName, HeaderValue)]>,
    /// The message's stable key (e.g. `batch_too_large`), so a service can
    /// translate it without matching English text; `None` for messages
    /// that have none (an application's own free text).
    pub key: Option<&'static str>,
    /// The values the message was built from (e.g. `("path", "a.b")`), for
    /// translations that must repeat them.
    pub params: Box<[(&'static str, String)]>,
    /// What really went wrong (with its `source()` chain), for the log only.
    pub cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl RpcError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            issues: None,
            headers: Box::default(),
            key: None,
            params: Box::default(),
            cause: None,
        }
    }

    /// An error whose message has a stable key (see [`RpcError::key`]).
    pub fn keyed(code: ErrorCode, key: &'static str, message: impl Into<String>) -> Self {
        Self {
            key: Some(key),
            ..Self::new(code, message)
        }
    }

    /// Records a value the message was built from, for translations.
    #[must_use]
    pub fn with_param(mut self, name: &'static str, value: impl Into<String>) -> Self {
        let mut params = std::mem::take(&mut self.params).into_vec();
        params.push((name, value.into()));
        self.params = params.into_boxed_slice();
        self
    }

    /// An error whose message is the bare code, as tRPC does when none is
    /// given; the code is also its key.
    pub fn from_code(code: ErrorCode) -> Self {
        Self::keyed(code, code.key(), code.key())
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// A generic 500 that keeps its real cause for the log (see
    /// [`RpcError::cause`]); the client sees only `Internal server error`.
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::internal_error().with_cause(cause)
    }

    /// Keeps `cause` for the log; the message sent stays as it is.
    #[must_use]
    pub fn with_cause(
        mut self,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.cause = Some(Arc::from(cause.into()));
        self
    }

    /// The cause and its `source()` chain as one line (`a: b: c`), if any.
    pub fn cause_chain(&self) -> Option<String> {
        let cause = self.cause.as_deref()?;
        let mut line = cause.to_string();
        let mut next = cause.source();
        while let Some(source) = next {
            let text = source.to_string();
            // thiserror's `#[error("…: {0}")]` already repeats its source.
            if !line.ends_with(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            next = source.source();
        }
        Some(line)
    }

    /// The generic 500 a client sees for any failure of ours.
    pub fn internal_error() -> Self {
        Self::keyed(
            ErrorCode::InternalServerError,
            "internal",
            "Internal server error",
        )
    }

    /// A validation failure: one BAD_REQUEST carrying every failing field.
    /// Its message and key are the first issue's, as Standard Schema
    /// validators report it (the key only when it is a static one).
    pub fn validation(issues: Vec<Issue>) -> Self {
        let (message, key) = match issues.first() {
            Some(first) => (first.message.clone(), &first.key),
            None => ("Invalid input".to_owned(), &Cow::Borrowed("invalid_input")),
        };
        let key = match key {
            Cow::Borrowed(key) if !key.is_empty() => Some(*key),
            _ => None,
        };
        Self {
            issues: Some(issues),
            key,
            ..Self::bad_request(message)
        }
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        let mut headers = std::mem::take(&mut self.headers).into_vec();
        headers.push((name, value));
        self.headers = headers.into_boxed_slice();
        self
    }

    pub fn http_status(&self) -> StatusCode {
        self.code.http_status()
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.key(), self.message)
    }
}

impl std::error::Error for RpcError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_trpc_table() {
        assert_eq!(ErrorCode::NotFound.json_rpc(), -32004);
        assert_eq!(ErrorCode::NotFound.http_status(), StatusCode::NOT_FOUND);
        assert_eq!(ErrorCode::TooManyRequests.json_rpc(), -32029);
        assert_eq!(ErrorCode::GatewayTimeout.json_rpc(), -32603);
        assert_eq!(ErrorCode::GatewayTimeout.http_status().as_u16(), 504);
        assert_eq!(ErrorCode::ClientClosedRequest.http_status().as_u16(), 499);
        let keys: std::collections::HashSet<_> = ErrorCode::ALL.iter().map(|c| c.key()).collect();
        assert_eq!(keys.len(), ErrorCode::ALL.len());
    }
}
