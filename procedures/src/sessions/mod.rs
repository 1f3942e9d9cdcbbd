//! Login sessions: the one module that reads and writes the `sessions`
//! table and owns the token-rotation rules (see
//! `docs/api.md#tokens-and-sessions`).
//!
//! A session is one login. Its row names the token generation that is valid
//! now (`current_jti`) and the one a refresh replaced (`previous_jti`, valid
//! for the grace period after `rotated_at`); older generations retired
//! within the grace are in [`generations`]. Every token carries its
//! generation in its `jti`, so one row decides whether a token still works:
//!
//! - the current generation works until the session is revoked, within
//!   its token's own `exp` (a token issued near the end of the absolute
//!   refresh window still lives its full `JWT_TTL`; refresh stops at the
//!   window's end, see docs/api.md);
//! - a generation rotated away works for the grace period (several tabs
//!   refreshing at once must not log each other out);
//! - a rotated generation presented after its grace means the token was
//!   copied: the session is revoked.
//!
//! Whether a presented token still works is decided once, in [`validate`]
//! (`verdict.rs`), for both its uses: a guarded call and a refresh (which
//! then hands the generation to [`refresh`]).
//!
//! Statements use sea-orm's query builder, except the per-call read of
//! [`read`]: one fixed SQL statement, on a synchronous read-only SQLite
//! connection that keeps the rows it read while the file is unchanged
//! (exact, through `PRAGMA data_version`), or as a raw statement through
//! the pool on PostgreSQL. It doubled `auth.me` throughput (see that module).

mod generations;
pub(crate) mod read;
mod verdict;

use std::sync::{Arc, OnceLock};

use sea_orm::DatabaseConnection;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr,
    EntityTrait, QueryFilter, QueryOrder,
};
use uuid::Uuid;

use crate::db::{begin_write, fetch_unique};
use crate::entities::session::{ActiveModel, Column, Entity, Model};
use crate::events::EventHub;
use crate::events::{self, AccountEvent, EventTxn, RevokeReason};

pub(crate) use read::{SessionReader, SessionRow};
pub(crate) use verdict::{Presented, Purpose, Valid, validate};

/// A new, random token generation.
fn new_generation() -> String {
    Uuid::new_v4().simple().to_string()
}

/// Who opened a session, as shown in `auth.sessions`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origin {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// Opens a session for `user_id` whose refresh window ends `refresh_ms`
/// after `now`; returns `(session id, generation)` for the first token.
pub(crate) async fn open(
    db: &impl ConnectionTrait,
    user_id: &str,
    origin: Origin,
    refresh_ms: i64,
    now: i64,
) -> Result<(String, String), DbErr> {
    let sid = Uuid::new_v4().to_string();
    let generation = new_generation();
    ActiveModel {
        id: Set(sid.clone()),
        user_id: Set(user_id.to_owned()),
        current_jti: Set(generation.clone()),
        previous_jti: Set(None),
        rotated_at: Set(None),
        created_at: Set(now),
        last_used_at: Set(now),
        expires_at: Set(now.saturating_add(refresh_ms)),
        revoked_at: Set(None),
        user_agent: Set(origin.user_agent),
        ip: Set(origin.ip),
    }
    .insert(db)
    .await?;
    Ok((sid, generation))
}

/// The session `sid`, revoked or not.
pub(crate) async fn find(db: &impl ConnectionTrait, sid: &str) -> Result<Option<Model>, DbErr> {
    fetch_unique(Entity::find_by_id(sid.to_owned()), db).await
}

/// The live sessions of `user_id` whose refresh window ends after
/// `horizon`, newest first.
pub(crate) async fn live(
    db: &impl ConnectionTrait,
    user_id: &str,
    horizon: i64,
) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::UserId.eq(user_id))
        .filter(Column::RevokedAt.is_null())
        .filter(Column::ExpiresAt.gt(horizon))
        .order_by_desc(Column::CreatedAt)
        .all(db)
        .await
}

