//! The real `gatehouse` binary: start-up, settings, CLI, and two instances
//! sharing one PostgreSQL database.

mod common;

use std::path::Path;

use common::{Client, PASSWORD, SECRET, login, login_token, register, run_to_end};
use serde_json::json;
use tokio::process::{Child, Command};

/// A clean environment for the binary: none of the developer's settings leak in.
fn command(dir: &Path) -> Command {
    common::binary(dir)
}

/// A running binary and the address it printed.
struct Instance {
    _child: Child,
    client: Client,
}

async fn spawn(cmd: Command) -> Instance {
    let (child, addr) = common::spawn_listening(cmd).await;
    Instance {
        _child: child,
        client: Client::new(addr),
    }
}

#[tokio::test]
async fn defaults_create_data_dir_secret_and_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Empty variables count as unset.
    let mut cmd = command(dir.path());
    cmd.env("DATABASE_URL", "").env("SMTP_URL", "");
    let first = spawn(cmd).await;
    let (token, _) = register(&first.client, "keep@example.com").await;
    drop(first);
    let data = dir.path().join("data");
    assert!(data.join("gatehouse.db").is_file());
    let secret = data.join("jwt.secret");
    assert!(secret.is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Restarting keeps the secret and the data: the old token still works.
    let second = spawn(command(dir.path())).await;
    let me = second.client.me(&token).await;
    assert_eq!(me.data()["email"], "keep@example.com");
    // Endpoints besides /trpc.
    assert_eq!(second.client.raw("GET", "/healthz", None).await.status, 200);
    assert_eq!(second.client.raw("GET", "/readyz", None).await.status, 200);
}

#[tokio::test]
async fn relative_sqlite_url_and_admin_bootstrap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = command(dir.path());
    cmd.env("DATABASE_URL", "sqlite://./nested/dir/app.db")
        .env("JWT_SECRET", SECRET)
        .env("GATEHOUSE_ADMIN_EMAIL", "Boss@Example.com")
        .env("GATEHOUSE_ADMIN_PASSWORD", "the boss password 1");
    let server = spawn(cmd).await;
    assert!(dir.path().join("nested/dir/app.db").is_file());
    let r = login(&server.client, "boss@example.com", "the boss password 1").await;
    assert_eq!(r.data()["user"]["role"], "ADMIN");
    let token = r.data()["token"].as_str().expect("token").to_owned();
    let list = server
        .client
        .clone()
        .with_token(&token)
        .query("users.list", json!({}))
        .await;
    assert_eq!(list.data()["total"], 1);
}

#[tokio::test]
async fn invalid_settings_stop_the_start_naming_the_setting() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, value) in [
        ("JWT_SECRET", "too-short"),
        ("BCRYPT_COST", "3"),
        ("BCRYPT_COST", "32"),
        ("JWT_TTL", "soon"),
        ("GATEHOUSE_LOGIN_MAX_FAILURES", "0"),
        ("GATEHOUSE_TRUSTED_PROXIES", "10.0.0.0/99"),
        ("GATEHOUSE_ADDR", "nowhere"),
        ("DATABASE_URL", "mysql://x@y/z"),
    ] {
        let mut cmd = command(dir.path());
        cmd.env(name, value);
        let (ok, _, stderr) = run_to_end(cmd, None).await;
        assert!(!ok, "{name}={value} must stop the start");
        assert!(
            stderr.contains(name),
            "{name}={value}: stderr does not name it: {stderr}"
        );
    }
}

