//! The upper bounds for `bench/run`: a bare axum 0.8 route that answers
//! `GET /trpc/auth.me` with a fixed body shaped like Gatehouse's answer, on
//! the same tokio runtime settings as the `gatehouse` binary
//! (`#[tokio::main]`, multi-threaded, one worker per allowed core). Whatever
//! Gatehouse spends above this is framework, auth and database work.
//!
//! With `BASELINE_SESSION_DB` set, the route first does the work `docs/api.md`
//! demands of every guarded call and nothing else: verify the bearer token
//! (HS256, issuer, `exp`/`nbf`, with `JWT_SECRET`) and read its session and
//! user in one SQLite statement, the way Gatehouse's fast path does. That
//! is the bound for any server that must check sessions per call; what
//! Gatehouse spends above it is routing, the tRPC envelope, JSON, logging
//! and middleware.
//!
//! With `BASELINE_SESSION_PG` (a PostgreSQL URL) instead, the same check
//! reads the session and user from Gatehouse's PostgreSQL database through
//! a sqlx pool of `BASELINE_PG_POOL` connections (default 16, Gatehouse's
//! default): the same driver Gatehouse reaches PostgreSQL with, without the
//! ORM, one prepared statement, the same query.
//!
//! With `BASELINE_SESSION_CACHE=1` beside `BASELINE_SESSION_DB`, each
//! thread's connection also keeps the verdicts it read while SQLite's
//! `PRAGMA data_version` stays the same, the exact cache Gatehouse's fast
//! path keeps (`procedures/src/sessions/read.rs`): the bound for the same
//! work done the same way, so that what Gatehouse spends above it is the
//! framework alone.
//!
//! Env: `GATEHOUSE_ADDR` (default `127.0.0.1:0`); `BASELINE_SESSION_DB` (a
//! Gatehouse SQLite file) and `BASELINE_SESSION_CACHE`, or
//! `BASELINE_SESSION_PG`, `BASELINE_PG_POOL`,
//! `JWT_SECRET`, `GATEHOUSE_JWT_ISSUER` (default `gatehouse`). Prints
//! `bench-baseline listening on http://ip:port` on stdout once bound.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// Same bytes a real `auth.me` returns for a seeded user, so response size
/// and header count match the Gatehouse scenario.
const ME_BODY: &str = r#"{"result":{"data":{"json":{"id":"0193a4f2-7b1c-7d3e-9a2b-4c5d6e7f8a9b","email":"bench-user-0@example.com","firstName":"Bench","lastName":"User0","role":"VIEWER","phone":null,"createdAt":"2026-11-22T04:00:00.000000Z","updatedAt":"2026-11-22T04:00:00.000000Z"}}}}"#;

/// Gatehouse's session ⋈ user read (`procedures/src/sessions/read.rs`,
/// without the `expires_at` and `username` columns no check here needs).
const SESSION_USER_SQL: &str = "SELECT s.id, s.user_id, s.current_jti, s.previous_jti, \
     s.rotated_at, s.last_used_at, s.revoked_at, \
     u.id, u.email, u.password_hash, u.first_name, u.last_name, u.phone, u.role, \
     u.created_at, u.updated_at \
     FROM sessions s LEFT JOIN users u ON u.id = s.user_id WHERE s.id = $1";

fn fixed_answer() -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::VARY, "trpc-accept, accept"),
        ],
        ME_BODY,
    )
        .into_response()
}

async fn me() -> Response {
    fixed_answer()
}

/// What the session-checking route needs: the key and rules to verify
/// tokens, and the database file to read sessions from.
struct SessionCheck {
    key: DecodingKey,
    validation: Validation,
    db: SessionStore,
}

/// Where the session ⋈ user row is read from.
enum SessionStore {
    /// A SQLite file, one read-only connection per runtime thread; `cache`:
    /// keep verdicts while `PRAGMA data_version` is unchanged.
    Sqlite { path: PathBuf, cache: bool },
    /// A PostgreSQL database through a sqlx pool.
    Postgres(sqlx::PgPool),
}

/// The same read in PostgreSQL's placeholder syntax.
const SESSION_USER_SQL_PG: &str = "SELECT s.id, s.user_id, s.current_jti, s.previous_jti, \
     s.rotated_at, s.last_used_at, s.revoked_at, \
     u.id, u.email, u.password_hash, u.first_name, u.last_name, u.phone, u.role, \
     u.created_at, u.updated_at \
     FROM sessions s LEFT JOIN users u ON u.id = s.user_id WHERE s.id = $1";

#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    sid: String,
}

/// One thread's read-only connection and, when caching, the verdicts it
/// read since the database last changed: session id → (user id, alive).
struct Reader {
    conn: rusqlite::Connection,
    version: i64,
    verdicts: HashMap<String, (String, bool)>,
}

thread_local! {
    /// One reader per runtime thread, opened on first use.
    static READER: RefCell<Option<Reader>> = const { RefCell::new(None) };
}

