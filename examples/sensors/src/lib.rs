//! Example: an application adding its own router beside Gatehouse's `auth.*`
//! and `users.*` procedures.
//!
//! Three procedures, each guarded by a different role:
//! - `sensors.list` (query, VIEWER and up),
//! - `sensors.create` (mutation, OPERATOR and up),
//! - `sensors.delete` (mutation, ADMIN).
//!
//! Procedures run against [`AuthService`] (the service whose authenticator
//! decides who is calling), so the example keeps its own data in a
//! [`SensorStore`] it owns. A real application would use the same database
//! through [`AuthService::db`].

pub mod entities;
pub mod error;
pub mod migrations;

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use gatehouse::{Ctx, ErrorCode, Guard, Issue, Kind, NoInput, Procedure, Role, RpcError, True};
use gatehouse_auth::AuthService;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// The command that regenerates `examples/sensors/bindings/`.
pub const REGENERATE_COMMAND: &str = "cargo run -p gatehouse-sensors -- bindings";

/// A sensor as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Sensor {
    pub id: String,
    pub name: String,
    /// Unit of the readings, e.g. `°C`.
    pub unit: String,
    /// Email of the user who created it.
    pub created_by: String,
}

/// Input of `sensors.create`.
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSensorInput {
    pub name: String,
    pub unit: String,
}

/// Input of `sensors.delete`.
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct DeleteSensorInput {
    pub id: String,
}

/// `{ success: true }`.
#[derive(Debug, Clone, Copy, Serialize, TS)]
pub struct SensorDeleted {
    pub success: True,
}

/// The example's in-memory sensor table, in creation order.
#[derive(Debug, Default)]
pub struct SensorStore {
    sensors: Mutex<BTreeMap<String, Sensor>>,
}

impl SensorStore {
    /// The process-wide store the procedures use.
    pub fn global() -> &'static SensorStore {
        static STORE: OnceLock<SensorStore> = OnceLock::new();
        STORE.get_or_init(SensorStore::default)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, Sensor>>, RpcError> {
        self.sensors
            .lock()
            .map_err(|_| RpcError::internal("sensor store poisoned"))
    }

    pub fn list(&self) -> Result<Vec<Sensor>, RpcError> {
        Ok(self.lock()?.values().cloned().collect())
    }

    pub fn insert(&self, sensor: Sensor) -> Result<(), RpcError> {
        self.lock()?.insert(sensor.id.clone(), sensor);
        Ok(())
    }

    pub fn remove(&self, id: &str) -> Result<Option<Sensor>, RpcError> {
        Ok(self.lock()?.remove(id))
    }
}

/// `sensors.list`: every sensor; any signed-in user.
pub struct ListSensors;

impl Procedure<AuthService> for ListSensors {
    const PATH: &'static str = "list";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Role(Role::Viewer);
    type Input = NoInput;
    type Output = Vec<Sensor>;
    type Error = RpcError;

    async fn call(_: Ctx<AuthService>, _: NoInput) -> Result<Vec<Sensor>, RpcError> {
        SensorStore::global().list()
    }
}

/// `sensors.create`: adds a sensor; operators and admins.
pub struct CreateSensor;

impl Procedure<AuthService> for CreateSensor {
    const PATH: &'static str = "create";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Role(Role::Operator);
    type Input = CreateSensorInput;
    type Output = Sensor;
    type Error = RpcError;

    async fn call(ctx: Ctx<AuthService>, input: CreateSensorInput) -> Result<Sensor, RpcError> {
        let mut issues = Vec::new();
        for (field, value) in [("name", &input.name), ("unit", &input.unit)] {
            let len = value.trim().chars().count();
            if len == 0 || len > 100 {
                issues.push(Issue::new([field], "Must be 1 to 100 characters"));
            }
        }
        if !issues.is_empty() {
            return Err(RpcError::validation(issues));
        }
        let sensor = Sensor {
            id: uuid::Uuid::now_v7().to_string(),
            name: input.name.trim().to_owned(),
            unit: input.unit.trim().to_owned(),
            created_by: ctx.principal()?.email.clone(),
        };
        SensorStore::global().insert(sensor.clone())?;
        tracing::info!(sensor = %sensor.id, "sensor created");
        Ok(sensor)
    }
}

/// `sensors.delete`: removes a sensor; admins only.
pub struct DeleteSensor;

impl Procedure<AuthService> for DeleteSensor {
    const PATH: &'static str = "delete";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Role(Role::Admin);
    type Input = DeleteSensorInput;
    type Output = SensorDeleted;
    type Error = RpcError;

    async fn call(
        _: Ctx<AuthService>,
        input: DeleteSensorInput,
    ) -> Result<SensorDeleted, RpcError> {
        match SensorStore::global().remove(&input.id)? {
            Some(_) => Ok(SensorDeleted { success: True }),
            None => Err(RpcError::new(ErrorCode::NotFound, "Sensor not found")),
        }
    }
}

/// The example's own router, before mounting.
pub fn sensors_router() -> gatehouse::Router<AuthService> {
    gatehouse::Router::new()
        .procedure::<ListSensors>()
        .procedure::<CreateSensor>()
        .procedure::<DeleteSensor>()
}

/// Everything the example serves: `auth.*`, `users.*` and `sensors.*`.
pub fn app_router() -> gatehouse::Router<AuthService> {
    gatehouse_auth::app_router().nest("sensors", sensors_router())
}

/// Bindings options for `examples/sensors/bindings/`.
pub fn bindings_options() -> gatehouse::typescript::BindingsOptions {
    gatehouse::typescript::BindingsOptions {
        package_name: "@gatehouse/sensors-bindings".to_owned(),
        regenerate_command: REGENERATE_COMMAND.to_owned(),
    }
}
