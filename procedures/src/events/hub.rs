//! Tells this process's `auth.events` subscribers when their user may have
//! new events. A wake-up carries only the user id; subscribers then read
//! the table, so a lost or duplicated wake-up costs a read, never an event.
//!
//! Sources of wake-ups:
//! - this process's commits: an [`super::EventTxn`] wakes the users it
//!   recorded events for right after its commit succeeds (not before: a
//!   subscriber woken early would read nothing and then wait for the next
//!   source), so a change reaches this process's streams at once;
//! - a poller that watches the table's highest id, started with the first
//!   subscriber: every [`SQLITE_POLL`] on SQLite, for other processes on
//!   the same file (and, behind the commits' wake-ups, as a safety net);
//!   every [`POSTGRES_POLL`] on PostgreSQL as a safety net behind `LISTEN`;
//! - on PostgreSQL, a `LISTEN` connection on [`super::CHANNEL`], also
//!   started with the first subscriber, which hears every instance's
//!   commits within milliseconds (this one's too: a second wake-up costs a
//!   read). When it drops, it reconnects and wakes everyone (a
//!   notification may have been missed).

use std::sync::{Arc, Weak};
use std::time::Duration;

use sea_orm::{
    ColumnTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter, QuerySelect,
};
use tokio::sync::broadcast;

use crate::entities::account_event::{Column, Entity};

/// How often SQLite's table is checked for rows written by commits.
pub(crate) const SQLITE_POLL: Duration = Duration::from_millis(100);
/// How often PostgreSQL's table is checked besides `LISTEN`.
pub(crate) const POSTGRES_POLL: Duration = Duration::from_secs(2);
/// Wake-ups a slow subscriber may fall behind by before it is told it
/// lagged (it then simply reads the table).
const BACKLOG: usize = 1024;

/// A user whose events changed, or `None` for "everyone".
pub(crate) type Wake = Option<Arc<str>>;

/// The wake-up channel of one process (one per [`crate::AuthService`]).
#[derive(Debug)]
pub struct EventHub {
    wake: broadcast::Sender<Wake>,
}

impl EventHub {
    /// Starts the poller (every `poll_every`, or the backend's default) and on
    /// PostgreSQL the listener for `db`. They stop once the hub is dropped.
    pub(crate) fn start(db: DatabaseConnection, poll_every: Option<Duration>) -> Arc<Self> {
        let (wake, _) = broadcast::channel(BACKLOG);
        let hub = Arc::new(Self { wake });
        let every = poll_every.unwrap_or(match db.get_database_backend() {
            DbBackend::Postgres => POSTGRES_POLL,
            _ => SQLITE_POLL,
        });
        tokio::spawn(poll(Arc::downgrade(&hub), db.clone(), every));
        if db.get_database_backend() == DbBackend::Postgres {
            tokio::spawn(listen(Arc::downgrade(&hub), db));
        }
        hub
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Wake> {
        self.wake.subscribe()
    }

    /// Wakes `user_id`'s subscribers in this process. Only after the
    /// commit that wrote their events ([`super::EventTxn::commit`] does so),
    /// or they may read before the rows are visible.
    pub(crate) fn wake(&self, user_id: &str) {
        let _ = self.wake.send(Some(Arc::from(user_id)));
    }

    fn wake_all(&self) {
        let _ = self.wake.send(None);
    }
}

/// Watches the highest id and wakes the users of rows that appeared.
async fn poll(hub: Weak<EventHub>, db: DatabaseConnection, every: Duration) {
    // No baseline while nobody listens, so an idle server runs no query.
    let mut seen: Option<i64> = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(hub) = hub.upgrade() else { return };
        if hub.wake.receiver_count() == 0 {
            seen = None;
            continue;
        }
        let Some(since) = seen else {
            // First subscribers: take the baseline, then have them all read
            // once, so rows committed before it are not missed either.
            if let Ok(highest) = super::latest_id(&db, None).await {
                seen = Some(highest);
                hub.wake_all();
            }
            continue;
        };
        match new_rows(&db, since).await {
            Ok((highest, users)) => {
                seen = Some(highest);
                for user in users {
                    hub.wake(&user);
                }
            }
            Err(error) => tracing::debug!(%error, "account event poll failed"),
        }
    }
}

/// The highest id now, and the users with rows after `seen`.
async fn new_rows(db: &DatabaseConnection, seen: i64) -> Result<(i64, Vec<String>), DbErr> {
    let highest = super::latest_id(db, None).await?;
    if highest <= seen {
        return Ok((seen.max(highest), Vec::new()));
    }
    let users: Vec<String> = Entity::find()
        .select_only()
        .column(Column::UserId)
        .distinct()
        .filter(Column::Id.gt(seen))
        .filter(Column::Id.lte(highest))
        .into_tuple()
        .all(db)
        .await?;
    Ok((highest, users))
}

/// PostgreSQL: `LISTEN` on the channel for as long as the hub lives,
/// reconnecting after a failure.
async fn listen(hub: Weak<EventHub>, db: DatabaseConnection) {
    use sea_orm::sqlx::postgres::PgListener;
    let pool = db.get_postgres_connection_pool().clone();
    let mut backoff = Duration::from_millis(100);
    loop {
        if hub.upgrade().is_none() {
            return;
        }
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot LISTEN for account events; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if let Err(error) = listener.listen(super::CHANNEL).await {
            tracing::warn!(%error, "LISTEN failed; retrying");
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = Duration::from_millis(100);
        // Anything sent while not listening is read now.
        if let Some(hub) = hub.upgrade() {
            hub.wake_all();
        }
        loop {
            // Check now and then that the hub still exists.
            let next = tokio::time::timeout(Duration::from_secs(5), listener.try_recv()).await;
            let Some(hub) = hub.upgrade() else { return };
            match next {
                Err(_) => continue,
                Ok(Ok(Some(notification))) => hub.wake(notification.payload()),
                // The connection dropped; `try_recv` reconnects on the next call.
                Ok(Ok(None)) => hub.wake_all(),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "account event listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}
