//! Database connection (SQLite or PostgreSQL), migrations and small SQL
//! helpers shared by the procedures.

use std::path::PathBuf;
use std::time::Duration;

use gatehouse_migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    Select, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait, Value,
};

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL {0:?} is not supported (expected sqlite://… or postgres://…)")]
    Unsupported(String),
    #[error("could not create the folder {path} for the SQLite database: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not connect to the database: {0}")]
    Connect(DbErr),
    #[error("could not apply migrations: {0}")]
    Migrate(DbErr),
}

/// The SQLite file path of a `sqlite:` URL, if it names a file
/// (`?mode=memory` names an in-memory database, whatever the path says).
pub(crate) fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.split('&').any(|p| p == "mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

/// SQLite pool size: the cores this process may run on, plus one.
fn sqlite_pool_size() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    u32::try_from(cores).unwrap_or(u32::MAX).saturating_add(1)
}

/// PostgreSQL pool size when none is configured: enough for a database
/// server with a few cores to be kept busy, few enough that several
/// instances fit in PostgreSQL's default `max_connections` (100).
pub const POSTGRES_POOL_SIZE: u32 = 16;

/// How long a call waits for a pooled connection by default. Long enough
/// for a busy pool to hand one out; it also bounds how long calls already
/// waiting when the database goes away take to fail (later calls fail at
/// once, see [`crate::db_health`]).
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// Opens the database named by `url` with the default acquire timeout; see
/// [`connect_with`].
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbError> {
    connect_with(url, DEFAULT_ACQUIRE_TIMEOUT).await
}

/// Opens the database named by `url`, creating a SQLite file and its folders
/// if needed (WAL mode, busy timeout, foreign keys on). A call waits at most
/// `acquire_timeout` for a pooled connection.
pub async fn connect_with(
    url: &str,
    acquire_timeout: Duration,
) -> Result<DatabaseConnection, DbError> {
    connect_sized(url, acquire_timeout, None).await
}

/// [`connect_with`] with a pool of at most `max_connections` (`None`: the
/// default of the backend, see [`POSTGRES_POOL_SIZE`] and the SQLite size).
pub async fn connect_sized(
    url: &str,
    acquire_timeout: Duration,
    max_connections: Option<u32>,
) -> Result<DatabaseConnection, DbError> {
    let mut options = ConnectOptions::new(url.to_owned());
    // sea-orm hands both to the pool as its one acquire timeout.
    options
        .sqlx_logging(false)
        .connect_timeout(acquire_timeout)
        .acquire_timeout(acquire_timeout);
    if url.starts_with("sqlite:") {
        if let Some(path) = sqlite_path(url)
            && let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|source| DbError::CreateDir {
                path: parent.to_owned(),
                source,
            })?;
        }
        // One connection per core plus one: reads run in parallel with WAL,
        // and writers are serialised by SQLite itself (waiting up to the busy
        // timeout). Each sqlx-sqlite connection is its own worker thread and
        // SQLite reads are CPU-bound, so more connections than cores only add
        // wake-ups and cache churn.
        options
            .max_connections(max_connections.unwrap_or_else(sqlite_pool_size))
            .min_connections(1);
        // FULL: every commit reaches the disk (fsync of the WAL) before the
        // call that made it is answered, so an acknowledged logout or
        // registration survives a power cut as well as a crashed process
        // (NORMAL survives only the latter). See docs/operating.md.
        options.map_sqlx_sqlite_opts(|o| {
            o.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
        options.map_sqlx_sqlite_pool_opts(|pool| {
            pool.after_release(|conn, _| Box::pin(leaves_no_transaction(conn)))
        });
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        options
            .max_connections(max_connections.unwrap_or(POSTGRES_POOL_SIZE))
            .min_connections(1);
        options.map_sqlx_postgres_pool_opts(|pool| {
            pool.after_release(|conn, _| Box::pin(leaves_no_transaction(conn)))
        });
    } else {
        return Err(DbError::Unsupported(url.to_owned()));
    }
    Database::connect(options).await.map_err(DbError::Connect)
}

/// Counter of pooled connections closed because a transaction on them
/// ended abnormally (see [`leaves_no_transaction`]).
pub const DB_CONNECTIONS_DISCARDED_TOTAL: &str = "gatehouse_db_connections_discarded_total";