#[tokio::test]
async fn migrate_and_users_create_from_stdin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let mut cmd = command(dir.path());
    cmd.env("DATABASE_URL", &db).arg("migrate");
    let (ok, stdout, stderr) = run_to_end(cmd, None).await;
    assert!(ok, "migrate failed: {stderr}");
    assert!(stdout.contains("migrations applied"));

    let mut cmd = command(dir.path());
    cmd.env("DATABASE_URL", &db).args([
        "users",
        "create",
        "--email",
        "Ops@Example.com",
        "--role",
        "ADMIN",
        "--first-name",
        "Olga",
        "--last-name",
        "Ops",
        "--username",
        "Olga.Ops",
    ]);
    let (ok, _, stderr) = run_to_end(cmd, Some("a strong cli password\n")).await;
    assert!(ok, "users create failed: {stderr}");

    // A taken or malformed username is refused.
    for (username, why) in [("olga.ops", "taken"), ("x", "at least 3")] {
        let mut cmd = command(dir.path());
        cmd.env("DATABASE_URL", &db).args([
            "users",
            "create",
            "--email",
            "other@example.com",
            "--username",
            username,
        ]);
        let (ok, _, stderr) = run_to_end(cmd, Some("a strong cli password\n")).await;
        assert!(!ok, "{username}");
        assert!(stderr.contains(why), "{username}: {stderr}");
    }

    // A weak password is refused.
    let mut cmd = command(dir.path());
    cmd.env("DATABASE_URL", &db).args([
        "users",
        "create",
        "--email",
        "weak@example.com",
        "--role",
        "VIEWER",
    ]);
    let (ok, _, stderr) = run_to_end(cmd, Some("short\n")).await;
    assert!(!ok);
    assert!(stderr.contains("at least 8"), "{stderr}");

    let mut cmd = command(dir.path());
    cmd.env("DATABASE_URL", &db).env("JWT_SECRET", SECRET);
    let server = spawn(cmd).await;
    let r = login(&server.client, "ops@example.com", "a strong cli password").await;
    let user = &r.data()["user"];
    assert_eq!(user["role"], "ADMIN");
    assert_eq!(user["firstName"], "Olga");
    let r = server
        .client
        .mutation(
            "auth.login",
            json!({"username": "olga.ops", "password": "a strong cli password"}),
        )
        .await;
    assert_eq!(r.data()["user"]["email"], "ops@example.com");
}

/// Two instances behind a "load balancer": whatever one does, the other
/// enforces at once, because sessions, reset tokens and counters live in
/// the shared database.
#[tokio::test]
async fn two_instances_share_revocation() {
    let Some(admin_url) = common::postgres_admin_url() else {
        return;
    };
    let db = common::fresh_postgres_db(&admin_url).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = dir.path().join("outbox");
    let make = || {
        let mut cmd = command(dir.path());
        cmd.env("DATABASE_URL", &db)
            .env("JWT_SECRET", SECRET)
            .env("GATEHOUSE_OUTBOX_DIR", &outbox)
            .env("GATEHOUSE_ADMIN_EMAIL", "root@example.com")
            .env("GATEHOUSE_ADMIN_PASSWORD", "root password 123")
            .env("GATEHOUSE_LOGIN_MAX_FAILURES", "3");
        cmd
    };
    // Both start at once on the empty database: the migrations race.
    let (a, b) = tokio::join!(spawn(make()), spawn(make()));
    let (ca, cb) = (a.client.clone(), b.client.clone());

    // Logout on A: the token is dead on B.
    let (t, _) = register(&ca, "shared@example.com").await;
    assert_eq!(cb.me(&t).await.status, 200);
    ca.clone()
        .with_token(&t)
        .mutation("auth.logout", json!(null))
        .await
        .data();
    cb.me(&t).await.assert_error("UNAUTHORIZED", 401);

    // Role change on A: the user's token is dead on B.
    let admin = login_token(&ca, "root@example.com", "root password 123").await;
    let t = login_token(&cb, "shared@example.com", PASSWORD).await;
    let id = common::claims(&t)["sub"].as_str().expect("sub").to_owned();
    ca.clone()
        .with_token(&admin)
        .mutation("users.setRole", json!({"id": id, "role": "OPERATOR"}))
        .await
        .data();
    cb.me(&t).await.assert_error("UNAUTHORIZED", 401);

    // Password reset through A: sessions opened on B end.
    let t = login_token(&cb, "shared@example.com", PASSWORD).await;
    ca.mutation(
        "auth.requestPasswordReset",
        json!({"email": "shared@example.com"}),
    )
    .await
    .data();
    // Either instance's mail worker may send it, just after the answer.
    let mails = common::wait_outbox(&outbox, 1).await;
    let reset = common::token_from_mail(mails.last().expect("a reset mail"));
    // The token mailed by A is redeemed on B.
    cb.mutation(
        "auth.resetPassword",
        json!({"email": "shared@example.com", "token": reset, "password": "after the reset 1"}),
    )
    .await
    .data();
    cb.me(&t).await.assert_error("UNAUTHORIZED", 401);
    assert_eq!(
        login(&ca, "shared@example.com", "after the reset 1")
            .await
            .status,
        200
    );

    // Login failures are counted across both instances.
    for client in [&ca, &cb, &ca] {
        login(client, "shared@example.com", "wrong password!")
            .await
            .assert_error("UNAUTHORIZED", 401);
    }
    login(&cb, "shared@example.com", "after the reset 1")
        .await
        .assert_error("TOO_MANY_REQUESTS", 429);
}