impl SessionCheck {
    fn from_env(db: SessionStore) -> anyhow::Result<Self> {
        let secret = std::env::var("JWT_SECRET")?;
        let issuer =
            std::env::var("GATEHOUSE_JWT_ISSUER").unwrap_or_else(|_| "gatehouse".to_owned());
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "sub"]);
        validation.leeway = 1;
        validation.validate_nbf = true;
        Ok(Self {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            db,
        })
    }

    /// The token's claims when it is valid.
    fn claims(&self, headers: &HeaderMap) -> Option<Claims> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))?;
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .ok()
            .map(|data| data.claims)
    }

    /// True when the token is valid and its session is alive and belongs to
    /// the token's user.
    async fn check(&self, headers: &HeaderMap) -> bool {
        let Some(claims) = self.claims(headers) else {
            return false;
        };
        match &self.db {
            SessionStore::Sqlite { path, cache } => Self::check_sqlite(path, *cache, &claims),
            SessionStore::Postgres(pool) => Self::check_postgres(pool, &claims).await,
        }
    }

    async fn check_postgres(pool: &sqlx::PgPool, claims: &Claims) -> bool {
        use sqlx::Row as _;
        let Ok(Some(row)) = sqlx::query(SESSION_USER_SQL_PG)
            .bind(claims.sid.as_str())
            .fetch_optional(pool)
            .await
        else {
            return false;
        };
        let user_id: Result<String, _> = row.try_get(1);
        let revoked_at: Result<Option<i64>, _> = row.try_get(6);
        let user: Result<Option<String>, _> = row.try_get(7);
        matches!((user_id, revoked_at, user), (Ok(u), Ok(None), Ok(Some(_))) if u == claims.sub)
    }

    fn check_sqlite(path: &std::path::Path, cache: bool, claims: &Claims) -> bool {
        READER.with(|cell| {
            let mut cell = cell.borrow_mut();
            if cell.is_none() {
                *cell = Reader::open(path);
            }
            let verdict = cell
                .as_mut()
                .and_then(|reader| reader.verdict(&claims.sid, cache));
            matches!(verdict, Some((user_id, true)) if user_id == claims.sub)
        })
    }
}

impl Reader {
    fn open(path: &std::path::Path) -> Option<Self> {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()?;
        Some(Self {
            conn,
            version: i64::MIN,
            verdicts: HashMap::new(),
        })
    }

    /// The session's user id and whether it is alive; with `cache`, from
    /// the verdicts kept while `PRAGMA data_version` is unchanged (read
    /// first, then the row, as Gatehouse does).
    fn verdict(&mut self, sid: &str, cache: bool) -> Option<(String, bool)> {
        if !cache {
            return self.read(sid);
        }
        let version = self
            .conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |row| row.get::<_, i64>(0)))
            .ok()?;
        if version != self.version {
            self.verdicts.clear();
            self.version = version;
        }
        if let Some(verdict) = self.verdicts.get(sid) {
            return Some(verdict.clone());
        }
        let verdict = self.read(sid)?;
        self.verdicts.insert(sid.to_owned(), verdict.clone());
        Some(verdict)
    }

    /// The session's user id and whether the session is alive (not revoked,
    /// its user still there), read from the file.
    fn read(&self, sid: &str) -> Option<(String, bool)> {
        let mut statement = self.conn.prepare_cached(SESSION_USER_SQL).ok()?;
        statement
            .query_row([sid], |row| {
                let user_id: String = row.get(1)?;
                let revoked_at: Option<i64> = row.get(6)?;
                let user: Option<String> = row.get(7)?;
                Ok((user_id, revoked_at.is_none() && user.is_some()))
            })
            .ok()
    }
}

async fn me_checked(State(check): State<Arc<SessionCheck>>, headers: HeaderMap) -> Response {
    if check.check(&headers).await {
        fixed_answer()
    } else {
        StatusCode::UNAUTHORIZED.into_response()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::var("GATEHOUSE_ADDR").unwrap_or_else(|_| "127.0.0.1:0".to_owned());
    let probes = Router::new()
        .route("/readyz", get(|| async { "ok" }))
        .route("/healthz", get(|| async { "ok" }));
    let store = if let Some(db) = std::env::var_os("BASELINE_SESSION_DB") {
        Some(SessionStore::Sqlite {
            path: PathBuf::from(db),
            cache: std::env::var("BASELINE_SESSION_CACHE").is_ok_and(|v| v == "1"),
        })
    } else if let Ok(url) = std::env::var("BASELINE_SESSION_PG") {
        let size = match std::env::var("BASELINE_PG_POOL") {
            Ok(v) => v.parse()?,
            Err(_) => 16,
        };
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(size)
            .min_connections(1)
            .connect(&url)
            .await?;
        Some(SessionStore::Postgres(pool))
    } else {
        None
    };
    let app = match store {
        None => probes.route("/trpc/auth.me", get(me)),
        Some(store) => {
            let check = Arc::new(SessionCheck::from_env(store)?);
            probes.route("/trpc/auth.me", get(me_checked).with_state(check))
        }
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "bench-baseline listening on http://{}",
        listener.local_addr()?
    );
    // Same socket option as `gatehouse::server::serve`.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}