/// The pool's check of a connection coming back from a call: whether it may
/// be handed out again (`Ok(false)` closes it).
///
/// A transaction whose `COMMIT` or `ROLLBACK` failed can leave the driver's
/// bookkeeping and the database out of step. SQLite rolls a transaction
/// back by itself on a full disk, so the `ROLLBACK` that follows fails and
/// the driver still counts one transaction open; it would then run the next
/// caller's `BEGIN` as a `SAVEPOINT` nested in whatever is left, whose
/// "commit" commits nothing while holding the write lock (acknowledged
/// writes lost, every other connection locked out). Such a connection is
/// closed instead: closing rolls back anything still open, and the pool
/// opens a fresh one. The rollback a dropped transaction queues is run
/// first (one round trip, only on that path), so a transaction that ended
/// normally, committed or rolled back, costs nothing here.
async fn leaves_no_transaction<C: sea_orm::sqlx::Connection>(
    conn: &mut C,
) -> Result<bool, sea_orm::sqlx::Error> {
    if !conn.is_in_transaction() {
        return Ok(true);
    }
    conn.ping().await?;
    if conn.is_in_transaction() {
        tracing::warn!(
            "a database connection is still inside a transaction whose commit or rollback \
             failed; closing it"
        );
        metrics::counter!(DB_CONNECTIONS_DISCARDED_TOTAL).increment(1);
        return Ok(false);
    }
    Ok(true)
}

/// Applies every pending migration. Instances started together on one
/// PostgreSQL may race to apply the same migration; the loser's attempt
/// fails on the bookkeeping row, so it retries and then finds nothing to do.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbError> {
    let mut attempt = 0;
    loop {
        match Migrator::up(db, None).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 3 => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "migration failed; retrying");
                tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
            }
            Err(e) => return Err(DbError::Migrate(e)),
        }
    }
}

/// Starts a transaction that will write. On SQLite it takes the write lock at
/// `BEGIN` (`IMMEDIATE`) so a read-then-write transaction never fails with
/// `SQLITE_BUSY` on lock upgrade; PostgreSQL uses its default.
pub async fn begin_write(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    if db.get_database_backend() == DbBackend::Sqlite {
        db.begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await
    } else {
        db.begin().await
    }
}

/// A raw statement, for the few the query builder cannot express (an
/// upsert with computed columns, a locking CTE). Written once for both
/// databases with PostgreSQL's numbered placeholders (`$1`, `$2`, …):
/// SQLite reads `$1` as a named parameter and sqlx's SQLite driver binds
/// `$N` to value N, so the text needs no rewriting.
pub fn sql(backend: DbBackend, text: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(backend, text, values)
}

/// The row of a primary-key or unique lookup, if any.
///
/// Use this instead of sea-orm's `.one()`: `.one()` appends `LIMIT ?` with the
/// `1` as a *bound* parameter, and SQLite's planner peeks at bound `LIMIT`
/// values, so sqlx's re-binding expires the cached statement and SQLite
/// re-prepares it from its text on every execution (≈ 25 % of the server's
/// CPU on `auth.me`, see `bench/PROFILE.md`). A key lookup returns at most
/// one row, so no `LIMIT` is needed at all.
pub async fn fetch_unique<E: EntityTrait>(
    select: Select<E>,
    db: &impl ConnectionTrait,
) -> Result<Option<E::Model>, DbErr> {
    Ok(select.all(db).await?.into_iter().next())
}

/// Now as Unix milliseconds, the unit of every timestamp column.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A stored timestamp as an RFC 3339 string for the API.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Whether an error is a unique-constraint violation (e.g. a duplicate email).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// A unique violation of the `username` index (`idx_users_username`):
/// SQLite names the column (`UNIQUE constraint failed: users.username`),
/// PostgreSQL the index; both messages contain `username`, the email's
/// (`users.email`, `users_email_key`) does not.
pub fn is_username_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(message)) if message.contains("username")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite://./data/x.db"),
            Some(PathBuf::from("./data/x.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:///tmp/x.db?mode=rwc"),
            Some(PathBuf::from("/tmp/x.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(
            sqlite_path("sqlite://shared?mode=memory&cache=shared"),
            None
        );
        assert_eq!(sqlite_path("sqlite://x.db?cache=shared&mode=memory"), None);
    }

    #[tokio::test]
    async fn the_configured_pool_size_reaches_the_pool() {
        let max = |db: &DatabaseConnection| {
            db.get_sqlite_connection_pool()
                .options()
                .get_max_connections()
        };
        let sized = connect_sized("sqlite::memory:", DEFAULT_ACQUIRE_TIMEOUT, Some(7))
            .await
            .expect("connect");
        assert_eq!(max(&sized), 7);
        let default = connect("sqlite::memory:").await.expect("connect");
        assert_eq!(max(&default), sqlite_pool_size());
    }
}
