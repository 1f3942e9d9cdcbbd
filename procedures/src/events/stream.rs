//! One subscriber's events: its user's rows after the last id it saw, read
//! whenever the hub says there may be more. Ends after the subscriber's own
//! session is revoked, with UNAUTHORIZED. (When the subscriber's token
//! expires, the framework ends the stream: see `AuthUser::expires_at_ms`.)

use std::collections::VecDeque;
use std::sync::Arc;

use futures::StreamExt;
use gatehouse::{Event, EventStream};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use tokio::sync::broadcast::{self, error::RecvError};

use super::AccountEvent;
use super::hub::Wake;
use crate::entities::account_event::{Column, Entity, Model};
use crate::error::AuthError;

/// Rows read at once; a reconnecting client with much to catch up reads
/// in pages.
const PAGE: u64 = 100;

/// Whose events to stream and from where.
pub(crate) struct Subscriber {
    pub user_id: String,
    pub session_id: String,
    /// The last id the client has; events after it are sent.
    pub after: i64,
}

/// The events of `who`, from `after` on. `wake` must have been subscribed
/// before `after` was decided, so nothing committed in between is missed.
pub(crate) fn account_events(
    db: DatabaseConnection,
    wake: broadcast::Receiver<Wake>,
    who: Subscriber,
) -> EventStream<AccountEvent, AuthError> {
    let reader = Reader {
        db,
        wake,
        user_id: Arc::from(who.user_id),
        session_id: who.session_id,
        after: who.after,
        buffer: VecDeque::new(),
        caught_up: false,
        phase: Phase::Open,
    };
    futures::stream::unfold(reader, |mut reader| async move {
        let item = reader.next().await?;
        Some((item, reader))
    })
    .boxed()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// The own session's revocation was sent; UNAUTHORIZED comes next.
    Revoked,
    Done,
}

struct Reader {
    db: DatabaseConnection,
    wake: broadcast::Receiver<Wake>,
    user_id: Arc<str>,
    session_id: String,
    after: i64,
    buffer: VecDeque<Model>,
    /// The last read returned a short page: nothing more until a wake-up,
    /// so the next one is not spent on a read that finds nothing.
    caught_up: bool,
    phase: Phase,
}

impl Reader {
    async fn next(&mut self) -> Option<Result<Event<AccountEvent>, AuthError>> {
        loop {
            match self.phase {
                Phase::Done => return None,
                Phase::Revoked => {
                    self.phase = Phase::Done;
                    return Some(Err(AuthError::SessionRevoked));
                }
                Phase::Open => {}
            }
            if let Some(row) = self.buffer.pop_front() {
                return Some(self.deliver(row));
            }
            if !self.caught_up {
                match self.read().await {
                    Ok(rows) => {
                        self.caught_up = (rows.len() as u64) < PAGE;
                        if !rows.is_empty() {
                            self.buffer.extend(rows);
                            continue;
                        }
                    }
                    Err(error) => {
                        // Sent as INTERNAL_SERVER_ERROR, which the client
                        // answers by reconnecting from its last id.
                        self.phase = Phase::Done;
                        return Some(Err(error.into()));
                    }
                }
                continue;
            }
            if !self.wait().await {
                return None;
            }
            self.caught_up = false;
        }
    }

    fn deliver(&mut self, row: Model) -> Result<Event<AccountEvent>, AuthError> {
        self.after = row.id;
        let event: AccountEvent = serde_json::from_str(&row.payload).map_err(|e| {
            self.phase = Phase::Done;
            AuthError::Corrupt(format!("account event {}: {e}", row.id))
        })?;
        if matches!(&event, AccountEvent::SessionRevoked { session_id, .. } if *session_id == self.session_id)
        {
            self.phase = Phase::Revoked;
        }
        Ok(Event::tracked(row.id.to_string(), event))
    }

    /// The next page: account-wide events and the own session's.
    async fn read(&self) -> Result<Vec<Model>, DbErr> {
        Entity::find()
            .filter(Column::UserId.eq(&*self.user_id))
            .filter(Column::Id.gt(self.after))
            .filter(
                Condition::any()
                    .add(Column::SessionId.is_null())
                    .add(Column::SessionId.eq(self.session_id.as_str())),
            )
            .order_by_asc(Column::Id)
            .limit(PAGE)
            .all(&self.db)
            .await
    }

    /// Until the hub names this user (or everyone, or this subscriber fell
    /// behind). `false` when the hub is gone (the server is stopping).
    async fn wait(&mut self) -> bool {
        loop {
            match self.wake.recv().await {
                Ok(Some(user)) if *user != *self.user_id => continue,
                Ok(_) | Err(RecvError::Lagged(_)) => return true,
                Err(RecvError::Closed) => return false,
            }
        }
    }
}
