//! `sensors.onReading`: replay after `lastEventId`, then live readings, with
//! nothing lost and nothing sent twice, also when a stream falls behind the
//! in-process feed or readings are recorded concurrently.

mod common;

use std::sync::Arc;

use common::*;
use gatehouse::{ErrorCode, RequestScope, Role, RpcError};
use gatehouse_sensors::{
    CreateSensor, CreateSensorInput, Reading, RecordReading, RecordReadingInput, Sensor,
    SensorsApp, SensorsError,
};

struct Fixture {
    _db: TestDb,
    app: Arc<SensorsApp>,
    operator: RequestScope<SensorsApp>,
}

async fn fixture_with(db: TestDb, tweak: impl FnOnce(SensorsApp) -> SensorsApp) -> Fixture {
    let app = db.open_with(tweak).await;
    let token = user(&app, "operator@sensors.test", Role::Operator).await;
    let operator = caller(&app, &token);
    Fixture {
        _db: db,
        app,
        operator,
    }
}

async fn fixture(db: TestDb) -> Fixture {
    fixture_with(db, |app| app).await
}

both_databases!(
    replays_after_last_event_id_then_follows_live_readings_once,
    a_new_subscription_starts_after_the_newest_reading_and_zero_replays_all,
    a_resumed_stream_loses_and_repeats_nothing,
    a_stream_that_falls_behind_catches_up_from_the_table,
    concurrent_recorders_reach_a_stream_in_id_order,
    an_unknown_sensor_or_a_bad_last_event_id_is_refused,
);

impl Fixture {
    async fn sensor(&self, name: &str) -> Sensor {
        self.operator
            .invoke::<CreateSensor>(CreateSensorInput {
                name: name.to_owned(),
                unit: "°C".to_owned(),
            })
            .await
            .expect("create sensor")
    }

    async fn record(&self, sensor: &Sensor, value: f64) -> Reading {
        self.operator
            .invoke::<RecordReading>(RecordReadingInput {
                sensor_id: sensor.id.clone(),
                value,
            })
            .await
            .expect("record")
    }
}

async fn replays_after_last_event_id_then_follows_live_readings_once(db: TestDb) {
    let f = fixture(db).await;
    let boiler = f.sensor("Boiler").await;
    let cellar = f.sensor("Cellar").await;
    let r1 = f.record(&boiler, 1.0).await;
    let r2 = f.record(&boiler, 2.0).await;
    let _c1 = f.record(&cellar, 10.0).await;
    let r3 = f.record(&boiler, 3.0).await;

    let mut events = subscribe(&f.app, resume(Some(&boiler.id), Some(&r1.id)))
        .await
        .expect("subscribe");
    // Recorded after subscribing, before the stream is first read: it must
    // come once, after the replay.
    let r4 = f.record(&boiler, 4.0).await;
    assert_eq!(take(&mut events, 3).await, [r2, r3, r4]);
    let _c2 = f.record(&cellar, 11.0).await;
    let r5 = f.record(&boiler, 5.0).await;
    assert_eq!(take(&mut events, 1).await, [r5]);
    assert_quiet(&mut events).await;
}

async fn a_new_subscription_starts_after_the_newest_reading_and_zero_replays_all(db: TestDb) {
    let f = fixture(db).await;
    let boiler = f.sensor("Boiler").await;
    let cellar = f.sensor("Cellar").await;
    let old = f.record(&boiler, 1.0).await;
    let c1 = f.record(&cellar, 2.0).await;

    let mut fresh = subscribe(&f.app, resume(None, None))
        .await
        .expect("subscribe");
    let mut everything = subscribe(&f.app, resume(None, Some("0")))
        .await
        .expect("subscribe");
    let new = f.record(&cellar, 3.0).await;
    assert_eq!(take(&mut everything, 3).await, [old, c1, new.clone()]);
    assert_quiet(&mut everything).await;
    assert_eq!(take(&mut fresh, 1).await, [new]);
    assert_quiet(&mut fresh).await;
}

async fn a_resumed_stream_loses_and_repeats_nothing(db: TestDb) {
    let f = fixture(db).await;
    let boiler = f.sensor("Boiler").await;
    let mut recorded = Vec::new();
    let mut seen = Vec::new();
    let mut events = subscribe(&f.app, resume(Some(&boiler.id), None))
        .await
        .expect("subscribe");
    for round in 0..4 {
        for i in 0..5 {
            recorded.push(f.record(&boiler, f64::from(round * 10 + i)).await);
        }
        // Read only some of them, then "disconnect"; more arrive meanwhile.
        seen.extend(take(&mut events, 3).await);
        drop(events);
        recorded.push(f.record(&boiler, -1.0).await);
        let last = seen.last().map(|r| r.id.clone());
        events = subscribe(&f.app, resume(Some(&boiler.id), last.as_deref()))
            .await
            .expect("resubscribe");
    }
    let missing = recorded.len() - seen.len();
    seen.extend(take(&mut events, missing).await);
    assert_eq!(seen, recorded);
    assert_quiet(&mut events).await;
}

