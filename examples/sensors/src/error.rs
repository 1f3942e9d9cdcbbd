//! What a sensors procedure can fail with, and how each failure reaches
//! the client.

use gatehouse::{ErrorCode, Issue, RpcError};
use gatehouse_auth::error::AuthError;

/// Every failure of the `sensors.*` procedures. Handlers return it and use
/// `?` on database calls; [`From<SensorsError> for RpcError`] decides what
/// the client sees.
#[derive(Debug, thiserror::Error)]
pub enum SensorsError {
    /// The sensor named by the input does not exist (any more).
    #[error("Sensor not found")]
    SensorNotFound,
    /// Input fields that decode but break a rule (a blank name, a
    /// non-finite value, a limit out of range); one issue per field.
    #[error("Invalid input")]
    Invalid(Vec<Issue>),
    /// The database failed; the client sees a generic error (or 503 while
    /// the database is unreachable), the log sees this.
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// An error of the framework's own, e.g. from [`gatehouse::Ctx::principal`].
    #[error(transparent)]
    Rpc(#[from] RpcError),
}

impl SensorsError {
    /// One failing field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        SensorsError::Invalid(vec![Issue::new([field], message)])
    }
}

impl From<SensorsError> for RpcError {
    fn from(e: SensorsError) -> Self {
        match e {
            SensorsError::SensorNotFound => RpcError::new(ErrorCode::NotFound, e.to_string()),
            SensorsError::Invalid(issues) => RpcError::validation(issues),
            // The auth service's mapping: SERVICE_UNAVAILABLE with
            // Retry-After while the database is unreachable, otherwise a
            // generic INTERNAL_SERVER_ERROR that keeps the cause for the log.
            SensorsError::Db(db) => AuthError::Db(db).into(),
            SensorsError::Rpc(rpc) => rpc,
        }
    }
}
