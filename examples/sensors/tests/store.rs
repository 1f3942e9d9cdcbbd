//! The sensors store on a real database: what the procedures keep survives
//! a restart (SQLite, and PostgreSQL when `GATEHOUSE_TEST_POSTGRES_URL` is
//! set), the example's migrations live beside the auth ones, and each
//! procedure's rules, called in-process.

mod common;

use common::*;
use gatehouse::{ErrorCode, NoInput, Role, RpcError};
use gatehouse_sensors::{
    CreateSensor, CreateSensorInput, DeleteSensor, DeleteSensorInput, ListReadings, ListSensors,
    Reading, ReadingsInput, RecordReading, RecordReadingInput, Sensor,
};
use sea_orm::DatabaseConnection;
use sea_orm_migration::{MigratorTrait, SchemaManager};

async fn create(
    caller: &gatehouse::RequestScope<gatehouse_sensors::SensorsApp>,
    name: &str,
) -> Sensor {
    caller
        .invoke::<CreateSensor>(CreateSensorInput {
            name: name.to_owned(),
            unit: "°C".to_owned(),
        })
        .await
        .expect("create sensor")
}

async fn record(
    caller: &gatehouse::RequestScope<gatehouse_sensors::SensorsApp>,
    sensor: &Sensor,
    value: f64,
) -> Reading {
    caller
        .invoke::<RecordReading>(RecordReadingInput {
            sensor_id: sensor.id.clone(),
            value,
        })
        .await
        .expect("record reading")
}

fn readings_of(sensor: &Sensor, limit: Option<u32>) -> ReadingsInput {
    ReadingsInput {
        sensor_id: sensor.id.clone(),
        limit,
    }
}

/// Creates sensors and readings, closes everything, opens the same database
/// again: the sensors, the readings, the session and the id sequence are
/// all still there.
async fn sensors_and_readings_survive_a_restart(db: TestDb) {
    let app = db.open().await;
    let token = user(&app, "operator@sensors.test", Role::Operator).await;
    let operator = caller(&app, &token);
    let boiler = create(&operator, "Boiler room").await;
    let cellar = create(&operator, "Cellar").await;
    let first = record(&operator, &boiler, 21.5).await;
    let second = record(&operator, &cellar, -3.0).await;
    let third = record(&operator, &boiler, 22.25).await;
    let sensors = operator.invoke::<ListSensors>(NoInput).await.expect("list");
    assert_eq!(sensors, [boiler.clone(), cellar.clone()]);
    drop(operator);
    shut_down(app).await;

    // A new process on the same database: both migrators find nothing to do.
    let app = db.open().await;
    let operator = caller(&app, &token);
    assert_eq!(
        operator.invoke::<ListSensors>(NoInput).await.expect("list"),
        sensors
    );
    assert_eq!(
        operator
            .invoke::<ListReadings>(readings_of(&boiler, None))
            .await
            .expect("readings"),
        [third.clone(), first.clone()],
        "newest first"
    );
    assert_eq!(
        operator
            .invoke::<ListReadings>(readings_of(&cellar, None))
            .await
            .expect("readings"),
        std::slice::from_ref(&second)
    );
    // Ids go on growing, so a client resuming across the restart misses nothing.
    let fourth = record(&operator, &cellar, -2.5).await;
    assert!(ids(&[&third, &fourth]).is_sorted_by(|a, b| a < b));
    let mut resumed = subscribe(&app, resume(None, Some(&first.id)))
        .await
        .expect("subscribe");
    assert_eq!(take(&mut resumed, 3).await, [second, third, fourth]);
    drop(resumed);
    drop(operator);
    shut_down(app).await;
}

both_databases!(sensors_and_readings_survive_a_restart);

/// The tables and versions each migrator is responsible for.
async fn assert_schema(db: &DatabaseConnection) {
    let schema = SchemaManager::new(db);
    for table in [
        "users",
        "sessions",
        "mail_outbox",
        "seaql_migrations",
        "sensor",
        "sensor_reading",
        "sensors_migrations",
    ] {
        assert!(
            schema.has_table(table).await.expect("has_table"),
            "{table} missing"
        );
    }
    let auth = gatehouse_migrations::Migrator::get_applied_migrations(db)
        .await
        .expect("auth versions");
    assert_eq!(
        auth.len(),
        gatehouse_migrations::Migrator::migrations().len()
    );
    let sensors = gatehouse_sensors::migrations::Migrator::get_applied_migrations(db)
        .await
        .expect("sensors versions");
    assert_eq!(
        sensors
            .iter()
            .map(|m| m.name().to_owned())
            .collect::<Vec<_>>(),
        ["m20261201_000001_sensors"]
    );
}

