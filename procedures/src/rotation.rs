//! Token generations a refresh retired, remembered for the grace period.
//!
//! A session row holds its current generation and the one before it (the
//! common case of one refresh, checked without another query). Every
//! generation a refresh replaces is also recorded here with the time it was
//! retired, so that when several tabs refresh one after another within the
//! grace period, each of their tokens keeps working for the grace period;
//! past it, presenting one is treated as token theft.

use sea_orm::{ConnectionTrait, DbErr};

use crate::db::sql;

/// Records that `generation` of session `sid` was replaced at `now`.
pub(crate) async fn retire(
    db: &impl ConnectionTrait,
    sid: &str,
    generation: &str,
    now: i64,
) -> Result<(), DbErr> {
    db.execute_raw(sql(
        db.get_database_backend(),
        "INSERT INTO session_generations (session_id, generation, retired_at) VALUES ($1, $2, $3)",
        vec![sid.into(), generation.into(), now.into()],
    ))
    .await?;
    Ok(())
}

/// Whether `generation` of session `sid` was retired at or after `since`.
pub(crate) async fn retired_since(
    db: &impl ConnectionTrait,
    sid: &str,
    generation: &str,
    since: i64,
) -> Result<bool, DbErr> {
    let row = db
        .query_one_raw(sql(
            db.get_database_backend(),
            "SELECT retired_at FROM session_generations \
             WHERE session_id = $1 AND generation = $2 AND retired_at >= $3",
            vec![sid.into(), generation.into(), since.into()],
        ))
        .await?;
    Ok(row.is_some())
}

/// Forgets every retired generation of `sid`, e.g. when a password change
/// must make all of its older tokens stop at once.
pub(crate) async fn forget(db: &impl ConnectionTrait, sid: &str) -> Result<(), DbErr> {
    db.execute_raw(sql(
        db.get_database_backend(),
        "DELETE FROM session_generations WHERE session_id = $1",
        vec![sid.into()],
    ))
    .await?;
    Ok(())
}

/// Deletes generations retired before `horizon`: past any grace period.
pub(crate) async fn prune(db: &impl ConnectionTrait, horizon: i64) -> Result<(), DbErr> {
    db.execute_raw(sql(
        db.get_database_backend(),
        "DELETE FROM session_generations WHERE retired_at < $1",
        vec![horizon.into()],
    ))
    .await?;
    Ok(())
}
