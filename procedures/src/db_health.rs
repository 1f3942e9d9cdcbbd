//! Whether the database can be reached, told apart from whether it is busy.
//!
//! Without this, an outage looks like a slow server: the pool retries a
//! refused connection until its acquire timeout runs out, so every call
//! waits and then fails as an internal error. Instead a probe keeps one
//! connection of its own (outside the pool) and pings it; when the ping and
//! a fresh connection both fail, the database is marked down and every call
//! that needs it answers `SERVICE_UNAVAILABLE` at once. The probe keeps
//! trying and marks it up again as soon as a connection succeeds, so the
//! server recovers without a restart. A busy pool never trips it: only the
//! probe's own connection decides, and that connection waits for no pool.
//!
//! SQLite is a file opened by this process: it is never "unreachable" in
//! this sense (a locked database is busy, and waits), so it has no probe.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection};
use sea_orm::sqlx::{ConnectOptions, Connection};
use sea_orm::{DbErr, RuntimeErr};

/// Gauge: 1 while the database answers the probe, 0 during an outage.
pub const DB_UP: &str = "gatehouse_db_up";
/// Counter of database failures seen by calls, labelled `kind`:
/// `unavailable` (unreachable or the pool could not hand out a connection)
/// or `error` (anything else).
pub const DB_ERRORS_TOTAL: &str = "gatehouse_db_errors_total";

/// How often the probe pings a healthy database.
const PROBE_EVERY_UP: Duration = Duration::from_millis(500);
/// How often the probe retries a database that is down.
const PROBE_EVERY_DOWN: Duration = Duration::from_millis(250);

/// Seconds a client is told to wait (`Retry-After`) during an outage: the
/// probe notices a recovery well within it.
pub const RETRY_AFTER_SECS: u64 = 1;

/// The shared up/down state of the database.
#[derive(Debug)]
pub struct DbHealth {
    up: AtomicBool,
}

impl DbHealth {
    /// Up until a probe says otherwise.
    pub fn new() -> Arc<Self> {
        metrics::gauge!(DB_UP).set(1.0);
        Arc::new(Self {
            up: AtomicBool::new(true),
        })
    }

    /// Whether calls should try the database at all.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn set(&self, up: bool) {
        let was = self.up.swap(up, Ordering::Relaxed);
        if was != up {
            metrics::gauge!(DB_UP).set(if up { 1.0 } else { 0.0 });
            if up {
                tracing::warn!("database reachable again");
            } else {
                tracing::error!(
                    "database unreachable: answering SERVICE_UNAVAILABLE until it is back"
                );
            }
        }
    }

    /// Starts the probe for the PostgreSQL database at `url`; a no-op for
    /// SQLite. `timeout` bounds each ping and connection attempt, so an
    /// outage is noticed within about `PROBE_EVERY_UP + 2 × timeout`.
    pub fn spawn_probe(self: &Arc<Self>, url: &str, timeout: Duration) {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return;
        }
        let options = match PgConnectOptions::from_str(url) {
            Ok(o) => o.disable_statement_logging(),
            Err(error) => {
                tracing::warn!(%error, "cannot parse DATABASE_URL for the health probe");
                return;
            }
        };
        let health = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut conn: Option<PgConnection> = None;
            // Ends with the service: the probe holds only a weak reference.
            while let Some(health) = health.upgrade() {
                let up = probe(&mut conn, &options, timeout).await;
                health.set(up);
                drop(health);
                tokio::time::sleep(if up { PROBE_EVERY_UP } else { PROBE_EVERY_DOWN }).await;
            }
        });
    }
}

/// Pings the probe's connection, reconnecting once if it is gone.
async fn probe(
    conn: &mut Option<PgConnection>,
    options: &PgConnectOptions,
    timeout: Duration,
) -> bool {
    if let Some(c) = conn.as_mut() {
        if matches!(tokio::time::timeout(timeout, c.ping()).await, Ok(Ok(()))) {
            return true;
        }
        *conn = None;
    }
    match tokio::time::timeout(timeout, options.connect()).await {
        Ok(Ok(mut fresh)) => {
            let ok = matches!(
                tokio::time::timeout(timeout, fresh.ping()).await,
                Ok(Ok(()))
            );
            if ok {
                *conn = Some(fresh);
            }
            ok
        }
        Ok(Err(error)) => {
            tracing::debug!(%error, "database probe could not connect");
            false
        }
        Err(_) => {
            tracing::debug!("database probe timed out");
            false
        }
    }
}

/// Whether `err` means the database could not be reached or could not hand
/// out a connection in time (as opposed to a failing statement): such calls
/// answer `SERVICE_UNAVAILABLE` and may be retried.
pub fn is_unavailable(err: &DbErr) -> bool {
    let runtime = match err {
        DbErr::ConnectionAcquire(_) => return true,
        DbErr::Conn(r) | DbErr::Exec(r) | DbErr::Query(r) => r,
        _ => return false,
    };
    let RuntimeErr::SqlxError(e) = runtime else {
        return false;
    };
    use sea_orm::sqlx::Error;
    match &**e {
        Error::Io(_) | Error::PoolTimedOut | Error::PoolClosed | Error::Tls(_) => true,
        Error::WorkerCrashed => true,
        // Class 08: connection exceptions; 57P01..03: the server is shutting
        // down, was shut down, or is not accepting connections yet.
        Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquire_timeouts_and_io_errors_are_unavailability() {
        assert!(is_unavailable(&DbErr::ConnectionAcquire(
            sea_orm::error::ConnAcquireErr::Timeout
        )));
        let io =
            sea_orm::sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(is_unavailable(&DbErr::Exec(RuntimeErr::SqlxError(
            Arc::new(io)
        ))));
        let row = sea_orm::sqlx::Error::RowNotFound;
        assert!(!is_unavailable(&DbErr::Query(RuntimeErr::SqlxError(
            Arc::new(row)
        ))));
        assert!(!is_unavailable(&DbErr::RecordNotFound("x".into())));
    }
}
