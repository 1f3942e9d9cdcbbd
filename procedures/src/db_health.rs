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
//! this sense (a locked database is busy, and waits). What can fail it is
//! its disk: a write that finds the disk full answers `SERVICE_UNAVAILABLE`
//! (never an internal error), marks the storage full so `/readyz` says so,
//! and a probe then tries a one-page write every second until one commits,
//! which marks it usable again. Writes keep being tried meanwhile: each
//! fails fast while the disk is full, and the first after space is freed
//! succeeds (see `docs/operating.md`, "A full disk").

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection};
use sea_orm::sqlx::sqlite::SqliteError;
use sea_orm::sqlx::{ConnectOptions, Connection};
use sea_orm::{DbErr, RuntimeErr};

/// Gauge: 1 while the database answers the probe, 0 during an outage.
pub const DB_UP: &str = "gatehouse_db_up";
/// Counter of database failures seen by calls, labelled `kind`:
/// `unavailable` (unreachable, busy past the busy timeout, or the pool could
/// not hand out a connection), `storage_full` (SQLite found its disk full)
/// or `error` (anything else).
pub const DB_ERRORS_TOTAL: &str = "gatehouse_db_errors_total";

/// Gauge: 1 while the database's disk is marked full (SQLite), else 0.
pub const DB_STORAGE_FULL: &str = "gatehouse_db_storage_full";
/// How often the probe pings a healthy database.
const PROBE_EVERY_UP: Duration = Duration::from_millis(500);
/// How often the probe retries a database that is down.
const PROBE_EVERY_DOWN: Duration = Duration::from_millis(250);

/// Seconds a client is told to wait (`Retry-After`) during an outage: the
/// probe notices a recovery well within it.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Seconds a client is told to wait when the database's disk is full:
/// freeing space takes an operator, so a client need not retry every second.
pub const STORAGE_RETRY_AFTER_SECS: u64 = 5;

/// How often the storage probe tries a write while the disk is full.
const STORAGE_PROBE_EVERY: Duration = Duration::from_secs(1);

/// The shared up/down state of the database.
#[derive(Debug)]
pub struct DbHealth {
    up: AtomicBool,
    /// A write found the disk full and no write has committed since.
    storage_full: AtomicBool,
}

/// Why a call's write failed on storage: the marker carried as the cause of
/// the `SERVICE_UNAVAILABLE` it answers, which tells the service to mark the
/// storage full ([`DbHealth::mark_storage_full`]).
#[derive(Debug, thiserror::Error)]
#[error("the database's disk is full: {0}")]
pub struct StorageFull(pub String);

impl DbHealth {
    /// Up until a probe says otherwise.
    pub fn new() -> Arc<Self> {
        metrics::gauge!(DB_UP).set(1.0);
        Arc::new(Self {
            up: AtomicBool::new(true),
            storage_full: AtomicBool::new(false),
        })
    }

    /// Whether calls should try the database at all.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Whether the database can be reached and its last write did not find
    /// the disk full: what `/readyz` reports before it pings.
    pub fn is_ready(&self) -> bool {
        self.is_up() && !self.storage_full.load(Ordering::Relaxed)
    }

    /// Records that a write found the disk full; `/readyz` answers 503
    /// until the storage probe's write commits.
    pub fn mark_storage_full(&self) {
        if !self.storage_full.swap(true, Ordering::Relaxed) {
            metrics::gauge!(DB_STORAGE_FULL).set(1.0);
            tracing::error!(
                "the database's disk is full: writes answer SERVICE_UNAVAILABLE until space is freed"
            );
        }
    }

    fn clear_storage_full(&self) {
        if self.storage_full.swap(false, Ordering::Relaxed) {
            metrics::gauge!(DB_STORAGE_FULL).set(0.0);
            tracing::warn!("the database's disk accepts writes again");
        }
    }

    /// Starts the probe that, while the storage is marked full, tries a
    /// one-page write on `db` every [`STORAGE_PROBE_EVERY`] and clears the
    /// mark when one commits. SQLite only: a PostgreSQL server's disk is its
    /// own business, and its errors arrive as unavailability anyway.
    pub fn spawn_storage_probe(self: &Arc<Self>, db: sea_orm::DatabaseConnection) {
        if db.get_database_backend() != sea_orm::DbBackend::Sqlite {
            return;
        }
        let health = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                // A look at one flag a second while the storage is fine; the
                // task ends with the service (it holds a weak reference).
                tokio::time::sleep(STORAGE_PROBE_EVERY).await;
                let Some(strong) = health.upgrade() else {
                    return;
                };
                if !strong.storage_full.load(Ordering::Relaxed) {
                    continue;
                }
                match write_one_page(&db).await {
                    Ok(()) => strong.clear_storage_full(),
                    Err(error) => tracing::debug!(%error, "storage probe: the write failed"),
                }
            }
        });
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