/// Runs both migrators on a fresh database, `sensors_first` or not, twice.
async fn migrators_in_order(db: TestDb, sensors_first: bool) {
    let conn = gatehouse_auth::db::connect(&db.url).await.expect("connect");
    for _ in 0..2 {
        if sensors_first {
            gatehouse_sensors::migrations::migrate(&conn)
                .await
                .expect("sensors migrate");
            gatehouse_migrations::Migrator::up(&conn, None)
                .await
                .expect("auth migrate");
        } else {
            gatehouse_migrations::Migrator::up(&conn, None)
                .await
                .expect("auth migrate");
            gatehouse_sensors::migrations::migrate(&conn)
                .await
                .expect("sensors migrate");
        }
        assert_schema(&conn).await;
    }
    conn.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_migrators_share_the_database_in_either_order_on_sqlite() {
    migrators_in_order(TestDb::sqlite(), true).await;
    migrators_in_order(TestDb::sqlite(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_migrators_share_the_database_in_either_order_on_postgres() {
    for sensors_first in [true, false] {
        if let Some(db) = TestDb::postgres().await {
            migrators_in_order(db, sensors_first).await;
        }
    }
}

fn code(result: Result<impl std::fmt::Debug, RpcError>) -> ErrorCode {
    result.expect_err("an error").code
}

both_databases!(each_procedure_keeps_its_rules);

async fn each_procedure_keeps_its_rules(db: TestDb) {
    let app = db.open().await;
    let operator = caller(
        &app,
        &user(&app, "operator@sensors.test", Role::Operator).await,
    );
    let admin = caller(&app, &user(&app, "admin@sensors.test", Role::Admin).await);

    // create: name and unit 1 to 100 characters once trimmed, both reported.
    let invalid = operator
        .invoke::<CreateSensor>(CreateSensorInput {
            name: "  ".to_owned(),
            unit: "x".repeat(101),
        })
        .await
        .expect_err("invalid");
    assert_eq!(invalid.code, ErrorCode::BadRequest);
    let fields: Vec<_> = invalid
        .issues
        .iter()
        .flatten()
        .map(|issue| issue.path.join("."))
        .collect();
    assert_eq!(fields, ["name", "unit"]);
    let sensor = operator
        .invoke::<CreateSensor>(CreateSensorInput {
            name: "  Attic ".to_owned(),
            unit: " % ".to_owned(),
        })
        .await
        .expect("create");
    assert_eq!((sensor.name.as_str(), sensor.unit.as_str()), ("Attic", "%"));
    assert_eq!(sensor.created_by, "operator@sensors.test");

    // record: finite values of existing sensors only.
    for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let refused = operator
            .invoke::<RecordReading>(RecordReadingInput {
                sensor_id: sensor.id.clone(),
                value,
            })
            .await
            .expect_err("non-finite");
        assert_eq!(refused.code, ErrorCode::BadRequest, "{value}");
        assert_eq!(
            refused.issues.as_ref().map(|i| i[0].path.clone()),
            Some(vec!["value".to_owned()])
        );
    }
    let unknown = RecordReadingInput {
        sensor_id: "no-such-sensor".to_owned(),
        value: 1.0,
    };
    assert_eq!(
        code(operator.invoke::<RecordReading>(unknown).await),
        ErrorCode::NotFound
    );
    let mut recorded = Vec::new();
    for value in 0..60 {
        recorded.push(record(&operator, &sensor, f64::from(value) / 2.0).await);
    }
    assert_eq!(recorded[3].value, 1.5);
    assert_eq!(recorded[3].sensor_id, sensor.id);

    // readings: the latest first, 50 unless asked, 1 to 1000.
    let latest = operator
        .invoke::<ListReadings>(readings_of(&sensor, None))
        .await
        .expect("readings");
    let newest_first: Vec<Reading> = recorded.iter().rev().take(50).cloned().collect();
    assert_eq!(latest, newest_first);
    let three = operator
        .invoke::<ListReadings>(readings_of(&sensor, Some(3)))
        .await
        .expect("readings");
    assert_eq!(three, newest_first[..3]);
    for limit in [0, 1001] {
        assert_eq!(
            code(
                operator
                    .invoke::<ListReadings>(readings_of(&sensor, Some(limit)))
                    .await
            ),
            ErrorCode::BadRequest,
            "{limit}"
        );
    }
    let missing = ReadingsInput {
        sensor_id: "no-such-sensor".to_owned(),
        limit: None,
    };
    assert_eq!(
        code(operator.invoke::<ListReadings>(missing).await),
        ErrorCode::NotFound
    );

    // delete: takes the readings with it; a second delete finds nothing.
    let delete = || DeleteSensorInput {
        id: sensor.id.clone(),
    };
    admin
        .invoke::<DeleteSensor>(delete())
        .await
        .expect("delete");
    assert_eq!(
        code(admin.invoke::<DeleteSensor>(delete()).await),
        ErrorCode::NotFound
    );
    assert_eq!(
        code(
            operator
                .invoke::<ListReadings>(readings_of(&sensor, None))
                .await
        ),
        ErrorCode::NotFound
    );
    use sea_orm::{EntityTrait, PaginatorTrait};
    let left = gatehouse_sensors::entities::sensor_reading::Entity::find()
        .count(app.db())
        .await
        .expect("count");
    assert_eq!(left, 0, "the readings went with their sensor");
    drop((operator, admin));
    shut_down(app).await;
}
