//! Fault suite: the real `gatehouse` binary killed with SIGKILL while
//! registrations and logouts run in parallel, then started again on the same
//! database. Whatever the server acknowledged before it died must hold after
//! the restart: every acknowledged registration can log in, every
//! acknowledged logout keeps its token refused, and the SQLite file passes
//! `PRAGMA integrity_check`.
//!
//! Slow and process-killing, so ignored by default; `tests/faults` runs it.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Client, PASSWORD, SECRET};
use serde_json::json;
use tokio::process::Child;

/// Kill rounds per backend, and how long the load runs before each kill.
const KILL_AFTER: [Duration; 3] = [
    Duration::from_millis(700),
    Duration::from_millis(1300),
    Duration::from_millis(2100),
];
/// Parallel clients hammering the server in each round.
const WORKERS: usize = 12;
/// Pre-made sessions per round, for the logouts to end: more than the
/// paced logouts get through before the last kill, so that logouts are in
/// flight when it lands.
const SESSIONS_PER_ROUND: usize = 500;
/// Pause between two logouts of one worker.
const LOGOUT_PACE: Duration = Duration::from_millis(25);
/// Longest wait for one call; calls cut short by the kill fail at once.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A running binary on `database_url`.
struct Instance {
    child: Child,
    client: Client,
}

async fn start(dir: &Path, database_url: &str) -> Instance {
    let mut cmd = common::binary(dir);
    cmd.env("DATABASE_URL", database_url)
        .env("JWT_SECRET", SECRET)
        .env("GATEHOUSE_OUTBOX_DIR", dir.join("outbox"))
        // Registrations come from one address; keep the address throttle out
        // of the way.
        .env("GATEHOUSE_IP_MAX_FAILURES", "1000000");
    let (child, addr) = common::spawn_listening(cmd).await;
    Instance {
        child,
        client: Client::new(addr),
    }
}

/// What the server acknowledged during one round.
#[derive(Default)]
struct Acknowledged {
    /// Emails whose registration answered 200 with a token.
    registered: Vec<String>,
    /// Tokens whose logout answered 200 `{ success: true }`.
    logged_out: Vec<String>,
}

/// Registrations (even worker ids) or paced logouts (odd ids) until the
/// server dies.
async fn worker(
    client: Client,
    round: usize,
    id: usize,
    sessions: Arc<Mutex<Vec<String>>>,
    acked: Arc<Mutex<Acknowledged>>,
) {
    for n in 0.. {
        let result = if id.is_multiple_of(2) {
            let email = format!("kill-{round}-{id}-{n}@example.com");
            let input = json!({
                "email": email, "password": PASSWORD, "firstName": "K", "lastName": "Nine",
            });
            let call = client.try_mutation("auth.register", input);
            match tokio::time::timeout(CALL_TIMEOUT, call).await {
                Ok(Ok(r)) if r.status == 200 && r.data()["token"].is_string() => {
                    acked.lock().expect("lock").registered.push(email);
                    Ok(())
                }
                Ok(Ok(r)) => panic!("registration answered {} {}", r.status, r.body),
                Ok(Err(_)) | Err(_) => Err(()),
            }
        } else {
            let Some(token) = sessions.lock().expect("lock").pop() else {
                return;
            };
            tokio::time::sleep(LOGOUT_PACE).await;
            let owner = client.clone().with_token(&token);
            let call = owner.try_mutation("auth.logout", json!(null));
            match tokio::time::timeout(CALL_TIMEOUT, call).await {
                Ok(Ok(r)) if r.status == 200 && r.data()["success"] == json!(true) => {
                    acked.lock().expect("lock").logged_out.push(token);
                    Ok(())
                }
                Ok(Ok(r)) => panic!("logout answered {} {}", r.status, r.body),
                Ok(Err(_)) | Err(_) => Err(()),
            }
        };
        if result.is_err() {
            // The server is gone (connection refused or cut): stop.
            return;
        }
    }
}

