//! Account events for `auth.events`: a user's own session ending, their
//! role changing, their profile changing (see `docs/api.md#authevents`).
//!
//! Every event is a row of `account_events`, written by [`record`] in the
//! same transaction as the change it reports, so it exists exactly when the
//! change does. That transaction is an [`EventTxn`], which wakes the
//! subscribers of the events it wrote once it commits. Subscribers read
//! their user's rows after the last id they saw ([`stream`]); the [`hub`]
//! only tells them *when* to read: at once for commits of this process,
//! through `LISTEN/NOTIFY` on PostgreSQL for commits of other instances,
//! and by polling the table on SQLite for other processes on the same
//! file. A subscriber that reconnects with its last
//! id reads what it missed from the same table.

pub(crate) mod hub;
pub(crate) mod stream;

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use gatehouse::Role;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DbBackend, DbErr, ExecResult, QueryResult, Statement,
};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::db::{begin_write, now_ms, sql};
use crate::entities::account_event;
use crate::types::UserDetails;

pub use hub::EventHub;

/// How long events are kept for clients that reconnect (a day).
pub(crate) const RETENTION_MS: i64 = 86_400_000;

/// The PostgreSQL channel that carries "user X has new events".
pub(crate) const CHANNEL: &str = "gatehouse_account_events";

/// One event of `auth.events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum AccountEvent {
    /// The subscriber's own session ended; the stream then ends with
    /// UNAUTHORIZED, and the client should forget its tokens.
    #[serde(rename = "session.revoked")]
    SessionRevoked {
        #[serde(rename = "sessionId")]
        session_id: String,
        reason: RevokeReason,
    },
    /// An admin changed the user's role (which also ends its sessions).
    #[serde(rename = "role.changed")]
    RoleChanged { role: Role },
    /// The profile changed (from this or another session).
    #[serde(rename = "profile.updated")]
    ProfileUpdated { user: UserDetails },
}

impl AccountEvent {
    /// The `type` of the event, also stored in its own column.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::SessionRevoked { .. } => "session.revoked",
            Self::RoleChanged { .. } => "role.changed",
            Self::ProfileUpdated { .. } => "profile.updated",
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RevokeReason {
    /// `auth.logout` with this session's refresh token.
    Logout,
    /// `auth.logoutAll` from any of the user's sessions.
    LogoutAll,
    /// `auth.revokeSession` from another of the user's sessions.
    Revoked,
    /// A refresh token was used twice: the session was taken as stolen.
    Reused,
    /// `auth.changePassword` from another session.
    PasswordChanged,
    /// `auth.resetPassword`.
    PasswordReset,
    /// `users.setRole`.
    RoleChanged,
    /// `users.delete`.
    Deleted,
}

/// A write transaction that can record account events: [`record`] takes
/// nothing else, so every event is written in one. It remembers whose
/// events it wrote and wakes their subscribers in this process once it has
/// committed: never before, when they would read nothing and then wait for
/// the poll; never after a rollback or a drop, when there is nothing to
/// read. The hub is looked up at the commit: while nobody subscribes it
/// has not started, and nobody needs waking.
pub(crate) struct EventTxn<'a> {
    txn: DatabaseTransaction,
    hub: &'a OnceLock<Arc<EventHub>>,
    /// Users with events in this transaction, each once.
    woken: Mutex<Vec<String>>,
}

impl<'a> EventTxn<'a> {
    /// Begins a write transaction on `db` (see [`begin_write`]) whose
    /// commit wakes `hub`'s subscribers.
    pub(crate) async fn begin(
        db: &DatabaseConnection,
        hub: &'a OnceLock<Arc<EventHub>>,
    ) -> Result<Self, DbErr> {
        Ok(Self {
            txn: begin_write(db).await?,
            hub,
            woken: Mutex::new(Vec::new()),
        })
    }

    /// Commits, then wakes the subscribers of every user it recorded
    /// events for.
    pub(crate) async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await?;
        let woken = self
            .woken
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(hub) = self.hub.get() {
            for user_id in &woken {
                hub.wake(user_id);
            }
        }
        Ok(())
    }

    fn wake_after_commit(&self, user_id: &str) {
        let mut woken = self.woken.lock().unwrap_or_else(PoisonError::into_inner);
        if !woken.iter().any(|u| u == user_id) {
            woken.push(user_id.to_owned());
        }
    }
}

/// The transaction itself, for code that insists on one (e.g. row locks).
impl std::ops::Deref for EventTxn<'_> {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

/// Statements run in the transaction, so the query builders and the other
/// stores take an `EventTxn` like any connection.
#[async_trait::async_trait]
impl ConnectionTrait for EventTxn<'_> {
    fn get_database_backend(&self) -> DbBackend {
        self.txn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.txn.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.txn.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.txn.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.txn.query_all_raw(stmt).await
    }

    fn support_returning(&self) -> bool {
        self.txn.support_returning()
    }

    fn is_mock_connection(&self) -> bool {
        self.txn.is_mock_connection()
    }
}

/// Writes `event` for `user_id` inside `txn`, whose commit then wakes the
/// user's subscribers in this process; on PostgreSQL it also notifies the
/// other instances, which PostgreSQL delivers when the transaction
/// commits, never before.
pub(crate) async fn record(
    txn: &EventTxn<'_>,
    user_id: &str,
    event: &AccountEvent,
) -> Result<(), DbErr> {
    let session_id = match event {
        AccountEvent::SessionRevoked { session_id, .. } => Some(session_id.clone()),
        _ => None,
    };
    let payload =
        serde_json::to_string(event).map_err(|e| DbErr::Custom(format!("event payload: {e}")))?;
    account_event::ActiveModel {
        user_id: Set(user_id.to_owned()),
        session_id: Set(session_id),
        kind: Set(event.kind().to_owned()),
        payload: Set(payload),
        created_at: Set(now_ms()),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(sql(
            DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            vec![CHANNEL.into(), user_id.into()],
        ))
        .await?;
    }
    txn.wake_after_commit(user_id);
    Ok(())
}

/// The newest event id, of `user_id` or of anyone (0 when there is none):
/// where a subscriber without a `lastEventId` starts, and the hub's
/// baseline.
pub(crate) async fn latest_id(
    db: &sea_orm::DatabaseConnection,
    user_id: Option<&str>,
) -> Result<i64, DbErr> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
    let mut newest = account_event::Entity::find()
        .select_only()
        .column_as(account_event::Column::Id.max(), "max");
    if let Some(user_id) = user_id {
        newest = newest.filter(account_event::Column::UserId.eq(user_id));
    }
    let max: Option<Option<i64>> = newest.into_tuple().one(db).await?;
    Ok(max.flatten().unwrap_or(0))
}

/// Deletes events older than `horizon` (ms); a client that reconnects
/// after longer than that resumes from what remains.
pub(crate) async fn prune(db: &impl ConnectionTrait, horizon: i64) -> Result<u64, DbErr> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    Ok(account_event::Entity::delete_many()
        .filter(account_event::Column::CreatedAt.lt(horizon))
        .exec(db)
        .await?
        .rows_affected)
}
