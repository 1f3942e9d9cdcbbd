//! `sensors.onReading`: every new reading, live, as a tracked subscription
//! a client can resume without loss or duplicates.
//!
//! Each event's id is the reading's id, which only grows. On subscribing,
//! the stream
//! 1. subscribes to the app's in-process feed of new readings, so nothing
//!    recorded from then on can slip past;
//! 2. reads the stored readings after `lastEventId` from the table (when a
//!    client resumes; a new subscription starts after the newest reading);
//! 3. follows the feed, skipping the readings step 2 already sent.
//!
//! A stream that falls behind the feed (tokio's `Lagged`) catches up from
//! the table again instead of dropping readings.
//!
//! The feed carries the readings recorded through this process. Readings
//! another instance stores reach a stream only when it catches up from the
//! table; with several instances, use a database notification (e.g.
//! PostgreSQL `LISTEN`) instead of the in-process feed.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::StreamExt;
use gatehouse::{Ctx, ErrorCode, Event, EventStream, Guard, Role, Subscription};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError};
use ts_rs::TS;

use crate::entities::sensor_reading;
use crate::procedures::{Reading, ensure_sensor};
use crate::{SensorsApp, SensorsError};

/// Readings read from the table per query while catching up.
const PAGE: u64 = 200;

/// Input of `sensors.onReading`; may be left out.
#[derive(Debug, Clone, Default, Deserialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", from = "Option<OnReadingFields>")]
pub struct OnReadingInput {
    /// Only this sensor's readings; all sensors' when left out.
    #[ts(optional)]
    pub sensor_id: Option<String>,
    /// Resume after this reading id. The framework fills it in from the
    /// `Last-Event-ID` of a reconnecting client; `"0"` replays every
    /// stored reading first.
    #[ts(optional)]
    pub last_event_id: Option<String>,
}

/// The wire form of [`OnReadingInput`] when an object is sent.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct OnReadingFields {
    sensor_id: Option<String>,
    last_event_id: Option<String>,
}

impl From<Option<OnReadingFields>> for OnReadingInput {
    fn from(fields: Option<OnReadingFields>) -> Self {
        let fields = fields.unwrap_or_default();
        Self {
            sensor_id: fields.sensor_id,
            last_event_id: fields.last_event_id,
        }
    }
}

/// `sensors.onReading`: new readings of one sensor or all; any signed-in user.
#[derive(schemars::JsonSchema)]
pub struct OnReading;

impl Subscription<SensorsApp> for OnReading {
    const PATH: &'static str = "onReading";
    const GUARD: Guard = Guard::Role(Role::Viewer);
    const TRACKED: bool = true;
    type Input = OnReadingInput;
    type Output = Reading;
    type Error = SensorsError;
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::NotFound];

    async fn subscribe(
        ctx: Ctx<SensorsApp>,
        input: OnReadingInput,
    ) -> Result<EventStream<Reading, SensorsError>, SensorsError> {
        let app = ctx.service;
        // First the feed: whatever is recorded from here on reaches it.
        let live = app.live_readings();
        let after = match input.last_event_id.as_deref() {
            Some(id) => parse_event_id(id)?,
            None => newest_id(app.db()).await?,
        };
        if let Some(sensor) = &input.sensor_id {
            ensure_sensor(app.db(), sensor).await?;
        }
        let follow = Follow {
            app,
            sensor: input.sensor_id,
            after,
            pending: VecDeque::new(),
            catching_up: true,
            live,
        };
        Ok(follow.into_stream())
    }
}

/// A reading id as a client sends it back.
fn parse_event_id(id: &str) -> Result<i64, SensorsError> {
    id.parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| SensorsError::invalid("lastEventId", "Must be the id of a reading"))
}

/// The id of the newest stored reading, 0 when there is none.
async fn newest_id(db: &DatabaseConnection) -> Result<i64, SensorsError> {
    let newest: Option<Option<i64>> = sensor_reading::Entity::find()
        .select_only()
        .column_as(sensor_reading::Column::Id.max(), "newest")
        .into_tuple()
        .one(db)
        .await?;
    Ok(newest.flatten().unwrap_or(0))
}

/// One open stream: where it is, and what it has yet to send.
struct Follow {
    app: Arc<SensorsApp>,
    sensor: Option<String>,
    /// The id of the last reading sent (or the resume point).
    after: i64,
    /// Readings read but not yet sent, in id order.
    pending: VecDeque<sensor_reading::Model>,
    /// Whether to read the table (after `after`) before following the feed.
    catching_up: bool,
    live: broadcast::Receiver<sensor_reading::Model>,
}

impl Follow {
    fn into_stream(self) -> EventStream<Reading, SensorsError> {
        futures::stream::unfold(Some(self), |follow| async move {
            let mut follow = follow?;
            match follow.next().await {
                Ok(Some(row)) => {
                    let event = Event::tracked(row.id.to_string(), Reading::from(row));
                    Some((Ok(event), Some(follow)))
                }
                Ok(None) => None,
                // The error is the stream's last event.
                Err(e) => Some((Err(e), None)),
            }
        })
        .boxed()
    }

    /// The next reading to send; `None` once the feed is gone.
    async fn next(&mut self) -> Result<Option<sensor_reading::Model>, SensorsError> {
        loop {
            if let Some(row) = self.pending.pop_front() {
                self.after = row.id;
                return Ok(Some(row));
            }
            if self.catching_up {
                let page = self.stored_after().await?;
                // A short page is the end of the table: the feed has the rest.
                self.catching_up = page.len() as u64 == PAGE;
                self.pending.extend(page);
                continue;
            }
            match self.live.recv().await {
                Ok(row) if row.id > self.after && self.wants(&row) => self.pending.push_back(row),
                // Sent already (read from the table), or another sensor's.
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(
                        missed,
                        "sensors.onReading fell behind; catching up from the table"
                    );
                    self.catching_up = true;
                }
                Err(RecvError::Closed) => return Ok(None),
            }
        }
    }

    fn wants(&self, row: &sensor_reading::Model) -> bool {
        self.sensor.as_ref().is_none_or(|id| *id == row.sensor_id)
    }

    /// The next page of stored readings after `after`, in id order.
    async fn stored_after(&self) -> Result<Vec<sensor_reading::Model>, SensorsError> {
        let mut query =
            sensor_reading::Entity::find().filter(sensor_reading::Column::Id.gt(self.after));
        if let Some(sensor) = &self.sensor {
            query = query.filter(sensor_reading::Column::SensorId.eq(sensor.as_str()));
        }
        Ok(query
            .order_by_asc(sensor_reading::Column::Id)
            .limit(PAGE)
            .all(self.app.db())
            .await?)
    }
}
