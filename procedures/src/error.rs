//! The auth service's domain errors and how each reaches the client.

use gatehouse::{ErrorCode, RpcError};
use http::{HeaderName, HeaderValue};

use crate::db_health::{DB_ERRORS_TOTAL, RETRY_AFTER_SECS, is_unavailable};
use crate::password::PasswordError;

/// `SERVICE_UNAVAILABLE` with a `Retry-After`: the database cannot be
/// reached (or handed out no connection in time); the client may retry.
fn unavailable() -> RpcError {
    RpcError::new(
        ErrorCode::ServiceUnavailable,
        AuthError::Unavailable.to_string(),
    )
    .with_header(
        HeaderName::from_static("retry-after"),
        HeaderValue::from(RETRY_AFTER_SECS),
    )
}

/// Everything an auth procedure can fail with. Messages are English; the
/// service translates them per request ([`crate::i18n`]).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Invalid email or password")]
    InvalidCredentials,
    #[error("Invalid or expired token")]
    InvalidToken,
    #[error("Session expired or revoked")]
    SessionRevoked,
    #[error("User not found")]
    UserNotFound,
    #[error("Email is already registered")]
    EmailTaken,
    #[error("Too many failed login attempts, try again later")]
    Throttled { retry_after: u64 },
    #[error("Invalid or expired reset token")]
    InvalidResetToken,
    #[error("Current password is incorrect")]
    WrongCurrentPassword,
    #[error("Session not found")]
    SessionNotFound,
    #[error("The last administrator cannot be demoted or deleted")]
    LastAdmin,
    #[error("The service is temporarily unavailable, try again shortly")]
    Unavailable,
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("password hashing failed: {0}")]
    Hash(#[from] PasswordError),
    #[error("token signing failed: {0}")]
    Sign(#[from] crate::token::TokenError),
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl From<AuthError> for RpcError {
    fn from(e: AuthError) -> Self {
        let code = match &e {
            AuthError::InvalidCredentials
            | AuthError::InvalidToken
            | AuthError::SessionRevoked
            | AuthError::WrongCurrentPassword => ErrorCode::Unauthorized,
            AuthError::UserNotFound | AuthError::SessionNotFound => ErrorCode::NotFound,
            AuthError::EmailTaken => ErrorCode::Conflict,
            AuthError::Throttled { retry_after } => {
                let value = HeaderValue::from(*retry_after);
                return RpcError::new(ErrorCode::TooManyRequests, e.to_string())
                    .with_header(HeaderName::from_static("retry-after"), value);
            }
            AuthError::InvalidResetToken => ErrorCode::BadRequest,
            AuthError::LastAdmin => ErrorCode::PreconditionFailed,
            AuthError::Unavailable => {
                metrics::counter!(DB_ERRORS_TOTAL, "kind" => "unavailable").increment(1);
                return unavailable();
            }
            AuthError::Db(db) if is_unavailable(db) => {
                metrics::counter!(DB_ERRORS_TOTAL, "kind" => "unavailable").increment(1);
                tracing::error!(error = %db, "database unavailable");
                return unavailable();
            }
            AuthError::Db(_) => {
                metrics::counter!(DB_ERRORS_TOTAL, "kind" => "error").increment(1);
                return RpcError::internal(e);
            }
            AuthError::Hash(_) | AuthError::Sign(_) | AuthError::Corrupt(_) => {
                return RpcError::internal(e);
            }
        };
        RpcError::new(code, e.to_string())
    }
}