async fn a_stream_that_falls_behind_catches_up_from_the_table(db: TestDb) {
    // A feed of 4: the stream below misses most of the 250 readings live.
    let f = fixture_with(db, |app| app.with_live_capacity(4)).await;
    let boiler = f.sensor("Boiler").await;
    let cellar = f.sensor("Cellar").await;
    let mut all = subscribe(&f.app, resume(None, None))
        .await
        .expect("subscribe");
    let mut boiler_only = subscribe(&f.app, resume(Some(&boiler.id), None))
        .await
        .expect("subscribe");
    // Both streams are past their first read of the table and follow the feed.
    let first = f.record(&boiler, -1.0).await;
    assert_eq!(take(&mut all, 1).await[0], first);
    assert_eq!(take(&mut boiler_only, 1).await[0], first);
    let mut recorded = Vec::new();
    for i in 0..250 {
        let sensor = if i % 5 == 0 { &cellar } else { &boiler };
        recorded.push(f.record(sensor, f64::from(i)).await);
    }
    assert_eq!(take(&mut all, 250).await, recorded);
    let of_boiler: Vec<Reading> = recorded
        .iter()
        .filter(|r| r.sensor_id == boiler.id)
        .cloned()
        .collect();
    assert_eq!(take(&mut boiler_only, 200).await, of_boiler);
    // And then live again.
    let next = f.record(&boiler, 1000.0).await;
    assert_eq!(take(&mut all, 1).await[0], next);
    assert_eq!(take(&mut boiler_only, 1).await[0], next);
    assert_quiet(&mut all).await;
    assert_quiet(&mut boiler_only).await;
}

async fn concurrent_recorders_reach_a_stream_in_id_order(db: TestDb) {
    let f = Arc::new(fixture(db).await);
    let boiler = f.sensor("Boiler").await;
    let mut events = subscribe(&f.app, resume(None, None))
        .await
        .expect("subscribe");
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let f = f.clone();
            let boiler = boiler.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..25 {
                    ids.push(f.record(&boiler, f64::from(w * 100 + i)).await);
                }
                ids
            })
        })
        .collect();
    let got = take(&mut events, 100).await;
    let mut recorded = Vec::new();
    for writer in writers {
        recorded.extend(writer.await.expect("writer"));
    }
    let got_ids = ids(&got);
    assert!(
        got_ids.windows(2).all(|w| w[0] < w[1]),
        "in id order: {got_ids:?}"
    );
    let mut recorded_ids = ids(&recorded);
    recorded_ids.sort_unstable();
    assert_eq!(got_ids, recorded_ids);
    assert_quiet(&mut events).await;
}

fn refused(result: Result<impl Sized, SensorsError>) -> ErrorCode {
    match result {
        Ok(_) => panic!("subscribed"),
        Err(e) => RpcError::from(e).code,
    }
}

async fn an_unknown_sensor_or_a_bad_last_event_id_is_refused(db: TestDb) {
    let f = fixture(db).await;
    assert_eq!(
        refused(subscribe(&f.app, resume(Some("no-such-sensor"), None)).await),
        ErrorCode::NotFound
    );
    for bad in ["", "abc", "-1", "1.5"] {
        assert_eq!(
            refused(subscribe(&f.app, resume(None, Some(bad))).await),
            ErrorCode::BadRequest,
            "{bad:?}"
        );
    }
}

/// What `httpSubscriptionLink` does: follow over server-sent events, then
/// reconnect with `Last-Event-ID` and get exactly what it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_a_client_resumes_with_last_event_id() {
    let f = fixture(TestDb::sqlite()).await;
    let viewer = user(&f.app, "viewer@sensors.test", Role::Viewer).await;
    let server = Server::start(&f._db, f.app.clone()).await;
    let boiler = f.sensor("Boiler").await;
    let _before = f.record(&boiler, 1.0).await;
    let target = format!(
        "/trpc/sensors.onReading?input={}",
        url_encode(&serde_json::json!({ "json": { "sensorId": boiler.id } }).to_string())
    );
    let auth = format!("authorization: Bearer {viewer}");

    let mut first = EventSource::open(server.addr, &target, std::slice::from_ref(&auth)).await;
    first.until("event: connected").await;
    let r2 = f.record(&boiler, 2.0).await;
    let r3 = f.record(&boiler, 3.0).await;
    let text = first.until(&format!("id: {}\n", r3.id)).await;
    assert_eq!(first.ids(), [r2.id.clone(), r3.id.clone()], "{text}");
    assert!(
        text.contains(&format!(
            "data: {{\"json\":{{\"id\":\"{}\",\"sensorId\":\"{}\",\"value\":3.0,",
            r3.id, boiler.id
        )),
        "{text}"
    );
    drop(first);

    // Missed while disconnected.
    let r4 = f.record(&boiler, 4.0).await;
    let r5 = f.record(&boiler, 5.0).await;
    let mut resumed = EventSource::open(
        server.addr,
        &target,
        &[auth, format!("last-event-id: {}", r3.id)],
    )
    .await;
    resumed.until(&format!("id: {}\n", r5.id)).await;
    let r6 = f.record(&boiler, 6.0).await;
    let text = resumed.until(&format!("id: {}\n", r6.id)).await;
    assert_eq!(resumed.ids(), [r4.id, r5.id, r6.id], "{text}");
}
