//! Issue 22 (5): look-alike email addresses. Every address is brought to
//! one normalised form (NFKC, lower case, the domain in its ASCII form)
//! before it is stored or looked up, and what cannot be normalised
//! (invisible characters, a domain that is no domain name) is refused, so
//! no second account can be registered under an address that reads the
//! same as an existing one. `gatehouse users check-emails` finds and fixes
//! rows stored before.

mod common;

use std::path::Path;

use common::{Backend, Client, PASSWORD, Server, login, register, run_to_end};
use gatehouse_auth::entities::user;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::json;

both_backends!(
    look_alikes_do_not_register_new_accounts,
    idn_domains_are_stored_in_ascii,
);

async fn try_register(c: &Client, email: &str) -> common::Response {
    c.mutation(
        "auth.register",
        json!({ "email": email, "password": PASSWORD, "firstName": "Look", "lastName": "Alike" }),
    )
    .await
}

fn issue_keys(r: &common::Response) -> Vec<String> {
    r.body["error"]["json"]["data"]["issues"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| i["message"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn look_alikes_do_not_register_new_accounts(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    register(&c, "look@example.com").await;

    // The same address once normalised: the existing account.
    for alike in [
        "\u{ff4c}ook@example.com", // fullwidth l in the local part
        "look@\u{ff45}xample.com", // fullwidth e in the domain
        "LOOK@EXAMPLE.\u{ff23}OM", // case and a fullwidth C
    ] {
        try_register(&c, alike).await.assert_error("CONFLICT", 409);
        let r = login(&c, alike, PASSWORD).await;
        assert_eq!(r.data()["user"]["email"], "look@example.com", "{alike:?}");
    }

    // Invisible characters cannot be normalised away safely: refused.
    for invisible in [
        "look\u{200b}@example.com", // zero-width space before the @
        "lo\u{00ad}ok@example.com", // soft hyphen in the name
        "look@exam\u{2060}ple.com", // word joiner in the domain
        "\u{feff}look@example.com", // byte-order mark
        "look\u{fe0f}@example.com", // variation selector
    ] {
        let r = try_register(&c, invisible).await;
        r.assert_error("BAD_REQUEST", 400);
        assert_eq!(
            issue_keys(&r),
            ["Email address contains an invisible character"],
            "{invisible:?}"
        );
        // Logging in with one is refused the same way, not counted as a
        // failure of some other account.
        login(&c, invisible, PASSWORD)
            .await
            .assert_error("BAD_REQUEST", 400);
        // Spanish too.
        let r = c
            .clone()
            .with_header("accept-language", "es")
            .mutation("auth.requestPasswordReset", json!({ "email": invisible }))
            .await;
        r.assert_error("BAD_REQUEST", 400);
        assert_eq!(
            r.message(),
            "La dirección de correo electrónico contiene un carácter invisible"
        );
    }

    // Exactly one account, as users.list shows.
    let admin = common::admin_token(&server, "root@example.com").await;
    let list = c
        .clone()
        .with_token(&admin)
        .query("users.list", json!({ "search": "look" }))
        .await;
    assert_eq!(list.data()["total"], 1, "{}", list.body);
    // A search is folded the same way, so a look-alike term finds it too.
    for term in ["\u{ff4c}ook", "\u{ff2c}OOK@EXAMPLE.COM"] {
        let list = c
            .clone()
            .with_token(&admin)
            .query("users.list", json!({ "search": term }))
            .await;
        assert_eq!(list.data()["total"], 1, "{term:?}: {}", list.body);
    }

    // A reset asked for with a look-alike goes to the account's address.
    c.mutation(
        "auth.requestPasswordReset",
        json!({ "email": "\u{ff4c}ook@example.com" }),
    )
    .await
    .data();
    let mails = server.mails(1).await;
    assert!(mails[0].contains("To: look@example.com"), "{}", mails[0]);
}

async fn idn_domains_are_stored_in_ascii(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let (token, _) = register(&c, "Jürgen@Bücher.de").await;
    let me = c.me(&token).await;
    // The local part keeps its letters (lower-cased); the domain is stored
    // in its ASCII (punycode) form, which is the same mailbox.
    assert_eq!(me.data()["email"], "jürgen@xn--bcher-kva.de");
    for same in ["jürgen@xn--bcher-kva.de", "JÜRGEN@BÜCHER.DE"] {
        try_register(&c, same).await.assert_error("CONFLICT", 409);
        assert_eq!(login(&c, same, PASSWORD).await.status, 200, "{same}");
    }
    // A domain that is no domain name is refused, with its own message.
    let r = try_register(&c, "a@b\u{e000}c.example").await; // private use: no host name
    r.assert_error("BAD_REQUEST", 400);
    assert_eq!(issue_keys(&r), ["Email domain is not a valid domain name"]);
    // Plain ASCII mistakes keep their old message.
    let r = try_register(&c, "a@b..c").await;
    assert_eq!(issue_keys(&r), ["Invalid email address"]);
}

/// The binary, with a clean environment, on `db`.
fn command(dir: &Path, db: &str) -> tokio::process::Command {
    let mut cmd = common::binary(dir);
    cmd.env("DATABASE_URL", db);
    cmd
}

/// Inserts a row as an older version (or a hand-written SQL script) might
/// have stored it: the email exactly as given.
async fn insert_raw(db: &sea_orm::DatabaseConnection, n: i64, email: &str) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    user::ActiveModel {
        id: Set(id.clone()),
        email: Set(email.to_owned()),
        password_hash: Set(
            "$2b$04$abcdefghijklmnopqrstuuEd2Q8lW9K6XK0XaXyFMZc2GV3Rj4eJ6".to_owned(),
        ),
        first_name: Set("Old".to_owned()),
        last_name: Set("Row".to_owned()),
        phone: Set(None),
        role: Set(user::StoredRole::Viewer),
        username: Set(None),
        created_at: Set(n),
        updated_at: Set(n),
    }
    .insert(db)
    .await
    .expect("insert a legacy row");
    id
}

async fn emails_of(db: &sea_orm::DatabaseConnection) -> Vec<String> {
    user::Entity::find()
        .order_by_asc(user::Column::CreatedAt)
        .all(db)
        .await
        .expect("users")
        .into_iter()
        .map(|u| u.email)
        .collect()
}

async fn check_emails_reports_and_fixes(db_url: String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = command(dir.path(), &db_url);
    cmd.arg("migrate");
    let (ok, _, stderr) = run_to_end(cmd, None).await;
    assert!(ok, "{stderr}");
    let db = gatehouse_auth::db::connect(&db_url).await.expect("db");
    insert_raw(&db, 1, "look@example.com").await;
    insert_raw(&db, 2, "look@\u{ff45}xample.com").await; // collides with the first
    insert_raw(&db, 3, "\u{ff4c}ater@example.com").await; // fixable
    insert_raw(&db, 4, "jürgen@bücher.de").await; // fixable: ASCII domain
    insert_raw(&db, 5, "zero\u{200b}@example.com").await; // cannot be normalised
    insert_raw(&db, 6, "fine@example.com").await;

    // A report only: nothing changes, and the exit status says work is left.
    let mut cmd = command(dir.path(), &db_url);
    cmd.args(["users", "check-emails"]);
    let (ok, stdout, stderr) = run_to_end(cmd, None).await;
    assert!(!ok, "findings must fail the check: {stdout}");
    for expected in [
        "collision",
        "look@example.com",
        "later@example.com",
        "jürgen@xn--bcher-kva.de",
        "invisible",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing:\n{stdout}\n{stderr}"
        );
    }
    assert!(!stdout.contains("fine@example.com"), "{stdout}");
    let before = emails_of(&db).await;
    assert!(before.contains(&"\u{ff4c}ater@example.com".to_owned()));

    // --fix rewrites what can be rewritten without a collision.
    let mut cmd = command(dir.path(), &db_url);
    cmd.args(["users", "check-emails", "--fix"]);
    let (ok, stdout, _) = run_to_end(cmd, None).await;
    assert!(
        !ok,
        "the collision and the invisible one are left: {stdout}"
    );
    let after = emails_of(&db).await;
    assert_eq!(
        after,
        [
            "look@example.com",
            "look@\u{ff45}xample.com",
            "later@example.com",
            "jürgen@xn--bcher-kva.de",
            "zero\u{200b}@example.com",
            "fine@example.com",
        ]
    );

    // `gatehouse users create` normalises the same way.
    for (email, why) in [
        ("\u{ff46}ine@example.com", "already exists"),
        ("new\u{200b}@example.com", "invisible character"),
    ] {
        let mut cmd = command(dir.path(), &db_url);
        cmd.args(["users", "create", "--email", email]);
        let (ok, _, stderr) = run_to_end(cmd, Some("a strong cli password\n")).await;
        assert!(!ok, "{email:?}");
        assert!(stderr.contains(why), "{email:?}: {stderr}");
    }

    // Once the operator settles the rest, the check passes.
    user::Entity::delete_many()
        .filter(user::Column::Email.is_in(["look@\u{ff45}xample.com", "zero\u{200b}@example.com"]))
        .exec(&db)
        .await
        .expect("delete");
    let mut cmd = command(dir.path(), &db_url);
    cmd.args(["users", "check-emails"]);
    let (ok, stdout, stderr) = run_to_end(cmd, None).await;
    assert!(ok, "{stdout}{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_emails_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("legacy.db").display());
    check_emails_reports_and_fixes(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_emails_postgres() {
    let Some(admin) = common::postgres_admin_url() else {
        return;
    };
    check_emails_reports_and_fixes(common::fresh_postgres_db(&admin).await).await;
}
