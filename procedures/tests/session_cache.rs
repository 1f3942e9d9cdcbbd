//! The SQLite session cache (`procedures/src/sessions/read.rs`) against
//! writes from other processes on the same file: each instance keeps the
//! session rows it read, and every one of these changes, made by another
//! process, must be seen by the very next guarded call of the instance that
//! cached the row: a logout on another instance, a role change there, a
//! user created by the `gatehouse users create` command, and a plain SQL
//! write by a third program (this test process).

mod common;

use std::path::Path;

use common::{Client, PASSWORD, SECRET, login_token, register};
use serde_json::json;
use tokio::process::{Child, Command};

fn instance(dir: &Path, db: &str) -> Command {
    let mut cmd = common::binary(dir);
    cmd.env("DATABASE_URL", db).env("JWT_SECRET", SECRET);
    cmd
}

/// Calls `auth.me` often enough that every reader connection of the
/// instance has cached the row (one per runtime thread that ran a read).
async fn warm(client: &Client, token: &str) {
    for _ in 0..20 {
        let r = client.me(token).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

async fn create_admin(dir: &Path, db: &str, email: &str) {
    let mut cmd = instance(dir, db);
    cmd.args(["users", "create", "--email", email, "--role", "ADMIN"]);
    let (ok, _, stderr) = common::run_to_end(cmd, Some(&format!("{PASSWORD}\n"))).await;
    assert!(ok, "users create failed: {stderr}");
}

#[tokio::test]
async fn another_process_write_is_seen_by_the_very_next_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("shared.db");
    let db = format!("sqlite://{}", file.display());
    let (_a, addr_a): (Child, _) = common::spawn_listening(instance(dir.path(), &db)).await;
    let (_b, addr_b): (Child, _) = common::spawn_listening(instance(dir.path(), &db)).await;
    let (a, b) = (Client::new(addr_a), Client::new(addr_b));

    // 1. A logout on B ends the session A has cached.
    let (token, user_id) = register(&a, "cache@example.com").await;
    warm(&a, &token).await;
    let r = b
        .clone()
        .with_token(&token)
        .mutation("auth.logout", json!(null))
        .await;
    assert_eq!(r.data()["success"], true, "{}", r.body);
    a.me(&token).await.assert_error("UNAUTHORIZED", 401);

    // 2. An admin made by the command line (a third process) changes the
    // user's role on B: A's cached session row of the user is gone with it.
    let token = login_token(&a, "cache@example.com", PASSWORD).await;
    warm(&a, &token).await;
    create_admin(dir.path(), &db, "root@example.com").await;
    let admin = login_token(&b, "root@example.com", PASSWORD).await;
    let r = b
        .clone()
        .with_token(&admin)
        .mutation(
            "users.setRole",
            json!({ "id": user_id, "role": "OPERATOR" }),
        )
        .await;
    assert_eq!(r.data()["role"], "OPERATOR", "{}", r.body);
    a.me(&token).await.assert_error("UNAUTHORIZED", 401);

    // 3. A plain SQL write by this process revokes a session A has cached.
    let token = login_token(&a, "cache@example.com", PASSWORD).await;
    warm(&a, &token).await;
    let sql = rusqlite::Connection::open(&file).expect("open the file");
    let revoked = sql
        .execute(
            "UPDATE sessions SET revoked_at = 1 WHERE user_id = ?1 AND revoked_at IS NULL",
            [&user_id],
        )
        .expect("revoke");
    assert_eq!(revoked, 1);
    a.me(&token).await.assert_error("UNAUTHORIZED", 401);

    // 4. And a profile change on B shows in A's next answer.
    let token = login_token(&a, "cache@example.com", PASSWORD).await;
    warm(&a, &token).await;
    let r = b
        .clone()
        .with_token(&token)
        .mutation("auth.updateProfile", json!({ "firstName": "Renamed" }))
        .await;
    assert_eq!(r.data()["firstName"], "Renamed", "{}", r.body);
    let r = a.me(&token).await;
    assert_eq!(r.data()["firstName"], "Renamed", "{}", r.body);
}
