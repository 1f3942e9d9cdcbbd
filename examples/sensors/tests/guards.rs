//! The sensors router's guards over real HTTP, beside the auth procedures
//! on the same app: a VIEWER can list, read and follow readings but not
//! create or record, an OPERATOR can create and record but not delete, an
//! ADMIN can delete; an anonymous caller can do nothing.

mod common;

use common::*;
use gatehouse::Role;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_gets_exactly_its_sensor_procedures() {
    let db = TestDb::sqlite();
    let app = db.open().await;
    let admin = user(&app, "admin@sensors.test", Role::Admin).await;
    let server = Server::start(&db, app).await;
    let addr = server.addr;

    // Anonymous: nothing, not even the stream.
    assert_eq!(
        query(addr, "sensors.list", json!(null), None).await,
        (401, json!("UNAUTHORIZED"))
    );
    let mut anonymous = EventSource::open(addr, "/trpc/sensors.onReading", &[]).await;
    anonymous.until("\"code\":\"UNAUTHORIZED\"").await;

    // auth.* and users.* are served by the same app.
    let (status, registered) = mutation(
        addr,
        "auth.register",
        json!({ "email": "viewer@sensors.test", "password": PASSWORD, "firstName": "V", "lastName": "S" }),
        None,
    )
    .await;
    assert_eq!(status, 200, "{registered}");
    let viewer = registered["token"].as_str().expect("token").to_owned();
    let (_, registered) = mutation(
        addr,
        "auth.register",
        json!({ "email": "operator@sensors.test", "password": PASSWORD, "firstName": "O", "lastName": "S" }),
        None,
    )
    .await;
    let operator_id = registered["user"]["id"].as_str().expect("id").to_owned();
    let (status, out) = mutation(
        addr,
        "users.setRole",
        json!({ "id": operator_id, "role": "OPERATOR" }),
        Some(&admin),
    )
    .await;
    assert_eq!((status, &out["role"]), (200, &json!("OPERATOR")), "{out}");
    // A role change revokes the old token: log in again as OPERATOR.
    let (status, out) = mutation(
        addr,
        "auth.login",
        json!({ "email": "operator@sensors.test", "password": PASSWORD }),
        None,
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let operator = out["token"].as_str().expect("token").to_owned();

    // VIEWER: can list, cannot create.
    let (status, listed) = query(addr, "sensors.list", json!(null), Some(&viewer)).await;
    assert_eq!((status, listed), (200, json!([])));
    let new_sensor = json!({ "name": "Boiler room", "unit": "°C" });
    assert_eq!(
        mutation(addr, "sensors.create", new_sensor.clone(), Some(&viewer)).await,
        (403, json!("FORBIDDEN"))
    );

    // OPERATOR: can create and record, cannot delete.
    let (status, created) = mutation(addr, "sensors.create", new_sensor, Some(&operator)).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["name"], "Boiler room");
    assert_eq!(created["unit"], "°C");
    assert_eq!(created["createdBy"], "operator@sensors.test");
    let id = created["id"].as_str().expect("id").to_owned();
    let (status, listed) = query(addr, "sensors.list", json!(null), Some(&viewer)).await;
    assert_eq!((status, listed), (200, json!([created])));
    let (status, invalid) = http(
        addr,
        "POST",
        "/trpc/sensors.create",
        Some(&operator),
        Some(&json!({ "json": { "name": " ", "unit": "°C" } })),
    )
    .await;
    assert_eq!(status, 400, "{invalid}");
    assert_eq!(
        invalid.pointer("/error/json/data/issues/0/path/0"),
        Some(&json!("name")),
        "{invalid}"
    );

    // Readings: OPERATOR records, VIEWER reads and follows (with the token
    // in connectionParams, as a browser's EventSource must send it).
    let mut follow = EventSource::open(
        addr,
        &format!(
            "/trpc/sensors.onReading?input={}&connectionParams={}",
            url_encode(&json!({ "json": { "sensorId": id } }).to_string()),
            url_encode(&json!({ "token": viewer }).to_string())
        ),
        &[],
    )
    .await;
    follow.until("event: connected").await;
    let reading = json!({ "sensorId": id, "value": 21.5 });
    assert_eq!(
        mutation(addr, "sensors.record", reading.clone(), Some(&viewer)).await,
        (403, json!("FORBIDDEN"))
    );
    let (status, recorded) = mutation(addr, "sensors.record", reading, Some(&operator)).await;
    assert_eq!(status, 200, "{recorded}");
    assert_eq!(
        (&recorded["sensorId"], &recorded["value"]),
        (&json!(id), &json!(21.5))
    );
    follow
        .until(&format!("id: {}\n", recorded["id"].as_str().expect("id")))
        .await;
    let (status, readings) = query(
        addr,
        "sensors.readings",
        json!({ "sensorId": id }),
        Some(&viewer),
    )
    .await;
    assert_eq!((status, readings), (200, json!([recorded])));
    assert_eq!(
        query(addr, "sensors.readings", json!({ "sensorId": id }), None).await,
        (401, json!("UNAUTHORIZED"))
    );
    assert_eq!(
        mutation(addr, "sensors.delete", json!({ "id": id }), Some(&operator)).await,
        (403, json!("FORBIDDEN"))
    );

    // ADMIN: can delete; a second delete finds nothing.
    assert_eq!(
        mutation(addr, "sensors.delete", json!({ "id": id }), Some(&admin)).await,
        (200, json!({ "success": true }))
    );
    assert_eq!(
        mutation(addr, "sensors.delete", json!({ "id": id }), Some(&admin)).await,
        (404, json!("NOT_FOUND"))
    );
    assert_eq!(
        query(addr, "sensors.list", json!(null), Some(&admin)).await,
        (200, json!([]))
    );
}
