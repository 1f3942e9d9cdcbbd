//! Fault suite: PostgreSQL stopped and started again under load, with the
//! real `gatehouse` binary. While it is down calls fail fast with 503 and
//! nothing answers success for a change it did not commit; `/readyz` says so
//! within a second; service resumes without a restart; and every change that
//! was acknowledged, before, during or after the outage, is there afterwards.
//!
//! Stops a PostgreSQL server (a private one), so ignored by default;
//! `tests/faults` runs it.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Client, PASSWORD, PrivatePostgres, SECRET};
use serde_json::{Value, json};

const WORKERS: usize = 8;
/// How long the load runs before the outage, and how long the outage lasts.
const BEFORE: Duration = Duration::from_secs(3);
const OUTAGE: Duration = Duration::from_secs(3);
/// Calls already waiting for a pooled connection when the database went
/// away may take up to the acquire timeout (2 s) to fail; after that every
/// answer must be fast.
const TRANSITION: Duration = Duration::from_millis(2_500);
const FAST: Duration = Duration::from_secs(1);

/// Everything observed during the run.
#[derive(Default)]
struct Log {
    registered: Vec<String>,
    logged_out: Vec<String>,
    /// (status, how long it took, when it started relative to the outage)
    answers: Vec<(u16, Duration, Option<Duration>)>,
    unexpected: Vec<String>,
    /// Tokens each worker holds at the end (acknowledged refresh or login).
    live: Vec<String>,
}

