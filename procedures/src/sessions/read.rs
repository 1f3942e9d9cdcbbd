//! The one read every use of a token makes (each guarded call, and
//! `auth.refreshToken`): the token's session joined with its user, which
//! [`super::verdict`] then judges.
//!
//! It is the hottest query of the service. On a SQLite file it skips the
//! ORM and sqlx: sqlx-sqlite runs each connection on its
//! own worker thread and hands every query over a channel, so one
//! primary-key read costs two thread wake-ups, more CPU than SQLite spends
//! on the read itself (`bench/PROFILE.md`). [`SessionReader`] instead runs the
//! read synchronously on the calling thread through a small set of
//! read-only rusqlite connections: in WAL mode a reader never waits for a
//! writer, and a key lookup takes a few microseconds. Anything unusual (the
//! file cannot be opened, the database is busy) falls back to the pooled
//! sqlx connection, which may wait; the fast path itself never blocks.
//!
//! Measured (`bench/PROFILE.md`, commit 7ae71de, A/B on a quiet machine):
//! `auth.me` went from 15.8k to 35.0k req/s (+119 %) with this path, which
//! is why it keeps its own SQL. PostgreSQL and the fallback run the same
//! fixed SQL through sea-orm's pool as a raw statement (prepared once per
//! connection by sqlx, columns decoded by position): no query building per
//! call, the same join the PostgreSQL bound of `bench/run` sends.
//!
//! Both paths read the committed state of the database at the moment of the
//! call, so a revocation by any connection or process is seen at once.
//!
//! Each fast-path connection also keeps the rows it read, valid while
//! SQLite's `PRAGMA data_version` on that connection stays the same. That
//! number changes whenever any other connection, of this process or another
//! one, commits to the file, and these connections never write; so a cached
//! row is served only while nothing at all has been committed since it was
//! read, and the first call after any commit (a logout, a role change, a
//! refresh, another instance's revocation) reads afresh. The check costs
//! about a third of the read it replaces (`bench/PROFILE.md`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};

use crate::db::sqlite_path;
use crate::entities::user;

/// The session ⋈ user read of the SQLite fast path as one fixed, cached
/// statement: no query building per call, no bound `LIMIT` (which makes
/// SQLite re-prepare the statement on every run), columns decoded by
/// position. `LEFT JOIN` so that a session whose user is gone still yields
/// a row, judged by [`super::validate`] once the session itself checks out.
macro_rules! session_user_sql {
    ($param:literal) => {
        concat!(
            "SELECT s.id, s.user_id, s.current_jti, s.previous_jti, ",
            "s.rotated_at, s.last_used_at, s.revoked_at, s.expires_at, ",
            "u.id, u.email, u.password_hash, u.first_name, u.last_name, u.phone, u.role, ",
            "u.created_at, u.updated_at, u.username ",
            "FROM sessions s LEFT JOIN users u ON u.id = s.user_id WHERE s.id = ",
            $param
        )
    };
}
const SESSION_USER_SQL: &str = session_user_sql!("?1");
/// [`SESSION_USER_SQL`] in PostgreSQL's placeholder syntax.
const SESSION_USER_SQL_PG: &str = session_user_sql!("$1");

/// Counter of session reads that fell back from the SQLite fast path to the
/// pool, labelled `reason` (`busy`: the database was locked; `error`:
/// anything else, such as a file that cannot be opened).
pub const SESSION_READ_FALLBACKS: &str = "gatehouse_session_read_fallbacks_total";

/// The session columns a token check needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub current_jti: String,
    pub previous_jti: Option<String>,
    pub rotated_at: Option<i64>,
    pub last_used_at: i64,
    pub revoked_at: Option<i64>,
    /// End of the absolute refresh window, for `auth.refreshToken`.
    pub expires_at: i64,
}

/// A session and, when its user still exists, the user.
pub(crate) type SessionUser = (SessionRow, Option<user::Model>);

