//! Token generations a refresh retired, remembered for the grace period.
//!
//! A session row holds its current generation and the one before it (the
//! common case of one refresh, checked without another query). Every
//! generation a refresh replaces is also recorded here with the time it was
//! retired, so that when several tabs refresh one after another within the
//! grace period, each of their tokens keeps working for the grace period;
//! past it, presenting one is treated as token theft.

use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use crate::db::fetch_unique;
use crate::entities::session_generation::{ActiveModel, Column, Entity};

/// Records that `generation` of session `sid` was replaced at `now`.
pub(super) async fn retire(
    db: &impl ConnectionTrait,
    sid: &str,
    generation: &str,
    now: i64,
) -> Result<(), DbErr> {
    Entity::insert(ActiveModel {
        session_id: Set(sid.to_owned()),
        generation: Set(generation.to_owned()),
        retired_at: Set(now),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Whether `generation` of session `sid` was retired at or after `since`.
pub(super) async fn retired_since(
    db: &impl ConnectionTrait,
    sid: &str,
    generation: &str,
    since: i64,
) -> Result<bool, DbErr> {
    let select = Entity::find_by_id((sid.to_owned(), generation.to_owned()))
        .filter(Column::RetiredAt.gte(since));
    Ok(fetch_unique(select, db).await?.is_some())
}

/// Forgets every retired generation of `sid`, e.g. when a password change
/// must make all of its older tokens stop at once.
pub(super) async fn forget(db: &impl ConnectionTrait, sid: &str) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::SessionId.eq(sid))
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes generations retired before `horizon`: past any grace period.
pub(super) async fn prune(db: &impl ConnectionTrait, horizon: i64) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::RetiredAt.lt(horizon))
        .exec(db)
        .await?;
    Ok(())
}
