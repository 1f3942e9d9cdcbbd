//! The `sensors.*` queries and mutations, one type each, with their inputs
//! and outputs. Every handler fails with [`SensorsError`] and uses `?`.

use gatehouse::{Ctx, ErrorCode, Guard, Issue, Kind, NoInput, Procedure, Role, True};
use gatehouse_auth::db::{fetch_unique, now_ms, rfc3339};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::entities::{sensor, sensor_reading};
use crate::{SensorsApp, SensorsError};

/// A sensor as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sensor {
    pub id: String,
    pub name: String,
    /// Unit of the readings, e.g. `°C`.
    pub unit: String,
    /// Email of the user who created it.
    pub created_by: String,
    /// RFC 3339, UTC.
    pub created_at: String,
}

impl From<sensor::Model> for Sensor {
    fn from(row: sensor::Model) -> Self {
        Self {
            created_at: rfc3339(row.created_at),
            id: row.id,
            name: row.name,
            unit: row.unit,
            created_by: row.created_by,
        }
    }
}

/// One stored value of a sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reading {
    /// Grows with every reading; `sensors.onReading` resumes after it.
    pub id: String,
    pub sensor_id: String,
    pub value: f64,
    /// RFC 3339, UTC.
    pub recorded_at: String,
}

impl From<sensor_reading::Model> for Reading {
    fn from(row: sensor_reading::Model) -> Self {
        Self {
            id: row.id.to_string(),
            sensor_id: row.sensor_id,
            value: row.value,
            recorded_at: rfc3339(row.recorded_at),
        }
    }
}

/// Input of `sensors.create`.
#[derive(Debug, Clone, Deserialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSensorInput {
    pub name: String,
    pub unit: String,
}

/// Input of `sensors.delete`.
#[derive(Debug, Clone, Deserialize, TS, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteSensorInput {
    pub id: String,
}

/// `{ success: true }`.
#[derive(Debug, Clone, Copy, Serialize, TS, schemars::JsonSchema)]
pub struct SensorDeleted {
    pub success: True,
}

/// Input of `sensors.record`.
#[derive(Debug, Clone, Deserialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordReadingInput {
    pub sensor_id: String,
    pub value: f64,
}

/// Input of `sensors.readings`.
#[derive(Debug, Clone, Deserialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadingsInput {
    pub sensor_id: String,
    /// How many of the latest readings: 1 to 1000, default 50.
    #[serde(default)]
    #[ts(optional)]
    pub limit: Option<u32>,
}

/// `sensors.readings` without a `limit` (as documented on [`ReadingsInput`]).
pub const DEFAULT_READINGS: u32 = 50;
/// The largest `limit` of `sensors.readings` (as documented on [`ReadingsInput`]).
pub const MAX_READINGS: u32 = 1000;

/// Ctx of every sensors procedure.
type Ctx_ = Ctx<SensorsApp>;

/// `sensors.list`: every sensor, oldest first; any signed-in user.
#[derive(schemars::JsonSchema)]
pub struct ListSensors;

impl Procedure<SensorsApp> for ListSensors {
    const PATH: &'static str = "list";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Role(Role::Viewer);
    type Input = NoInput;
    type Output = Vec<Sensor>;
    type Error = SensorsError;

    async fn call(ctx: Ctx_, _: NoInput) -> Result<Vec<Sensor>, SensorsError> {
        // Ids are UUIDv7: in creation order.
        let rows = sensor::Entity::find()
            .order_by_asc(sensor::Column::Id)
            .all(ctx.service.db())
            .await?;
        Ok(rows.into_iter().map(Sensor::from).collect())
    }
}

/// `sensors.create`: adds a sensor; operators and admins.
#[derive(schemars::JsonSchema)]
pub struct CreateSensor;

impl Procedure<SensorsApp> for CreateSensor {
    const PATH: &'static str = "create";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Role(Role::Operator);
    type Input = CreateSensorInput;
    type Output = Sensor;
    type Error = SensorsError;