/// Decodes one [`SESSION_USER_SQL`] row by column index, from rusqlite
/// (`$row.get`) or sea-orm (`$row.try_get_by_index`).
macro_rules! decode_row {
    ($row:expr, $get:ident) => {{
        let row = $row;
        let session = SessionRow {
            id: row.$get(0)?,
            user_id: row.$get(1)?,
            current_jti: row.$get(2)?,
            previous_jti: row.$get(3)?,
            rotated_at: row.$get(4)?,
            last_used_at: row.$get(5)?,
            revoked_at: row.$get(6)?,
            expires_at: row.$get(7)?,
        };
        let user_id: Option<String> = row.$get(8)?;
        let user = match user_id {
            None => None,
            Some(id) => Some(user::Model {
                id,
                email: row.$get(9)?,
                password_hash: row.$get(10)?,
                first_name: row.$get(11)?,
                last_name: row.$get(12)?,
                phone: row.$get(13)?,
                role: row.$get(14)?,
                created_at: row.$get(15)?,
                updated_at: row.$get(16)?,
                username: row.$get(17)?,
            }),
        };
        (session, user)
    }};
}

fn decode_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionUser> {
    Ok(decode_row!(row, get))
}

/// Reads sessions for token checks; see the module docs.
pub(crate) struct SessionReader {
    /// Read-only connections to the SQLite file, when the database is one.
    sqlite: Option<SqliteReaders>,
}

impl SessionReader {
    /// A reader that always goes through the ORM connection.
    pub fn pooled() -> Self {
        Self { sqlite: None }
    }

    /// A reader for the database at `url`: the synchronous fast path for a
    /// SQLite file, the ORM connection for anything else (PostgreSQL, an
    /// in-memory SQLite database, which other connections cannot see).
    pub fn for_url(url: &str) -> Self {
        let sqlite = sqlite_path(url).map(SqliteReaders::new);
        if sqlite.is_some() {
            metrics::describe_counter!(
                SESSION_READ_FALLBACKS,
                "Session reads that left the SQLite fast path for the pool, by reason"
            );
        }
        Self { sqlite }
    }

    /// The session `sid` with its user, or `None` if there is no such
    /// session.
    pub async fn read(
        &self,
        db: &DatabaseConnection,
        sid: &str,
    ) -> Result<Option<SessionUser>, DbErr> {
        if let Some(found) = self.read_fast(sid) {
            return Ok(found);
        }
        // Boxed: the pool's query future is large, and inline it would
        // make every guarded call's future (moved and boxed per call) that
        // much larger, though the SQLite fast path never runs it.
        Box::pin(read_pooled(db, sid)).await
    }

    /// The fast path's answer, or `None` when there is no fast path or it
    /// failed, so the caller goes through the pool. Failures are counted in
    /// [`SESSION_READ_FALLBACKS`]: a steady count means every guarded call
    /// pays for the pool (e.g. the server cannot open the file read-only).
    fn read_fast(&self, sid: &str) -> Option<Option<SessionUser>> {
        match self.sqlite.as_ref()?.read(sid) {
            Ok(found) => Some(found),
            Err(error) => {
                let reason = if error.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                {
                    "busy"
                } else {
                    "error"
                };
                metrics::counter!(SESSION_READ_FALLBACKS, "reason" => reason).increment(1);
                tracing::debug!(%error, reason, "fast session read failed; using the pool");
                None
            }
        }
    }
}

/// The read through sea-orm's pool (PostgreSQL, or the SQLite fallback):
/// the same fixed SQL as a raw statement.
async fn read_pooled(db: &DatabaseConnection, sid: &str) -> Result<Option<SessionUser>, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => SESSION_USER_SQL_PG,
        _ => SESSION_USER_SQL,
    };
    let statement = Statement::from_sql_and_values(backend, sql, [sid.into()]);
    let Some(row) = db.query_one_raw(statement).await? else {
        return Ok(None);
    };
    Ok(Some(decode_row!(&row, try_get_by_index)))
}

/// Idle read-only rusqlite connections to one SQLite file.
///
/// The read is synchronous, so at most one connection per thread that runs
/// it (the runtime's workers) is ever in use: the set grows to that size and
/// stays there.
struct SqliteReaders {
    path: PathBuf,
    idle: Mutex<Vec<Reader>>,
}

/// Rows one connection keeps at most; when full it starts over, so memory
/// stays bounded whatever the number of sessions (a few hundred bytes each).
const CACHED_ROWS: usize = 1024;

/// One read-only connection and the rows it has read since the database
/// last changed (see the module docs).
struct Reader {
    conn: rusqlite::Connection,
    /// `PRAGMA data_version` when `rows` were read.
    version: i64,
    rows: HashMap<String, SessionUser>,
}

