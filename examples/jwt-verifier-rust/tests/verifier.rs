//! The verifier against real `gatehouse` processes (`GATEHOUSE_BIN`, default
//! the workspace's `target/debug/gatehouse`, built by `cargo test
//! --workspace`) sharing one EdDSA key set in a SQLite file.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jwt_verifier_rust::{Verifier, VerifyError};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

const PASSWORD: &str = "correct horse battery staple";

fn binary() -> PathBuf {
    let path = std::env::var_os("GATEHOUSE_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/gatehouse"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "no gatehouse binary at {} (cargo build -p gatehouse-auth, or set GATEHOUSE_BIN)",
        path.display()
    );
    path
}

fn command(dir: &Path, extra: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "error")
        .env("BCRYPT_COST", "4")
        .env("GATEHOUSE_ADDR", "127.0.0.1:0")
        .env("GATEHOUSE_DATA_DIR", dir)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/gatehouse.db", dir.display()),
        )
        .env("JWT_SECRET", "verifier-example-secret-verifier-example")
        .env("JWT_ALGORITHM", "EdDSA")
        .env("GATEHOUSE_KEYS_RELOAD", "1")
        .kill_on_drop(true);
    for (name, value) in extra {
        cmd.env(name, value);
    }
    cmd
}

/// Starts gatehouse; returns it and its base URL.
async fn start(dir: &Path, extra: &[(&str, &str)]) -> (Child, String) {
    let mut child = command(dir, extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn gatehouse");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::io::BufReader::new(stdout).lines().next_line(),
    )
    .await
    .expect("started in time")
    .expect("stdout")
    .expect("a line");
    let url = line
        .strip_prefix("gatehouse listening on ")
        .expect("listening line")
        .to_owned();
    (child, url)
}

async fn post(base: &str, route: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{base}{route}"))
        .json(&body)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

async fn login(base: &str) -> String {
    let r = post(
        base,
        "/api/auth/login",
        json!({"email": "trips@example.com", "password": PASSWORD}),
    )
    .await;
    r["token"].as_str().expect("token").to_owned()
}

fn kid(token: &str) -> String {
    let header = token.split('.').next().expect("header");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json");
    header["kid"].as_str().expect("kid").to_owned()
}

#[tokio::test]
async fn another_service_verifies_gatehouse_tokens_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_gatehouse, base) = start(dir.path(), &[]).await;
    let verifier = Arc::new(Verifier::new(&base, "gatehouse", vec![Algorithm::EdDSA]));

    // The service over real TCP.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let trips = format!(
        "http://{}/api/1/trips/me",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(axum::serve(listener, jwt_verifier_rust::router(verifier.clone())).into_future());
    let registered = post(
        &base,
        "/api/auth/register",
        json!({"email": "trips@example.com", "password": PASSWORD, "firstName": "Tess", "lastName": "Trips"}),
    )
    .await;
    let token = registered["token"].as_str().expect("token").to_owned();
    let r = reqwest::Client::new()
        .get(&trips)
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["userId"], registered["user"]["id"]);
    assert_eq!(body["role"], "VIEWER");
    let r = reqwest::Client::new()
        .get(&trips)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);

    // A rotation: the new token names a kid the verifier has not seen; it
    // fetches the JWKS again (after its one-second cooldown) and accepts it.
    let out = command(dir.path(), &[])
        .arg("keys")
        .arg("rotate")
        .output()
        .await
        .expect("rotate");
    assert!(out.status.success());
    let new_kid = String::from_utf8_lossy(&out.stdout)
        .trim()
        .rsplit(' ')
        .next()
        .expect("kid")
        .to_owned();
    assert_ne!(new_kid, kid(&token));
    let mut rotated = login(&base).await;
    for i in 0.. {
        if kid(&rotated) == new_kid {
            break;
        }
        assert!(i < 100, "gatehouse never signed with the new key");
        tokio::time::sleep(Duration::from_millis(100)).await;
        rotated = login(&base).await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        verifier.verify(&rotated).await.expect("new key").email,
        "trips@example.com"
    );
    assert!(
        verifier.verify(&token).await.is_ok(),
        "the old key still verifies"
    );

    // A tampered payload (promoted to ADMIN), signature kept: refused.
    let parts: Vec<&str> = rotated.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    claims["role"] = json!("ADMIN");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    assert!(matches!(
        verifier.verify(&tampered).await,
        Err(VerifyError::Jwt(_))
    ));

    // An expired token (an instance on the same key set, 1-second tokens).
    let (_short, short_base) = start(dir.path(), &[("JWT_TTL", "1")]).await;
    let expiring = login(&short_base).await;
    assert!(verifier.verify(&expiring).await.is_ok());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let Err(VerifyError::Jwt(e)) = verifier.verify(&expiring).await else {
        panic!("an expired token was accepted");
    };
    assert_eq!(e.kind(), &jsonwebtoken::errors::ErrorKind::ExpiredSignature);

    // A token of another issuer, signed by the same keys: refused.
    let (_other, other_base) = start(dir.path(), &[("JWT_ISSUER", "someone-else")]).await;
    let Err(VerifyError::Jwt(e)) = verifier.verify(&login(&other_base).await).await else {
        panic!("another issuer's token was accepted");
    };
    assert_eq!(e.kind(), &jsonwebtoken::errors::ErrorKind::InvalidIssuer);

    // An unknown kid is refused (after one refetch).
    let mut header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("b64")).expect("json");
    header["kid"] = json!("made-up");
    let made_up = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        parts[1],
        parts[2]
    );
    assert!(matches!(
        verifier.verify(&made_up).await,
        Err(VerifyError::UnknownKid(_))
    ));

    // What the signature cannot tell: a logged-out token still verifies
    // offline until it expires; Gatehouse itself knows it is dead.
    let r = reqwest::Client::new()
        .post(format!("{base}/api/auth/logout"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 200);
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(
        verifier.check_with_gatehouse(&token).await.expect("ask"),
        None
    );
    assert!(
        verifier
            .check_with_gatehouse(&rotated)
            .await
            .expect("ask")
            .is_some()
    );
}
