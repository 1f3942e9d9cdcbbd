//! A PostgreSQL outage as clients see it: calls fail fast with
//! `SERVICE_UNAVAILABLE` and `Retry-After` instead of waiting for the pool,
//! nothing reports a change it did not commit (logout above all), `/readyz`
//! says so at once, and service resumes without a restart.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Client, PrivatePostgres, Server, register};
use serde_json::json;

/// The bound the service promises for answering during an outage.
const FAST: Duration = Duration::from_secs(1);

/// A server on a fresh database of `pg`.
async fn server_on(pg: &PrivatePostgres) -> Server {
    let temp = tempfile::tempdir().expect("tempdir");
    let mut config = common::test_config(Backend::Sqlite, temp.path()).await;
    config.database.database_url = Some(common::fresh_postgres_db(&pg.admin_url).await);
    let dir = temp.path().to_path_buf();
    Server::start_config(config, dir, Some(temp)).await
}

/// Polls `GET /readyz` until it answers `status`, for at most `within`.
async fn wait_ready(client: &Client, status: u16, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if let Ok(r) = client.try_raw("GET", "/readyz", None).await
            && r.status == status
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "/readyz did not answer {status} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_whose_revocation_failed_is_an_error() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let server = server_on(&pg).await;
    let client = server.client();
    let (token, _) = register(&client, "outage-logout@example.com").await;

    pg.halt();
    let r = client
        .clone()
        .with_token(&token)
        .mutation("auth.logout", json!(null))
        .await;
    r.assert_error("SERVICE_UNAVAILABLE", 503);
    assert!(r.header("retry-after").is_some(), "Retry-After is set");

    // Without a token there is nothing to revoke: still a success.
    let r = client.mutation("auth.logout", json!(null)).await;
    assert_eq!(r.data()["success"], json!(true));

    pg.resume();
    wait_ready(&client, 200, Duration::from_secs(10)).await;
    // The failed logout really did nothing (as its answer said), and a
    // retry now ends the session.
    assert_eq!(client.me(&token).await.status, 200);
    let r = client
        .clone()
        .with_token(&token)
        .mutation("auth.logout", json!(null))
        .await;
    assert_eq!(r.data()["success"], json!(true));
    assert_eq!(client.me(&token).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_answers_503_fast_and_recovers_without_restart() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let server = server_on(&pg).await;
    let client = server.client();
    let (token, _) = register(&client, "outage-fast@example.com").await;
    assert_eq!(client.me(&token).await.status, 200);

    pg.halt();
    let noticed = wait_ready(&client, 503, Duration::from_secs(5)).await;
    eprintln!("outage noticed by /readyz after {noticed:?}");

    for (what, call) in [
        ("auth.me", client.clone().with_token(&token)),
        ("auth.login", client.clone()),
        ("auth.register", client.clone()),
        ("auth.refreshToken", client.clone().with_token(&token)),
    ] {
        let start = Instant::now();
        let r = match what {
            "auth.me" => call.query(what, serde_json::Value::Null).await,
            "auth.login" => {
                call.mutation(
                    what,
                    json!({"email": "outage-fast@example.com", "password": common::PASSWORD}),
                )
                .await
            }
            "auth.register" => {
                call.mutation(
                    what,
                    json!({"email": "new@example.com", "password": common::PASSWORD,
                           "firstName": "N", "lastName": "U"}),
                )
                .await
            }
            _ => call.mutation(what, json!(null)).await,
        };
        let took = start.elapsed();
        r.assert_error("SERVICE_UNAVAILABLE", 503);
        assert_eq!(r.header("retry-after"), Some("1"), "{what}: Retry-After");
        assert!(took < FAST, "{what} answered in {took:?} during the outage");
        assert!(
            !r.message().to_lowercase().contains("sqlx") && !r.message().contains("127.0.0.1"),
            "no internal error text: {}",
            r.message()
        );
    }
    let start = Instant::now();
    let r = client.raw("GET", "/readyz", None).await;
    assert_eq!(r.status, 503);
    assert!(start.elapsed() < FAST, "/readyz took {:?}", start.elapsed());

    pg.resume();
    let start = Instant::now();
    loop {
        if client.me(&token).await.status == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no recovery without a restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("recovered {:?} after PostgreSQL was back", start.elapsed());
    assert_eq!(client.raw("GET", "/readyz", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_pool_is_not_an_outage() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let server = server_on(&pg).await;
    let client = server.client();
    let (token, _) = register(&client, "outage-busy@example.com").await;
    // Far more concurrent calls than pooled connections: they queue for
    // the pool, and every one of them succeeds.
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let c = client.clone().with_token(&token);
            tokio::spawn(async move {
                if i % 2 == 0 {
                    c.query("auth.me", serde_json::Value::Null).await.status
                } else {
                    c.query("auth.sessions", serde_json::Value::Null)
                        .await
                        .status
                }
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.expect("call"), 200);
    }
    assert_eq!(client.raw("GET", "/readyz", None).await.status, 200);
}
