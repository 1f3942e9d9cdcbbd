//! Example: an application with its own state, tables and procedures beside
//! Gatehouse's `auth.*` and `users.*`.
//!
//! - [`SensorsApp`] is the application state: the auth service (which says
//!   who is calling), the database it shares with it, and the in-process
//!   feed of new readings. It is the router's [`gatehouse::Service`].
//! - [`migrations`] creates the example's tables (`sensor`,
//!   `sensor_reading`) beside the auth ones; [`entities`] reads them.
//! - [`procedures`] holds one type per procedure and [`on_reading`] the
//!   `sensors.onReading` subscription; all fail with [`SensorsError`].
//!
//! | procedure | kind | guard |
//! |---|---|---|
//! | `sensors.list` | query | VIEWER |
//! | `sensors.create` | mutation | OPERATOR |
//! | `sensors.delete` | mutation | ADMIN |
//! | `sensors.record` | mutation | OPERATOR |
//! | `sensors.readings` | query | VIEWER |
//! | `sensors.onReading` | subscription (tracked) | VIEWER |

pub mod entities;
pub mod error;
pub mod migrations;
pub mod on_reading;
pub mod procedures;

use gatehouse::{ErrorCode, RequestMeta, RpcError, Service};
use gatehouse_auth::{AuthService, AuthUser, HasAuth};
use sea_orm::{ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, DatabaseConnection, DbErr};
use tokio::sync::{Mutex, broadcast};

use crate::entities::sensor_reading;
pub use crate::error::SensorsError;
pub use crate::on_reading::{OnReading, OnReadingInput};
pub use crate::procedures::{
    CreateSensor, CreateSensorInput, DeleteSensor, DeleteSensorInput, ListReadings, ListSensors,
    Reading, ReadingsInput, RecordReading, RecordReadingInput, Sensor, SensorDeleted,
};

/// The command that regenerates `examples/sensors/bindings/`.
pub const REGENERATE_COMMAND: &str = "cargo run -p gatehouse-sensors -- bindings";

/// How many new readings a `sensors.onReading` stream may fall behind by
/// before it catches up from the table instead (see [`SensorsApp::with_live_capacity`]).
pub const LIVE_CAPACITY: usize = 1024;

/// The example's application state, shared by every request.
pub struct SensorsApp {
    auth: AuthService,
    db: DatabaseConnection,
    readings: LiveReadings,
}

/// Readings recorded by this process, sent to every open
/// `sensors.onReading` as they are stored.
struct LiveReadings {
    sender: broadcast::Sender<sensor_reading::Model>,
    /// Held from a reading's insert until it is sent, so readings are
    /// stored and sent in the order of their ids: a stream that skips what
    /// it has already read from the table then never skips a newer one.
    order: Mutex<()>,
}

impl LiveReadings {
    fn new(capacity: usize) -> Self {
        Self {
            sender: broadcast::channel(capacity.max(1)).0,
            order: Mutex::new(()),
        }
    }
}

impl SensorsApp {
    /// The app on the auth service's database, whose tables must already
    /// exist (see [`SensorsApp::open`]).
    pub fn new(auth: AuthService) -> Self {
        Self {
            db: auth.db().clone(),
            auth,
            readings: LiveReadings::new(LIVE_CAPACITY),
        }
    }

    /// Applies the example's migrations to the auth service's database,
    /// then builds the app.
    pub async fn open(auth: AuthService) -> Result<Self, DbErr> {
        migrations::migrate(auth.db()).await?;
        Ok(Self::new(auth))
    }

    /// How far a live stream may fall behind before it re-reads the table
    /// (default [`LIVE_CAPACITY`]; at least 1).
    #[must_use]
    pub fn with_live_capacity(mut self, capacity: usize) -> Self {
        self.readings = LiveReadings::new(capacity);
        self
    }

    /// The database, shared with the auth service.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Stores a reading of sensor `sensor_id` and sends it to every open
    /// `sensors.onReading`. A non-finite `value` is refused; an unknown
    /// sensor is [`SensorsError::SensorNotFound`].
    pub async fn record(
        &self,
        sensor_id: &str,
        value: f64,
    ) -> Result<sensor_reading::Model, SensorsError> {
        if !value.is_finite() {
            return Err(SensorsError::invalid("value", "Must be a finite number"));
        }
        let _in_order = self.readings.order.lock().await;
        let row = sensor_reading::ActiveModel {
            id: NotSet,
            sensor_id: Set(sensor_id.to_owned()),
            value: Set(value),
            recorded_at: Set(gatehouse_auth::db::now_ms()),
        };
        // The foreign key finds an unknown sensor in the same statement.
        let stored = row.insert(&self.db).await.map_err(|e| match e.sql_err() {
            Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_)) => SensorsError::SensorNotFound,
            _ => SensorsError::Db(e),
        })?;
        // No open stream is not an error.
        let _ = self.readings.sender.send(stored.clone());
        Ok(stored)
    }

    /// A receiver of every reading [`SensorsApp::record`] stores from now on.
    pub fn live_readings(&self) -> broadcast::Receiver<sensor_reading::Model> {
        self.readings.sender.subscribe()
    }
}

/// Callers are whoever the auth service says they are; readiness and
/// error translation are the auth service's too.
impl Service for SensorsApp {
    type Principal = AuthUser;
    const AUTHENTICATE_ERRORS: &'static [ErrorCode] = AuthService::AUTHENTICATE_ERRORS;

    async fn authenticate(&self, request: &RequestMeta) -> Result<Option<AuthUser>, RpcError> {
        self.auth.authenticate(request).await
    }

    async fn ready(&self) -> bool {
        self.auth.ready().await
    }

    fn finalize_error(&self, request: &RequestMeta, error: &mut RpcError) {
        self.auth.finalize_error(request, error);
    }
}

/// The auth service inside the app, so every `auth.*` and `users.*`
/// procedure runs on the app's state.
impl HasAuth for SensorsApp {
    fn auth(&self) -> &AuthService {
        &self.auth
    }
}

/// The example's own router, before mounting under `sensors`.
pub fn sensors_router() -> gatehouse::Router<SensorsApp> {
    gatehouse::Router::new()
        .procedure::<ListSensors>()
        .procedure::<CreateSensor>()
        .procedure::<DeleteSensor>()
        .procedure::<RecordReading>()
        .procedure::<ListReadings>()
        .subscription::<OnReading>()
}

/// Everything the example serves: `auth.*` and `users.*` on the app's
/// state, and `sensors.*`.
pub fn app_router() -> gatehouse::Router<SensorsApp> {
    gatehouse_auth::app_router::<SensorsApp>().nest("sensors", sensors_router())
}

/// Bindings options for `examples/sensors/bindings/`.
pub fn bindings_options() -> gatehouse::typescript::BindingsOptions {
    gatehouse::typescript::BindingsOptions {
        package_name: "@gatehouse/sensors-bindings".to_owned(),
        regenerate_command: REGENERATE_COMMAND.to_owned(),
        openapi: Some(gatehouse::openapi::OpenApiOptions {
            title: "Gatehouse sensors example".to_owned(),
            ..Default::default()
        }),
    }
}