#[tokio::test]
async fn common_first_admin_password_still_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = command(dir.path());
    cmd.env("JWT_SECRET", SECRET)
        .env("GATEHOUSE_ADMIN_EMAIL", "demo@example.com")
        .env("GATEHOUSE_ADMIN_PASSWORD", "password123");
    let server = spawn(cmd).await;
    let r = login(&server.client, "demo@example.com", "password123").await;
    assert_eq!(r.data()["user"]["role"], "ADMIN");
    // A password bcrypt would truncate is refused at start, naming the setting.
    let mut cmd = command(dir.path());
    cmd.env("JWT_SECRET", SECRET)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("other.db").display()),
        )
        .env("GATEHOUSE_ADMIN_EMAIL", "long@example.com")
        .env("GATEHOUSE_ADMIN_PASSWORD", "x".repeat(73));
    let (ok, _, stderr) = run_to_end(cmd, None).await;
    assert!(!ok);
    assert!(stderr.contains("GATEHOUSE_ADMIN_PASSWORD"), "{stderr}");
}

#[tokio::test]
async fn http_adapter_settings_reach_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = r#"{"0":{"json":null,"meta":{"values":["undefined"],"v":1}},"1":{"json":null,"meta":{"values":["undefined"],"v":1}}}"#;

    // Defaults: a query by POST is refused, a batch of two is fine.
    let mut cmd = command(dir.path());
    cmd.env("JWT_SECRET", SECRET);
    let plain = spawn(cmd).await;
    let r = plain.client.raw("POST", "/trpc/auth.me", Some("{}")).await;
    assert_eq!(r.status, 405);

    // Method override on, batches capped at one call.
    let mut cmd = command(dir.path());
    cmd.env("JWT_SECRET", SECRET)
        .env("GATEHOUSE_ALLOW_METHOD_OVERRIDE", "true")
        .env("GATEHOUSE_MAX_BATCH_SIZE", "1");
    let custom = spawn(cmd).await;
    let r = custom.client.raw("POST", "/trpc/auth.me", Some("{}")).await;
    assert_eq!(r.status, 401, "a query by POST reaches the guard");
    let r = custom
        .client
        .raw("POST", "/trpc/auth.me,auth.me?batch=1", Some(body))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["error"]["json"]["message"],
        "Batch call exceeds maximum size"
    );
}

/// Issue 22 (2): someone registers `GATEHOUSE_ADMIN_EMAIL` with a password
/// of their own before the operator starts with the admin settings. The
/// start is refused, naming the conflict, and the account stays a VIEWER;
/// only an account whose password is `GATEHOUSE_ADMIN_PASSWORD` (the
/// operator's own) is promoted.
async fn first_admin_never_takes_over_an_account(db: String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = || {
        let mut cmd = command(dir.path());
        cmd.env("DATABASE_URL", &db).env("JWT_SECRET", SECRET);
        cmd
    };
    let with_admin = |password: &str| {
        let mut cmd = base();
        cmd.env("GATEHOUSE_ADMIN_EMAIL", "Boss@Example.com")
            .env("GATEHOUSE_ADMIN_PASSWORD", password);
        cmd
    };
    // Open registration and no admin yet: the attacker is first.
    let open = spawn(base()).await;
    register(&open.client, "boss@example.com").await;
    drop(open);

    let (ok, _, stderr) = run_to_end(with_admin("the operator password 1"), None).await;
    assert!(!ok, "the start must be refused");
    for expected in [
        "boss@example.com",
        "not an ADMIN",
        "GATEHOUSE_ADMIN_PASSWORD",
        "gatehouse users create",
        "users.delete",
    ] {
        assert!(stderr.contains(expected), "{expected:?} missing: {stderr}");
    }

    // Nothing was taken over: the attacker's password gives a VIEWER, the
    // operator's does not log in.
    let after = spawn(base()).await;
    let r = login(&after.client, "boss@example.com", PASSWORD).await;
    assert_eq!(r.data()["user"]["role"], "VIEWER");
    login(&after.client, "boss@example.com", "the operator password 1")
        .await
        .assert_error("UNAUTHORIZED", 401);
    drop(after);

    // The exception: the account's password is GATEHOUSE_ADMIN_PASSWORD, so
    // whoever set the variable controls the account; it is promoted.
    let promoted = spawn(with_admin(PASSWORD)).await;
    let r = login(&promoted.client, "boss@example.com", PASSWORD).await;
    assert_eq!(r.data()["user"]["role"], "ADMIN");
}

#[tokio::test]
async fn first_admin_never_takes_over_an_account_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("taken.db").display());
    first_admin_never_takes_over_an_account(db).await;
}

#[tokio::test]
async fn first_admin_never_takes_over_an_account_postgres() {
    let Some(admin_url) = common::postgres_admin_url() else {
        return;
    };
    first_admin_never_takes_over_an_account(common::fresh_postgres_db(&admin_url).await).await;
}