struct Shared {
    client: Client,
    log: Mutex<Log>,
    outage_started: Mutex<Option<Instant>>,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl Shared {
    fn since_outage(&self) -> Option<Duration> {
        self.outage_started
            .lock()
            .expect("lock")
            .map(|t| t.elapsed())
    }

    /// Records an answer; `Some(data)` for a success.
    fn record(
        &self,
        what: &str,
        r: &common::Response,
        took: Duration,
        since: Option<Duration>,
    ) -> Option<Value> {
        let mut log = self.log.lock().expect("lock");
        log.answers.push((r.status, took, since));
        match r.status {
            200 => Some(r.body["result"]["data"]["json"].clone()),
            503 if r.code() == Some("SERVICE_UNAVAILABLE") && r.header("retry-after").is_some() => {
                None
            }
            _ => {
                log.unexpected
                    .push(format!("{what}: {} {}", r.status, r.body));
                None
            }
        }
    }
}

async fn call(shared: &Shared, what: &str, token: Option<&str>, input: Value) -> Option<Value> {
    let client = match token {
        Some(t) => shared.client.clone().with_token(t),
        None => shared.client.clone(),
    };
    let since = shared.since_outage();
    let start = Instant::now();
    let r = if what == "auth.me" {
        client.try_raw("GET", "/trpc/auth.me", None).await
    } else {
        client.try_mutation(what, input).await
    };
    let took = start.elapsed();
    match r {
        Ok(r) => shared.record(what, &r, took, since),
        Err(e) => {
            shared
                .log
                .lock()
                .expect("lock")
                .unexpected
                .push(format!("{what}: transport error {e}"));
            None
        }
    }
}

async fn worker(shared: Arc<Shared>, id: usize) {
    let email = format!("load-{id}@example.com");
    let Some(data) = call(
        &shared,
        "auth.register",
        None,
        json!({"email": email, "password": PASSWORD, "firstName": "L", "lastName": "Oad"}),
    )
    .await
    else {
        panic!("worker {id} could not register before the outage");
    };
    let mut token = data["token"].as_str().map(str::to_owned);
    // Whether the token's state is known: a refresh or logout that failed
    // may still have been committed (an error is allowed then, a false
    // success is not), so such a token proves nothing at the end.
    let mut certain = true;
    let mut n = 0;
    while !*shared.stop.borrow() {
        n += 1;
        match n % 5 {
            0 => {
                let new = format!("load-{id}-{n}@example.com");
                let input = json!({"email": new, "password": PASSWORD, "firstName": "L", "lastName": "Oad"});
                if call(&shared, "auth.register", None, input).await.is_some() {
                    shared.log.lock().expect("lock").registered.push(new);
                }
            }
            1 | 3 => {
                if let Some(t) = &token {
                    call(&shared, "auth.me", Some(t), Value::Null).await;
                }
            }
            2 => {
                if let Some(t) = token.clone() {
                    match call(&shared, "auth.refreshToken", Some(&t), Value::Null).await {
                        Some(data) => {
                            token = data["token"].as_str().map(str::to_owned);
                            certain = true;
                        }
                        None => certain = false,
                    }
                }
            }
            _ => {
                if let Some(t) = token.clone() {
                    if call(&shared, "auth.logout", Some(&t), Value::Null)
                        .await
                        .is_some()
                    {
                        shared.log.lock().expect("lock").logged_out.push(t);
                        token = None;
                    } else {
                        certain = false;
                    }
                }
                if token.is_none() || !certain {
                    let input = json!({"email": email, "password": PASSWORD});
                    if let Some(data) = call(&shared, "auth.login", None, input).await {
                        token = data["token"].as_str().map(str::to_owned);
                        certain = true;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if let Some(t) = token.filter(|_| certain) {
        shared.log.lock().expect("lock").live.push(t);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fault suite: tests/faults"]
async fn postgres_stopped_and_started_under_load() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let url = common::fresh_postgres_db(&pg.admin_url).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = common::binary(dir.path());
    cmd.env("DATABASE_URL", &url)
        .env("JWT_SECRET", SECRET)
        .env("GATEHOUSE_DATA_DIR", dir.path());
    let (_child, addr) = common::spawn_listening(cmd).await;
    let client = Client::new(addr);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shared = Arc::new(Shared {
        client: client.clone(),
        log: Mutex::new(Log::default()),
        outage_started: Mutex::new(None),
        stop: stop_rx,
    });
    let workers: Vec<_> = (0..WORKERS)
        .map(|id| tokio::spawn(worker(shared.clone(), id)))
        .collect();
    tokio::time::sleep(BEFORE).await;

    pg.halt();
    let halted = Instant::now();
    *shared.outage_started.lock().expect("lock") = Some(halted);
    // /readyz: 503 within a second of asking, and soon after the stop.
    let mut readyz_503_after = None;
    while halted.elapsed() < OUTAGE {
        let start = Instant::now();
        let r = client.raw("GET", "/readyz", None).await;
        assert!(start.elapsed() < FAST, "/readyz took {:?}", start.elapsed());
        if r.status == 503 && readyz_503_after.is_none() {
            readyz_503_after = Some(halted.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let readyz_503_after = readyz_503_after.expect("/readyz said 503 during the outage");

    pg.resume();
    let resumed = Instant::now();
    while client.raw("GET", "/readyz", None).await.status != 200 {
        assert!(
            resumed.elapsed() < Duration::from_secs(15),
            "no recovery without a restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered_after = resumed.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_tx.send(true);
    for w in workers {
        w.await.expect("worker");
    }

    let log = std::mem::take(&mut *shared.log.lock().expect("lock"));
    let during: Vec<_> = log
        .answers
        .iter()
        .filter(|(_, _, since)| since.is_some_and(|s| s < OUTAGE))
        .collect();
    let slow_after_transition: Vec<_> = during
        .iter()
        .filter(|(status, took, since)| {
            *status == 503 && *took >= FAST && since.is_some_and(|s| s > TRANSITION)
        })
        .collect();
    let unavailable = log.answers.iter().filter(|a| a.0 == 503).count();
    let max_503 = log
        .answers
        .iter()
        .filter(|a| a.0 == 503 && a.2.is_some_and(|s| s > TRANSITION))
        .map(|a| a.1)
        .max()
        .unwrap_or_default();
    eprintln!(
        "{} calls, {unavailable} answered 503 (slowest after the transition {max_503:?}); /readyz 503 {readyz_503_after:?} after the stop; recovered {recovered_after:?} after the start",
        log.answers.len()
    );
    assert!(
        log.unexpected.is_empty(),
        "unexpected answers: {:#?}",
        &log.unexpected[..log.unexpected.len().min(10)]
    );
    assert!(unavailable > 0, "the outage was seen by the load");
    assert!(
        slow_after_transition.is_empty(),
        "slow 503s: {slow_after_transition:?}"
    );

    // Every acknowledged change is there.
    for email in &log.registered {
        let r = common::login(&client, email, PASSWORD).await;
        assert_eq!(
            r.status, 200,
            "acknowledged registration {email}: {}",
            r.body
        );
    }
    for token in &log.logged_out {
        assert_eq!(
            client.me(token).await.status,
            401,
            "acknowledged logout holds"
        );
    }
    for token in &log.live {
        assert_eq!(
            client.me(token).await.status,
            200,
            "a session nobody ended lives"
        );
    }
    eprintln!(
        "{} registrations, {} logouts acknowledged and verified; {} live sessions",
        log.registered.len(),
        log.logged_out.len(),
        log.live.len()
    );
}
