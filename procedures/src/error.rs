//! The auth service's domain errors and how each reaches the client.

use gatehouse::{ErrorCode, RpcError};
use http::{HeaderName, HeaderValue};

use crate::db_health::{
    DB_ERRORS_TOTAL, RETRY_AFTER_SECS, STORAGE_RETRY_AFTER_SECS, StorageFull, is_storage_full,
    is_unavailable,
};
use crate::password::PasswordError;

/// `SERVICE_UNAVAILABLE` with a `Retry-After` of `retry_after` seconds:
/// nothing was done, and the client may retry then.
fn unavailable_for(retry_after: u64) -> RpcError {
    RpcError::keyed(
        ErrorCode::ServiceUnavailable,
        "unavailable",
        AuthError::Unavailable.to_string(),
    )
    .with_header(
        HeaderName::from_static("retry-after"),
        HeaderValue::from(retry_after),
    )
}

/// The database cannot be reached (or handed out no connection in time).
fn unavailable() -> RpcError {
    unavailable_for(RETRY_AFTER_SECS)
}

/// A write found the database's disk full: nothing was written. The
/// [`StorageFull`] cause tells the service to mark the storage full
/// (`/readyz`); it is logged, never sent.
fn storage_full(db: &sea_orm::DbErr) -> RpcError {
    unavailable_for(STORAGE_RETRY_AFTER_SECS).with_cause(StorageFull(db.to_string()))
}