/// Whether a token of `generation` still works in this session row's
/// state: it is the current generation, or one rotated away less than
/// `grace_ms` ago. The previous generation is on the row itself; older ones
/// are looked up only when needed.
async fn generation_works(
    db: &impl ConnectionTrait,
    grace_ms: i64,
    row: &SessionRow,
    generation: &str,
    now: i64,
) -> Result<bool, DbErr> {
    if row.current_jti == generation {
        return Ok(true);
    }
    if grace_ms <= 0 {
        return Ok(false);
    }
    if row.previous_jti.as_deref() == Some(generation) {
        return Ok(row.rotated_at.is_some_and(|at| now - at <= grace_ms));
    }
    // Boxed for the same reason as `read`'s fallback: rarely run, large.
    Box::pin(generations::retired_since(
        db,
        &row.id,
        generation,
        now - grace_ms,
    ))
    .await
}

/// What a refresh with a token of some generation comes to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refresh {
    /// The session moved on to this new generation.
    Rotated(String),
    /// The token was rotated away moments ago (another tab refreshed
    /// first): here is the session's current generation instead.
    AlreadyRotated(String),
    /// A rotated token after its grace: the session is now revoked.
    Reused,
    /// The session ended meanwhile.
    Revoked,
}

/// Rotates session `session` away from `generation` (the refresh rules of
/// the module docs). `session` is the row as read and judged by
/// [`validate`] before; a concurrent refresh that wins the race is detected
/// and answered like a grace hit.
///
/// A reuse revokes the session in an [`EventTxn`] on `hub`, so its
/// subscribers in this process hear of it at once.
pub(crate) async fn refresh(
    db: &DatabaseConnection,
    hub: &OnceLock<Arc<EventHub>>,
    grace_ms: i64,
    session: SessionRow,
    generation: &str,
    now: i64,
) -> Result<Refresh, DbErr> {
    let mut current = session;
    if current.current_jti == generation {
        let next = new_generation();
        let txn = begin_write(db).await?;
        let rotated = Entity::update_many()
            .col_expr(Column::PreviousJti, Expr::col(Column::CurrentJti))
            .col_expr(Column::CurrentJti, Expr::value(next.clone()))
            .col_expr(Column::RotatedAt, Expr::value(now))
            .col_expr(Column::LastUsedAt, Expr::value(now))
            .filter(Column::Id.eq(current.id.clone()))
            .filter(Column::CurrentJti.eq(generation))
            .filter(Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        if rotated.rows_affected == 1 {
            generations::retire(&txn, &current.id, generation, now).await?;
            txn.commit().await?;
            return Ok(Refresh::Rotated(next));
        }
        drop(txn);
        // Lost a race with a parallel refresh: look again.
        match find(db, &current.id).await? {
            Some(row) if row.revoked_at.is_none() => current = SessionRow::from(&row),
            _ => return Ok(Refresh::Revoked),
        }
    }
    if generation_works(db, grace_ms, &current, generation, now).await? {
        return Ok(Refresh::AlreadyRotated(current.current_jti));
    }
    let txn = EventTxn::begin(db, hub).await?;
    revoke(&txn, &current.id, None, now, RevokeReason::Reused).await?;
    txn.commit().await?;
    Ok(Refresh::Reused)
}

/// Gives session `sid` a new generation and forgets every older one, so
/// only tokens issued from now on work (a password change). `None` when the
/// session is revoked.
pub(crate) async fn restart(
    txn: &impl ConnectionTrait,
    sid: &str,
    now: i64,
) -> Result<Option<String>, DbErr> {
    let next = new_generation();
    let rotated = Entity::update_many()
        .col_expr(Column::CurrentJti, Expr::value(next.clone()))
        .col_expr(Column::PreviousJti, Expr::value(Option::<String>::None))
        .col_expr(Column::RotatedAt, Expr::value(now))
        .col_expr(Column::LastUsedAt, Expr::value(now))
        .filter(Column::Id.eq(sid))
        .filter(Column::RevokedAt.is_null())
        .exec(txn)
        .await?;
    if rotated.rows_affected != 1 {
        return Ok(None);
    }
    generations::forget(txn, sid).await?;
    Ok(Some(next))
}

/// Ends session `sid` (only if it belongs to `owner`, when given); whether
/// a live session was ended. Its `session.revoked` event is written in the
/// same transaction.
pub(crate) async fn revoke(
    txn: &EventTxn<'_>,
    sid: &str,
    owner: Option<&str>,
    now: i64,
    reason: RevokeReason,
) -> Result<bool, DbErr> {
    let mut update = Entity::update_many()
        .col_expr(Column::RevokedAt, Expr::value(now))
        .filter(Column::Id.eq(sid))
        .filter(Column::RevokedAt.is_null());
    if let Some(owner) = owner {
        update = update.filter(Column::UserId.eq(owner));
    }
    Ok(revoke_where(txn, update, reason).await? > 0)
}

/// Ends every live session of `user_id`, optionally sparing one; how many
/// ended. Each gets its `session.revoked` event in the same transaction.
pub(crate) async fn revoke_all(
    txn: &EventTxn<'_>,
    user_id: &str,
    except: Option<&str>,
    now: i64,
    reason: RevokeReason,
) -> Result<u64, DbErr> {
    let mut update = Entity::update_many()
        .col_expr(Column::RevokedAt, Expr::value(now))
        .filter(Column::UserId.eq(user_id))
        .filter(Column::RevokedAt.is_null());
    if let Some(keep) = except {
        update = update.filter(Column::Id.ne(keep));
    }
    revoke_where(txn, update, reason).await
}

/// Records `session.revoked` for every live session of `user_id` without
/// touching the sessions (a deleted account's rows go with it).
pub(crate) async fn announce_end(
    txn: &EventTxn<'_>,
    user_id: &str,
    reason: RevokeReason,
) -> Result<(), DbErr> {
    let live = Entity::find()
        .filter(Column::UserId.eq(user_id))
        .filter(Column::RevokedAt.is_null())
        .all(txn)
        .await?;
    for session in live {
        let event = AccountEvent::SessionRevoked {
            session_id: session.id,
            reason,
        };
        events::record(txn, user_id, &event).await?;
    }
    Ok(())
}

/// Runs a revoking update and records an event per session it ended, in
/// the caller's transaction, so no session ends without its subscribers
/// hearing of it.
async fn revoke_where(
    txn: &EventTxn<'_>,
    update: sea_orm::UpdateMany<Entity>,
    reason: RevokeReason,
) -> Result<u64, DbErr> {
    let ended = update.exec_with_returning(txn).await?;
    for session in &ended {
        let event = AccountEvent::SessionRevoked {
            session_id: session.id.clone(),
            reason,
        };
        events::record(txn, &session.user_id, &event).await?;
    }
    Ok(ended.len() as u64)
}

/// Records that session `sid` was used at `now` (throttled by the caller).
pub(crate) async fn touch(db: &impl ConnectionTrait, sid: &str, now: i64) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::LastUsedAt, Expr::value(now))
        .filter(Column::Id.eq(sid))
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes sessions whose tokens can no longer work (refresh window over
/// or revoked before `horizon`) and generations retired before
/// `generations_horizon`. Safe to run on every instance at once.
pub(crate) async fn prune(
    db: &impl ConnectionTrait,
    horizon: i64,
    generations_horizon: i64,
) -> Result<(), DbErr> {
    generations::prune(db, generations_horizon).await?;
    Entity::delete_many()
        .filter(
            Condition::any()
                .add(Column::ExpiresAt.lt(horizon))
                .add(Column::RevokedAt.lt(horizon)),
        )
        .exec(db)
        .await?;
    Ok(())
}

impl From<&Model> for SessionRow {
    fn from(m: &Model) -> Self {
        Self {
            id: m.id.clone(),
            user_id: m.user_id.clone(),
            current_jti: m.current_jti.clone(),
            previous_jti: m.previous_jti.clone(),
            rotated_at: m.rotated_at,
            last_used_at: m.last_used_at,
            revoked_at: m.revoked_at,
            expires_at: m.expires_at,
        }
    }
}