impl Reader {
    fn open(path: &Path) -> rusqlite::Result<Self> {
        Ok(Self {
            conn: open_reader(path)?,
            version: i64::MIN,
            rows: HashMap::new(),
        })
    }

    fn read(&mut self, sid: &str) -> rusqlite::Result<Option<SessionUser>> {
        // Read before the row: a commit between the two leaves the row
        // newer than `version`, so the next call sees a change and rereads;
        // never the other way round.
        let version = self
            .conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |row| row.get(0))?;
        if version != self.version {
            self.rows.clear();
            self.version = version;
        } else if let Some(row) = self.rows.get(sid) {
            return Ok(Some(row.clone()));
        }
        let found = query(&self.conn, sid)?;
        if let Some(row) = &found {
            if self.rows.len() >= CACHED_ROWS {
                self.rows.clear();
            }
            self.rows.insert(sid.to_owned(), row.clone());
        }
        Ok(found)
    }
}

impl SqliteReaders {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn read(&self, sid: &str) -> rusqlite::Result<Option<SessionUser>> {
        let mut reader = match self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            Some(reader) => reader,
            None => Reader::open(&self.path)?,
        };
        let result = reader.read(sid);
        // A connection that failed may be in a bad state; drop it (and its
        // rows) and let the next call open a fresh one.
        if result.is_ok()
            && let Ok(mut idle) = self.idle.lock()
        {
            idle.push(reader);
        }
        result
    }
}

/// Opens a read-only connection that never waits: a zero busy timeout makes
/// a locked database an immediate `SQLITE_BUSY`, which sends the caller to
/// the pooled path instead of blocking a runtime thread.
fn open_reader(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::ZERO)?;
    Ok(conn)
}