    async fn call(ctx: Ctx_, input: CreateSensorInput) -> Result<Sensor, SensorsError> {
        let mut issues = Vec::new();
        for (field, value) in [("name", &input.name), ("unit", &input.unit)] {
            let len = value.trim().chars().count();
            if len == 0 || len > 100 {
                issues.push(Issue::new([field], "Must be 1 to 100 characters"));
            }
        }
        if !issues.is_empty() {
            return Err(SensorsError::Invalid(issues));
        }
        let row = sensor::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            name: Set(input.name.trim().to_owned()),
            unit: Set(input.unit.trim().to_owned()),
            created_by: Set(ctx.principal()?.email.clone()),
            created_at: Set(now_ms()),
        }
        .insert(ctx.service.db())
        .await?;
        tracing::info!(sensor = %row.id, "sensor created");
        Ok(row.into())
    }
}

/// `sensors.delete`: removes a sensor and its readings; admins only.
#[derive(schemars::JsonSchema)]
pub struct DeleteSensor;

impl Procedure<SensorsApp> for DeleteSensor {
    const PATH: &'static str = "delete";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Role(Role::Admin);
    type Input = DeleteSensorInput;
    type Output = SensorDeleted;
    type Error = SensorsError;
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::NotFound];

    async fn call(ctx: Ctx_, input: DeleteSensorInput) -> Result<SensorDeleted, SensorsError> {
        // Its readings go with it (`ON DELETE CASCADE`).
        let deleted = sensor::Entity::delete_by_id(input.id)
            .exec(ctx.service.db())
            .await?;
        if deleted.rows_affected == 0 {
            return Err(SensorsError::SensorNotFound);
        }
        Ok(SensorDeleted { success: True })
    }
}

/// `sensors.record`: stores a reading and sends it to every open
/// `sensors.onReading`; operators and admins.
#[derive(schemars::JsonSchema)]
pub struct RecordReading;

impl Procedure<SensorsApp> for RecordReading {
    const PATH: &'static str = "record";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Role(Role::Operator);
    type Input = RecordReadingInput;
    type Output = Reading;
    type Error = SensorsError;
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::NotFound];

    async fn call(ctx: Ctx_, input: RecordReadingInput) -> Result<Reading, SensorsError> {
        let stored = ctx.service.record(&input.sensor_id, input.value).await?;
        Ok(stored.into())
    }
}

/// `sensors.readings`: a sensor's latest readings, newest first; any
/// signed-in user.
#[derive(schemars::JsonSchema)]
pub struct ListReadings;

impl Procedure<SensorsApp> for ListReadings {
    const PATH: &'static str = "readings";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Role(Role::Viewer);
    type Input = ReadingsInput;
    type Output = Vec<Reading>;
    type Error = SensorsError;
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::NotFound];

    async fn call(ctx: Ctx_, input: ReadingsInput) -> Result<Vec<Reading>, SensorsError> {
        let limit = input.limit.unwrap_or(DEFAULT_READINGS);
        if !(1..=MAX_READINGS).contains(&limit) {
            return Err(SensorsError::invalid(
                "limit",
                format!("Must be between 1 and {MAX_READINGS}"),
            ));
        }
        let db = ctx.service.db();
        ensure_sensor(db, &input.sensor_id).await?;
        let rows = sensor_reading::Entity::find()
            .filter(sensor_reading::Column::SensorId.eq(input.sensor_id))
            .order_by_desc(sensor_reading::Column::Id)
            .limit(u64::from(limit))
            .all(db)
            .await?;
        Ok(rows.into_iter().map(Reading::from).collect())
    }
}

/// `Err(SensorNotFound)` unless sensor `id` exists.
pub(crate) async fn ensure_sensor(db: &DatabaseConnection, id: &str) -> Result<(), SensorsError> {
    match fetch_unique(sensor::Entity::find_by_id(id.to_owned()), db).await? {
        Some(_) => Ok(()),
        None => Err(SensorsError::SensorNotFound),
    }
}