/// Opens `count` sessions (one registration, then parallel logins) for the
/// logouts.
async fn open_sessions(client: &Client, round: usize, count: usize) -> Vec<String> {
    let email = format!("sessions-{round}@example.com");
    let (first, _) = common::register(client, &email).await;
    let logins: Vec<_> = (1..count)
        .map(|_| {
            let (client, email) = (client.clone(), email.clone());
            tokio::spawn(async move { common::login_token(&client, &email, PASSWORD).await })
        })
        .collect();
    let mut tokens = vec![first];
    for login in logins {
        tokens.push(login.await.expect("login"));
    }
    tokens
}

async fn kill_during_writes(database_url: &str, dir: &Path, sqlite_file: Option<&Path>) {
    let mut all_registered = Vec::new();
    let mut all_logged_out = Vec::new();
    let mut unrevoked = Vec::new();
    for (round, kill_after) in KILL_AFTER.iter().enumerate() {
        let mut server = start(dir, database_url).await;
        let sessions = open_sessions(&server.client, round, SESSIONS_PER_ROUND).await;
        // One session per round is never logged out: it must survive.
        let spared = sessions[0].clone();
        let sessions = Arc::new(Mutex::new(sessions[1..].to_vec()));
        let acked = Arc::new(Mutex::new(Acknowledged::default()));
        let workers: Vec<_> = (0..WORKERS)
            .map(|id| {
                tokio::spawn(worker(
                    server.client.clone(),
                    round,
                    id,
                    sessions.clone(),
                    acked.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(*kill_after).await;
        server.child.start_kill().expect("SIGKILL");
        let status = server.child.wait().await.expect("wait");
        assert!(
            !status.success(),
            "the server died of the signal: {status:?}"
        );
        for w in workers {
            w.await.expect("worker did not panic");
        }
        let mut acked = std::mem::take(&mut *acked.lock().expect("lock"));
        eprintln!(
            "round {round}: killed after {kill_after:?} with {} registrations and {} logouts acknowledged",
            acked.registered.len(),
            acked.logged_out.len()
        );
        assert!(
            !acked.registered.is_empty() && !acked.logged_out.is_empty(),
            "the load reached the server before the kill"
        );
        all_registered.append(&mut acked.registered);
        all_logged_out.append(&mut acked.logged_out);
        unrevoked.push(spared);
    }

    if let Some(file) = sqlite_file {
        let conn = rusqlite::Connection::open(file).expect("open the SQLite file");
        let verdict: String = conn
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .expect("integrity_check");
        assert_eq!(verdict, "ok", "PRAGMA integrity_check after kill -9");
    }

    let server = start(dir, database_url).await;
    let client = &server.client;
    for email in &all_registered {
        let r = common::login(client, email, PASSWORD).await;
        assert_eq!(
            r.status, 200,
            "acknowledged registration {email} logs in: {}",
            r.body
        );
    }
    for token in &all_logged_out {
        let r = client.me(token).await;
        assert_eq!(
            r.status, 401,
            "acknowledged logout stays in force: {}",
            r.body
        );
    }
    for token in &unrevoked {
        let r = client.me(token).await;
        assert_eq!(r.status, 200, "a session nobody ended survives: {}", r.body);
    }
    eprintln!(
        "after restart: {} registrations log in, {} logouts still in force",
        all_registered.len(),
        all_logged_out.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fault suite: tests/faults"]
async fn kill9_during_writes_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file: PathBuf = dir.path().join("db/gatehouse.db");
    let url = format!("sqlite://{}", file.display());
    kill_during_writes(&url, dir.path(), Some(&file)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fault suite: tests/faults"]
async fn kill9_during_writes_postgres() {
    let Some(admin) = common::postgres_admin_url() else {
        return;
    };
    let url = common::fresh_postgres_db(&admin).await;
    let dir = tempfile::tempdir().expect("tempdir");
    kill_during_writes(&url, dir.path(), None).await;
}
