//! Signing keys through the real `gatehouse` binary: the HS256 default
//! serves no public keys; with an asymmetric key set, two instances on one
//! database share it, a `gatehouse keys rotate` on the command line reaches
//! both without a restart, each verifies the other's tokens, and both
//! publish the same JWKS.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{Client, PASSWORD, SECRET, login_token, register};
use serde_json::Value;
use tokio::process::{Child, Command};

const JWKS: &str = "/.well-known/jwks.json";
const DISCOVERY: &str = "/.well-known/openid-configuration";

/// The `kid` in a token's header.
fn kid(token: &str) -> String {
    let header = token.split('.').next().expect("header");
    let header: Value =
        serde_json::from_slice(&common::base64_lite::decode_url(header)).expect("header JSON");
    header["kid"].as_str().expect("a kid").to_owned()
}

/// The kids a JWKS lists, sorted.
async fn jwks_kids(client: &Client) -> Vec<String> {
    let r = client.raw("GET", JWKS, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut kids: Vec<String> = r.body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect();
    kids.sort();
    kids
}

#[tokio::test]
async fn hs256_serves_no_public_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = common::binary(dir.path());
    cmd.env("JWT_SECRET", SECRET);
    let (_child, addr) = common::spawn_listening(cmd).await;
    let client = Client::new(addr);
    assert_eq!(client.raw("GET", JWKS, None).await.status, 404);
    assert_eq!(client.raw("GET", DISCOVERY, None).await.status, 404);
    // Tokens still carry a kid, the one of the secret.
    let (token, _) = register(&client, "hs@example.com").await;
    assert!(kid(&token).starts_with("hs256-"), "{token}");
    assert_eq!(client.me(&token).await.status, 200);
}

/// An instance with the shared settings, reloading its keys every
/// `reload` seconds.
fn instance(dir: &Path, db: &str, reload: u64) -> Command {
    let mut cmd = common::binary(dir);
    cmd.env("DATABASE_URL", db)
        .env("JWT_SECRET", SECRET)
        .env("JWT_ALGORITHM", "EdDSA")
        .env("GATEHOUSE_KEYS_RELOAD", reload.to_string())
        .env("GATEHOUSE_PUBLIC_URL", "https://auth.example.com/");
    cmd
}

async fn run(mut cmd: Command, args: &[&str]) -> String {
    cmd.args(args);
    let (ok, stdout, stderr) = common::run_to_end(cmd, None).await;
    assert!(ok, "{args:?}: {stderr}");
    stdout
}

async fn two_instances_share_a_rotated_key_set(db: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    // A rereads the key set every second; B only every hour, so B learns of
    // the rotation from the first token signed with the new key.
    let (_a, addr_a): (Child, _) = common::spawn_listening(instance(dir.path(), db, 1)).await;
    let (_b, addr_b): (Child, _) = common::spawn_listening(instance(dir.path(), db, 3600)).await;
    let (a, b) = (Client::new(addr_a), Client::new(addr_b));

    let first = jwks_kids(&a).await;
    assert_eq!(first.len(), 1, "one key generated on first start");
    assert_eq!(jwks_kids(&b).await, first, "B found A's key");
    let r = a.raw("GET", JWKS, None).await;
    assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
    let d = b.raw("GET", DISCOVERY, None).await;
    assert_eq!(d.status, 200);
    assert_eq!(d.body["issuer"], "gatehouse");
    assert_eq!(
        d.body["jwks_uri"],
        "https://auth.example.com/.well-known/jwks.json"
    );

    let (old, _) = register(&a, "keys@example.com").await;
    assert_eq!(kid(&old), first[0]);
    assert_eq!(b.me(&old).await.status, 200);

    // Rotation from the command line, on the shared database.
    let out = run(instance(dir.path(), db, 1), &["keys", "rotate"]).await;
    let new_kid = out
        .trim()
        .rsplit(' ')
        .next()
        .expect("the new kid")
        .to_owned();
    assert_ne!(new_kid, first[0]);
    let list = run(instance(dir.path(), db, 1), &["keys", "list"]).await;
    assert!(list.contains(&format!("{new_kid}   EdDSA")), "{list}");
    assert!(list.contains("verifying until"), "{list}");

    // A picks it up by its periodic reload.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !jwks_kids(&a).await.contains(&new_kid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A never loaded the new key"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let from_a = login_token(&a, "keys@example.com", PASSWORD).await;
    assert_eq!(kid(&from_a), new_kid, "A signs with the new key");
    // B has not reloaded yet; the unknown kid makes it.
    assert_eq!(b.me(&from_a).await.status, 200, "B verifies A's new token");
    let from_b = login_token(&b, "keys@example.com", PASSWORD).await;
    assert_eq!(kid(&from_b), new_kid, "B signs with the new key too");
    assert_eq!(a.me(&from_b).await.status, 200, "A verifies B's token");
    // Nobody is logged out: the token of the old key still works on both.
    assert_eq!(a.me(&old).await.status, 200);
    assert_eq!(b.me(&old).await.status, 200);
    // Both publish the same two keys.
    let mut both = vec![first[0].clone(), new_kid];
    both.sort();
    assert_eq!(jwks_kids(&a).await, both);
    assert_eq!(jwks_kids(&b).await, both);
    // Nothing is past its window yet.
    let pruned = run(instance(dir.path(), db, 1), &["keys", "prune"]).await;
    assert_eq!(pruned.trim(), "pruned 0 key(s)");
}

#[tokio::test]
async fn two_instances_share_a_rotated_key_set_postgres() {
    let Some(admin_url) = common::postgres_admin_url() else {
        return;
    };
    let db = common::fresh_postgres_db(&admin_url).await;
    two_instances_share_a_rotated_key_set(&db).await;
}

#[tokio::test]
async fn two_instances_share_a_rotated_key_set_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("shared.db").display());
    two_instances_share_a_rotated_key_set(&db).await;
}

#[tokio::test]
async fn keys_from_pem_files_sign_and_verify() {
    use gatehouse_auth::keys::{KeyPair, SigningAlg};
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).expect("keys dir");
    let older = KeyPair::generate(SigningAlg::Es256).expect("generate");
    let newer = KeyPair::generate(SigningAlg::Es256).expect("generate");
    for (name, pair) in [("2026-01.pem", &older), ("2026-06.pem", &newer)] {
        std::fs::write(keys.join(name), pair.to_pem().expect("pem").as_bytes()).expect("write");
    }
    std::fs::write(keys.join("README.txt"), "not a key").expect("write");
    let with_files = || {
        let mut cmd = common::binary(dir.path());
        cmd.env("JWT_SECRET", SECRET)
            .env("JWT_ALGORITHM", "es256")
            .env("JWT_KEYS_DIR", &keys);
        cmd
    };
    let (_child, addr) = common::spawn_listening(with_files()).await;
    let client = Client::new(addr);
    let (token, _) = register(&client, "files@example.com").await;
    // The last file by name signs; both verify and are published.
    assert_eq!(kid(&token), newer.kid);
    assert_eq!(client.me(&token).await.status, 200);
    let mut both = vec![older.kid.clone(), newer.kid.clone()];
    both.sort();
    assert_eq!(jwks_kids(&client).await, both);
    // The key set is the operator's files: the command line does not rotate it.
    let mut cmd = with_files();
    cmd.args(["keys", "rotate"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let status = tokio::time::timeout(Duration::from_secs(60), cmd.status())
        .await
        .expect("in time")
        .expect("ran");
    assert!(!status.success());
}