/// A real commit that needs room on the disk: SQLite's `user_version`
/// header field (unused by the migrations, which keep their own table)
/// written with the value it has, which appends a page to the WAL.
async fn write_one_page(db: &sea_orm::DatabaseConnection) -> Result<(), DbErr> {
    use sea_orm::ConnectionTrait;
    let txn = crate::db::begin_write(db).await?;
    let version: i64 = txn
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            "PRAGMA user_version",
        ))
        .await?
        .and_then(|row| row.try_get_by_index(0).ok())
        .unwrap_or(0);
    txn.execute_unprepared(&format!("PRAGMA user_version = {version}"))
        .await?;
    txn.commit().await
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
    if matches!(err, DbErr::ConnectionAcquire(_)) {
        return true;
    }
    let Some(e) = sqlx_error(err) else {
        return false;
    };
    // SQLite: busy past the busy timeout. The write lock is held by another
    // writer for longer than a call should wait.
    if let Some(code) = sqlite_primary_code(e) {
        return code == SQLITE_BUSY;
    }
    use sea_orm::sqlx::Error;
    match e {
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

const SQLITE_BUSY: i32 = 5;
const SQLITE_FULL: i32 = 13;
const SQLITE_IOERR: i32 = 10;

/// The driver's error inside a failed statement or connection, if any.
fn sqlx_error(err: &DbErr) -> Option<&sea_orm::sqlx::Error> {
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => Some(&**e),
        _ => None,
    }
}

/// The primary result code of a SQLite error (its extended code's low
/// byte); `None` for any other error.
fn sqlite_primary_code(error: &sea_orm::sqlx::Error) -> Option<i32> {
    let sea_orm::sqlx::Error::Database(db) = error else {
        return None;
    };
    db.try_downcast_ref::<SqliteError>()?;
    let code: i32 = db.code()?.parse().ok()?;
    Some(code & 0xff)
}

/// Whether `err` is SQLite failing to write its file: the disk is full
/// (`SQLITE_FULL`), or the write itself failed (`SQLITE_IOERR`, which is
/// what some writes report for `ENOSPC`). Such calls answer
/// `SERVICE_UNAVAILABLE` and mark the storage full.
pub fn is_storage_full(err: &DbErr) -> bool {
    sqlx_error(err)
        .and_then(sqlite_primary_code)
        .is_some_and(|code| matches!(code, SQLITE_FULL | SQLITE_IOERR))
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

    /// A real `SQLITE_FULL`, without filling a disk: SQLite refuses to grow
    /// a database past `max_page_count` with the same error.
    #[tokio::test]
    async fn a_full_sqlite_database_is_storage_full_and_answers_503() {
        use sea_orm::ConnectionTrait;
        let db = crate::db::connect("sqlite::memory:").await.expect("db");
        db.execute_unprepared("CREATE TABLE t (x BLOB UNIQUE)")
            .await
            .expect("table");
        db.execute_unprepared("INSERT INTO t VALUES (x'00')")
            .await
            .expect("row");
        let duplicate = db
            .execute_unprepared("INSERT INTO t VALUES (x'00')")
            .await
            .expect_err("unique");
        assert!(!is_storage_full(&duplicate) && !is_unavailable(&duplicate));

        db.execute_unprepared("PRAGMA max_page_count = 3")
            .await
            .expect("pragma");
        let full = db
            .execute_unprepared("INSERT INTO t VALUES (randomblob(100000))")
            .await
            .expect_err("full");
        assert!(is_storage_full(&full), "{full}");
        assert!(!is_unavailable(&full));

        let answered = gatehouse::RpcError::from(crate::error::AuthError::Db(full));
        assert_eq!(answered.code, gatehouse::ErrorCode::ServiceUnavailable);
        assert!(
            answered
                .headers
                .iter()
                .any(|(name, value)| name == "retry-after"
                    && value.to_str().ok() == Some(&STORAGE_RETRY_AFTER_SECS.to_string())),
            "{:?}",
            answered.headers
        );
        assert!(
            answered
                .cause
                .as_deref()
                .is_some_and(|cause| cause.is::<StorageFull>())
        );
    }
}