fn query(conn: &rusqlite::Connection, sid: &str) -> rusqlite::Result<Option<SessionUser>> {
    let mut statement = conn.prepare_cached(SESSION_USER_SQL)?;
    let mut rows = statement.query([sid])?;
    match rows.next()? {
        None => Ok(None),
        Some(row) => Ok(Some(decode_row(row)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{connect, migrate};
    use sea_orm::ConnectionTrait;

    async fn fixture() -> (tempfile::TempDir, String, DatabaseConnection) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let db = connect(&url).await.expect("connect");
        migrate(&db).await.expect("migrate");
        (dir, url, db)
    }

    async fn exec(db: &DatabaseConnection, text: &str) {
        db.execute_unprepared(text).await.expect(text);
    }

    /// What the ORM makes of the same read, to check the fixed SQL against.
    async fn read_orm(db: &DatabaseConnection, sid: &str) -> Option<SessionUser> {
        use crate::entities::session;
        use sea_orm::EntityTrait;
        let rows = session::Entity::find_by_id(sid.to_owned())
            .find_also_related(user::Entity)
            .all(db)
            .await
            .expect("ORM read");
        rows.into_iter()
            .next()
            .map(|(session, user)| (SessionRow::from(&session), user))
    }

    /// Reads `sid` through both paths and checks they agree with each other
    /// and with the ORM.
    async fn read_both(
        reader: &SessionReader,
        db: &DatabaseConnection,
        sid: &str,
    ) -> Option<SessionUser> {
        let fast = reader
            .sqlite
            .as_ref()
            .expect("a SQLite file gets the fast path")
            .read(sid)
            .expect("fast read");
        let pooled = read_pooled(db, sid).await.expect("pooled read");
        assert_eq!(fast, pooled, "fast and pooled reads differ for {sid}");
        assert_eq!(
            fast,
            read_orm(db, sid).await,
            "the ORM reads {sid} otherwise"
        );
        fast
    }

    #[tokio::test]
    async fn fast_and_pooled_reads_agree_and_see_every_commit_at_once() {
        let (_dir, url, db) = fixture().await;
        let reader = SessionReader::for_url(&url);
        assert!(read_both(&reader, &db, "s1").await.is_none());

        exec(
            &db,
            "INSERT INTO users (id, email, password_hash, first_name, last_name, phone, role, \
             created_at, updated_at) VALUES ('u1', 'a@example.com', 'h', 'A', 'B', NULL, \
             'VIEWER', 1, 2)",
        )
        .await;
        exec(
            &db,
            "INSERT INTO sessions (id, user_id, current_jti, previous_jti, rotated_at, \
             created_at, last_used_at, expires_at, revoked_at, user_agent, ip) VALUES \
             ('s1', 'u1', 'j1', NULL, NULL, 10, 11, 12, NULL, NULL, NULL)",
        )
        .await;
        let (session, user) = read_both(&reader, &db, "s1").await.expect("session");
        assert_eq!(session.current_jti, "j1");
        // Kept, and served from memory while nothing is committed.
        let cached = |sid: &str| {
            let idle = reader
                .sqlite
                .as_ref()
                .expect("fast")
                .idle
                .lock()
                .expect("lock");
            idle.iter().any(|r| r.rows.contains_key(sid))
        };
        assert!(cached("s1"), "the row was not kept");
        assert_eq!(
            read_both(&reader, &db, "s1").await.expect("session").0,
            session
        );
        assert_eq!(session.revoked_at, None);
        let user = user.expect("user");
        assert_eq!((user.email.as_str(), user.phone), ("a@example.com", None));

        // A revocation committed through the pool is seen by the next read
        // on an already-open reader connection.
        exec(&db, "UPDATE sessions SET revoked_at = 99 WHERE id = 's1'").await;
        let (session, _) = read_both(&reader, &db, "s1").await.expect("session");
        assert_eq!(session.revoked_at, Some(99));

        // A session whose user is gone still yields its row, without a user.
        // (One call, so both statements run on the same pooled connection.)
        exec(
            &db,
            "PRAGMA foreign_keys = OFF; DELETE FROM users WHERE id = 'u1'",
        )
        .await;
        let (_, user) = read_both(&reader, &db, "s1").await.expect("session");
        assert!(user.is_none());
    }

    #[tokio::test]
    async fn memory_databases_and_postgres_use_the_pool() {
        assert!(SessionReader::for_url("sqlite::memory:").sqlite.is_none());
        assert!(SessionReader::for_url("postgres://u@h/db").sqlite.is_none());
    }

    #[tokio::test]
    async fn an_unreadable_file_falls_back_to_the_pool() {
        let (dir, _url, db) = fixture().await;
        // Point the fast path at a file that is not a database: every fast
        // read fails, and `read` still answers through the pool.
        let bogus = dir.path().join("not-a-db");
        std::fs::write(&bogus, b"this is not sqlite").expect("write");
        let reader = SessionReader {
            sqlite: Some(SqliteReaders::new(bogus)),
        };
        assert!(reader.sqlite.as_ref().expect("fast").read("s1").is_err());
        assert!(reader.read(&db, "s1").await.expect("pooled").is_none());
        assert_eq!(
            fallbacks(|| reader.read_fast("s1")),
            vec![("error".to_owned(), 1)]
        );
    }

    #[tokio::test]
    async fn a_locked_database_is_a_busy_fallback_not_a_wait() {
        let (dir, url, db) = fixture().await;
        db.close().await.expect("close the pool");
        // A connection in exclusive locking mode keeps every other
        // connection out, even WAL readers.
        let locker = rusqlite::Connection::open(dir.path().join("t.db")).expect("open");
        locker
            .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; COMMIT;")
            .expect("lock");
        let reader = SessionReader::for_url(&url);
        let started = std::time::Instant::now();
        assert_eq!(
            fallbacks(|| reader.read_fast("s1")),
            vec![("busy".to_owned(), 1)]
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "the fast path waited for the lock"
        );
        drop(locker);
        assert_eq!(fallbacks(|| reader.read_fast("s1")), vec![]);
    }

    /// Runs `read` (which must take the fallback, answering `None`, when it
    /// counts one) and returns the fallback counts it recorded, by reason.
    fn fallbacks(read: impl FnOnce() -> Option<Option<SessionUser>>) -> Vec<(String, u64)> {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let answer = metrics::with_local_recorder(&recorder, read);
        let counts: Vec<(String, u64)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == SESSION_READ_FALLBACKS)
            .map(|(key, _, _, value)| {
                let reason = key
                    .key()
                    .labels()
                    .find(|l| l.key() == "reason")
                    .map(|l| l.value().to_owned())
                    .unwrap_or_default();
                let DebugValue::Counter(n) = value else {
                    panic!("{SESSION_READ_FALLBACKS} is not a counter");
                };
                (reason, n)
            })
            .collect();
        assert_eq!(answer.is_none(), !counts.is_empty(), "fallback not counted");
        counts
    }
}