/// Everything an auth procedure can fail with (its `Procedure::Error`), so
/// handlers use `?` on domain, database, hashing and framework errors alike.
/// Messages are English; the service translates them per request
/// ([`crate::i18n`]).
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
    #[error("Username is already taken")]
    UsernameTaken,
    #[error("Too many failed login attempts, try again later")]
    Throttled { retry_after: u64 },
    #[error("Invalid or expired reset token")]
    InvalidResetToken,
    #[error("Current password is incorrect")]
    WrongCurrentPassword,
    #[error("Session not found")]
    SessionNotFound,
    #[error("lastEventId must be the id of an earlier event")]
    InvalidEventId,
    #[error("The last administrator cannot be demoted or deleted")]
    LastAdmin,
    #[error("The service is temporarily unavailable, try again shortly")]
    Unavailable,
    #[error(
        "Refused: a request that changes something with the session cookie must come from an allowed origin and be sent by script (content-type: application/json or the x-gatehouse-session header)"
    )]
    CsrfRejected,
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("password hashing failed: {0}")]
    Hash(#[from] PasswordError),
    #[error("token signing failed: {0}")]
    Sign(#[from] crate::token::TokenError),
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// An error the framework or a shared helper already made for the wire
    /// (`ctx.principal()?`, `validate::check(&input)?`); answered unchanged.
    #[error(transparent)]
    Rpc(#[from] RpcError),
}

impl AuthError {
    /// The stable key of the message a client sees (see [`crate::i18n`]);
    /// `None` for failures a client only ever sees as a generic error.
    pub fn key(&self) -> Option<&'static str> {
        Some(match self {
            AuthError::InvalidCredentials => "invalid_credentials",
            AuthError::InvalidToken => "invalid_token",
            AuthError::SessionRevoked => "session_revoked",
            AuthError::UserNotFound => "user_not_found",
            AuthError::EmailTaken => "email_taken",
            AuthError::UsernameTaken => "username_taken",
            AuthError::Throttled { .. } => "throttled",
            AuthError::InvalidResetToken => "invalid_reset_token",
            AuthError::WrongCurrentPassword => "wrong_current_password",
            AuthError::SessionNotFound => "session_not_found",
            AuthError::InvalidEventId => "invalid_event_id",
            AuthError::LastAdmin => "last_admin",
            AuthError::Unavailable => "unavailable",
            AuthError::CsrfRejected => "csrf_rejected",
            AuthError::Rpc(e) => return e.key,
            AuthError::Db(_) | AuthError::Hash(_) | AuthError::Sign(_) | AuthError::Corrupt(_) => {
                return None;
            }
        })
    }
}

impl From<AuthError> for RpcError {
    fn from(e: AuthError) -> Self {
        let code = match e {
            AuthError::Rpc(rpc) => return rpc,
            AuthError::InvalidCredentials
            | AuthError::InvalidToken
            | AuthError::SessionRevoked
            | AuthError::WrongCurrentPassword => ErrorCode::Unauthorized,
            AuthError::UserNotFound | AuthError::SessionNotFound => ErrorCode::NotFound,
            AuthError::EmailTaken | AuthError::UsernameTaken => ErrorCode::Conflict,
            AuthError::Throttled { retry_after } => {
                let value = HeaderValue::from(retry_after);
                return RpcError::keyed(ErrorCode::TooManyRequests, "throttled", e.to_string())
                    .with_header(HeaderName::from_static("retry-after"), value);
            }
            AuthError::InvalidResetToken | AuthError::InvalidEventId => ErrorCode::BadRequest,
            AuthError::LastAdmin => ErrorCode::PreconditionFailed,
            AuthError::CsrfRejected => ErrorCode::Forbidden,
            AuthError::Unavailable => {
                metrics::counter!(DB_ERRORS_TOTAL, "kind" => "unavailable").increment(1);
                return unavailable();
            }
            AuthError::Db(ref db) if is_storage_full(db) => {
                metrics::counter!(DB_ERRORS_TOTAL, "kind" => "storage_full").increment(1);
                return storage_full(db);
            }
            AuthError::Db(ref db) if is_unavailable(db) => {
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
        match e.key() {
            Some(key) => RpcError::keyed(code, key, e.to_string()),
            None => RpcError::new(code, e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The English a client sees for each error is the one `i18n` lists
    /// under its key, so the two cannot drift apart.
    #[test]
    fn every_keyed_error_reads_as_its_key_in_english() {
        let errors = [
            AuthError::InvalidCredentials,
            AuthError::InvalidToken,
            AuthError::SessionRevoked,
            AuthError::UserNotFound,
            AuthError::EmailTaken,
            AuthError::UsernameTaken,
            AuthError::Throttled { retry_after: 3 },
            AuthError::InvalidResetToken,
            AuthError::WrongCurrentPassword,
            AuthError::SessionNotFound,
            AuthError::InvalidEventId,
            AuthError::LastAdmin,
            AuthError::Unavailable,
            AuthError::CsrfRejected,
        ];
        for error in errors {
            let key = error.key().expect("a client-facing error has a key");
            assert_eq!(
                crate::i18n::english(key),
                Some(error.to_string().as_str()),
                "{key}"
            );
            assert_eq!(RpcError::from(error).key, Some(key));
        }
    }

    /// A framework error passed through `?` in a handler reaches the client
    /// exactly as it was made: code, message, key, issues, headers, cause.
    #[test]
    fn a_framework_error_is_answered_unchanged() {
        let made = RpcError::validation(vec![
            gatehouse::Issue::new(["email"], "Required").with_key("required"),
        ])
        .with_header(
            HeaderName::from_static("retry-after"),
            HeaderValue::from(7u64),
        )
        .with_cause(std::io::Error::other("disk full"));
        let wrapped = AuthError::from(made.clone());
        assert_eq!(wrapped.key(), Some("required"));
        let answered = RpcError::from(wrapped);
        assert_eq!(answered.code, made.code);
        assert_eq!(answered.message, made.message);
        assert_eq!(answered.key, made.key);
        assert_eq!(answered.issues, made.issues);
        assert_eq!(answered.headers, made.headers);
        assert!(matches!(
            (&answered.cause, &made.cause),
            (Some(a), Some(b)) if std::sync::Arc::ptr_eq(a, b)
        ));
    }
}
