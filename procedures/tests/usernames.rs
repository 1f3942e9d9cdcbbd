//! Usernames (issue 13): set at registration or by `auth.updateProfile`,
//! unique case-insensitively, shown in `UserDetails`, and a second way to
//! sign in with the same throttling and answers as the email. Run on SQLite
//! and (when `GATEHOUSE_TEST_POSTGRES_URL` is set) PostgreSQL.

mod common;

use common::{Backend, Client, PASSWORD, Server, admin_token, login};
use serde_json::{Value, json};

both_backends!(
    register_and_login_by_username,
    login_takes_exactly_one_identifier,
    invalid_usernames_are_refused,
    taken_usernames_conflict,
    concurrent_claims_of_one_username,
    update_profile_sets_and_clears_the_username,
    throttling_is_shared_across_identifiers,
    unknown_username_answers_like_unknown_email,
    users_list_searches_usernames,
    migration_keeps_existing_users_without_username,
);

async fn register_with(c: &Client, email: &str, username: Value) -> common::Response {
    c.mutation(
        "auth.register",
        json!({"email": email, "password": PASSWORD, "firstName": "U", "lastName": "N",
               "username": username}),
    )
    .await
}

async fn login_by_username(c: &Client, username: &str, password: &str) -> common::Response {
    c.mutation(
        "auth.login",
        json!({"username": username, "password": password}),
    )
    .await
}

async fn register_and_login_by_username(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let r = register_with(&c, "ada@example.com", json!("  Ada.Love_1-x ")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The login/register `user` (type User) has no username.
    assert!(r.data()["user"].get("username").is_none(), "{}", r.body);
    let token = r.data()["token"].as_str().expect("token").to_owned();
    assert_eq!(c.me(&token).await.data()["username"], "ada.love_1-x");

    // By username, case-insensitively and trimmed.
    let r = login_by_username(&c, " ADA.LOVE_1-X", PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.data()["user"]["email"], "ada@example.com");
    assert!(r.data()["user"].get("username").is_none());
    // By email, as before.
    assert_eq!(login(&c, "ada@example.com", PASSWORD).await.status, 200);

    // Without a username the account shows null.
    let r = register_with(&c, "plain@example.com", Value::Null).await;
    let token = r.data()["token"].as_str().expect("token").to_owned();
    assert_eq!(c.me(&token).await.data()["username"], Value::Null);
    let r = register_with(&c, "blank@example.com", json!("   ")).await;
    let token = r.data()["token"].as_str().expect("token").to_owned();
    assert_eq!(c.me(&token).await.data()["username"], Value::Null);
}

async fn login_takes_exactly_one_identifier(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    register_with(&c, "one@example.com", json!("one"))
        .await
        .data();

    // Both: refused, whatever the password.
    let r = c
        .mutation(
            "auth.login",
            json!({"email": "one@example.com", "username": "one", "password": PASSWORD}),
        )
        .await;
    r.assert_error("BAD_REQUEST", 400);
    assert_eq!(r.issue_fields(), ["username"]);
    assert_eq!(r.message(), "Send either email or username, not both");

    // Neither: the missing email of before, byte for byte.
    let r = c.mutation("auth.login", json!({})).await;
    r.assert_error("BAD_REQUEST", 400);
    assert_eq!(r.issue_fields(), ["email", "password"]);
    assert_eq!(r.message(), "Required");
    let r = c
        .mutation("auth.login", json!({"password": PASSWORD}))
        .await;
    assert_eq!(r.issue_fields(), ["email"]);
    let r = c
        .mutation("auth.login", json!({"email": null, "password": PASSWORD}))
        .await;
    assert_eq!(r.issue_fields(), ["email"]);
    // A blank username is reported where the client put it.
    let r = c
        .mutation("auth.login", json!({"username": "", "password": PASSWORD}))
        .await;
    r.assert_error("BAD_REQUEST", 400);
    assert_eq!(r.issue_fields(), ["username"]);
    assert_eq!(r.message(), "Required");
    let r = c
        .mutation("auth.login", json!({"username": "one", "password": ""}))
        .await;
    assert_eq!(r.issue_fields(), ["password"]);
    // An empty username beside an email is no second identifier.
    let r = c
        .mutation(
            "auth.login",
            json!({"email": "one@example.com", "username": "", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A username of the wrong type is a decoding error.
    c.mutation("auth.login", json!({"username": 5, "password": PASSWORD}))
        .await
        .assert_error("BAD_REQUEST", 400);
}

async fn invalid_usernames_are_refused(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let cases = [
        ("ab", "Username must be at least 3 characters"),
        (&*"a".repeat(33), "Username must be at most 32 characters"),
        (
            "bad name",
            "Username may only contain a-z, 0-9, '.', '_' and '-'",
        ),
        (
            "ada@home",
            "Username may only contain a-z, 0-9, '.', '_' and '-'",
        ),
        (
            "ñandú",
            "Username may only contain a-z, 0-9, '.', '_' and '-'",
        ),
    ];
    for (i, (name, message)) in cases.into_iter().enumerate() {
        let r = register_with(&c, &format!("bad{i}@example.com"), json!(name)).await;
        r.assert_error("BAD_REQUEST", 400);
        assert_eq!(r.issue_fields(), ["username"], "{name}");
        assert_eq!(r.message(), message, "{name}");
    }
    // 3 and 32 characters are fine; other fields are still reported with it.
    assert_eq!(
        register_with(&c, "three@example.com", json!("a.b"))
            .await
            .status,
        200
    );
    assert_eq!(
        register_with(&c, "long@example.com", json!("z".repeat(32)))
            .await
            .status,
        200
    );
    let r = c
        .mutation(
            "auth.register",
            json!({"email": "nope", "password": PASSWORD, "firstName": "A", "lastName": "B",
                   "username": "x"}),
        )
        .await;
    assert_eq!(r.issue_fields(), ["email", "username"]);

    // The same rules in updateProfile.
    let r = register_with(&c, "upd@example.com", Value::Null).await;
    let me = c
        .clone()
        .with_token(r.data()["token"].as_str().expect("token"));
    let r = me
        .mutation("auth.updateProfile", json!({"username": "no!"}))
        .await;
    r.assert_error("BAD_REQUEST", 400);
    assert_eq!(r.issue_fields(), ["username"]);
    // In Spanish too.
    let r = me
        .clone()
        .with_header("accept-language", "es")
        .mutation("auth.updateProfile", json!({"username": "no"}))
        .await;
    assert_eq!(
        r.message(),
        "El nombre de usuario debe tener al menos 3 caracteres"
    );
}

async fn taken_usernames_conflict(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    register_with(&c, "first@example.com", json!("taken"))
        .await
        .data();
    // The same name in another case is the same name.
    let r = register_with(&c, "second@example.com", json!("TAKEN")).await;
    r.assert_error("CONFLICT", 409);
    assert_eq!(r.message(), "Username is already taken");
    let r = c
        .clone()
        .with_header("accept-language", "es")
        .mutation(
            "auth.register",
            json!({"email": "second@example.com", "password": PASSWORD, "firstName": "U",
                   "lastName": "N", "username": "taken"}),
        )
        .await;
    assert_eq!(r.message(), "El nombre de usuario ya está en uso");
    // A taken email keeps its own message, with or without a free username.
    let r = register_with(&c, "first@example.com", json!("free")).await;
    r.assert_error("CONFLICT", 409);
    assert_eq!(r.message(), "Email is already registered");
    // Nothing was created by the refused registrations.
    let r = register_with(&c, "second@example.com", json!("free")).await;
    let token = r.data()["token"].as_str().expect("token").to_owned();
    // updateProfile: the same conflict, and the profile is unchanged.
    let me = c.clone().with_token(&token);
    let r = me
        .mutation(
            "auth.updateProfile",
            json!({"username": " Taken ", "firstName": "Changed"}),
        )
        .await;
    r.assert_error("CONFLICT", 409);
    assert_eq!(r.message(), "Username is already taken");
    let d = c.me(&token).await.data().clone();
    assert_eq!(
        (d["username"].as_str(), d["firstName"].as_str()),
        (Some("free"), Some("U"))
    );
    // Keeping one's own name is no conflict.
    let r = me
        .mutation("auth.updateProfile", json!({"username": "FREE"}))
        .await;
    assert_eq!(r.data()["username"], "free");
}

async fn concurrent_claims_of_one_username(backend: Backend) {
    let server = Server::start(backend).await;
    let mut tasks = Vec::new();
    for i in 0..6 {
        let c = server.client();
        tasks.push(tokio::spawn(async move {
            register_with(&c, &format!("racer{i}@example.com"), json!("winner")).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let r = t.await.expect("task");
        match r.status {
            200 => ok += 1,
            409 => assert_eq!(r.message(), "Username is already taken"),
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert_eq!(ok, 1);

    // Two existing accounts claiming one free name at once: one wins.
    let c = server.client();
    let mut tokens = Vec::new();
    for i in 0..2 {
        let r = register_with(&c, &format!("claim{i}@example.com"), Value::Null).await;
        tokens.push(r.data()["token"].as_str().expect("token").to_owned());
    }
    let claims = tokens.iter().map(|t| {
        let me = c.clone().with_token(t);
        async move {
            me.mutation("auth.updateProfile", json!({"username": "prize"}))
                .await
        }
    });
    let results = futures::future::join_all(claims).await;
    let mut statuses: Vec<u16> = results.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{results:?}");
}

async fn update_profile_sets_and_clears_the_username(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let r = register_with(&c, "p@example.com", Value::Null).await;
    let token = r.data()["token"].as_str().expect("token").to_owned();
    let me = c.clone().with_token(&token);
    let d = me
        .mutation("auth.updateProfile", json!({"username": " Paula "}))
        .await
        .data()
        .clone();
    assert_eq!(d["username"], "paula");
    // Absent: unchanged.
    let d = me
        .mutation("auth.updateProfile", json!({"lastName": "Perez"}))
        .await
        .data()
        .clone();
    assert_eq!(d["username"], "paula");
    assert_eq!(login_by_username(&c, "paula", PASSWORD).await.status, 200);
    // null clears it; the name is free again and no longer signs in.
    let d = me
        .mutation("auth.updateProfile", json!({"username": null}))
        .await
        .data()
        .clone();
    assert_eq!(d["username"], Value::Null);
    assert_eq!(c.me(&token).await.data()["username"], Value::Null);
    login_by_username(&c, "paula", PASSWORD)
        .await
        .assert_error("UNAUTHORIZED", 401);
    let r = register_with(&c, "other@example.com", json!("paula")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A blank string clears too, like the phone.
    let me = c
        .clone()
        .with_token(r.data()["token"].as_str().expect("token"));
    let d = me
        .mutation("auth.updateProfile", json!({"username": " "}))
        .await
        .data()
        .clone();
    assert_eq!(d["username"], Value::Null);
}

async fn throttling_is_shared_across_identifiers(backend: Backend) {
    let server = Server::start_with(backend, |c| c.limits.login_max_failures = 4).await;
    let c = server.client();
    register_with(&c, "lock@example.com", json!("locky"))
        .await
        .data();
    // Alternating identifiers: four failures in all lock the account.
    for i in 0..4 {
        let r = if i % 2 == 0 {
            login(&c, "lock@example.com", "bad password!").await
        } else {
            login_by_username(&c, "LOCKY", "bad password!").await
        };
        r.assert_error("UNAUTHORIZED", 401);
    }
    login(&c, "lock@example.com", PASSWORD)
        .await
        .assert_error("TOO_MANY_REQUESTS", 429);
    let r = login_by_username(&c, "locky", PASSWORD).await;
    r.assert_error("TOO_MANY_REQUESTS", 429);
    assert!(r.header("retry-after").is_some());

    // A success by username clears the counter the email failures built.
    let c2 = server.client();
    register_with(&c2, "reset@example.com", json!("resetty"))
        .await
        .data();
    for _ in 0..3 {
        login(&c2, "reset@example.com", "bad password!")
            .await
            .assert_error("UNAUTHORIZED", 401);
    }
    assert_eq!(
        login_by_username(&c2, "resetty", PASSWORD).await.status,
        200
    );
    for _ in 0..3 {
        login_by_username(&c2, "resetty", "bad password!")
            .await
            .assert_error("UNAUTHORIZED", 401);
    }
    assert_eq!(login(&c2, "reset@example.com", PASSWORD).await.status, 200);
}

async fn unknown_username_answers_like_unknown_email(backend: Backend) {
    let server = Server::start_with(backend, |c| c.limits.login_max_failures = 3).await;
    let c = server.client();
    register_with(&c, "known@example.com", json!("known"))
        .await
        .data();
    let wrong = login_by_username(&c, "known", "not the password").await;
    let unknown_name = login_by_username(&c, "nobody", "not the password").await;
    let unknown_email = login(&c, "nobody@example.com", "not the password").await;
    wrong.assert_error("UNAUTHORIZED", 401);
    assert_eq!(wrong.message(), "Invalid email or password");
    assert_eq!(wrong.body, unknown_name.body);
    assert_eq!(wrong.body, unknown_email.body);
    // A name no account could have (invalid format) answers the same.
    let r = login_by_username(&c, "not a name!", "not the password").await;
    assert_eq!(r.body, unknown_email.body);
    // Unknown usernames are counted and locked like unknown emails.
    for _ in 0..2 {
        login_by_username(&c, "nobody", "not the password")
            .await
            .assert_error("UNAUTHORIZED", 401);
        login(&c, "nobody@example.com", "not the password")
            .await
            .assert_error("UNAUTHORIZED", 401);
    }
    login_by_username(&c, "nobody", "not the password")
        .await
        .assert_error("TOO_MANY_REQUESTS", 429);
    login(&c, "nobody@example.com", "not the password")
        .await
        .assert_error("TOO_MANY_REQUESTS", 429);
}

async fn users_list_searches_usernames(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let admin = admin_token(&server, "root@example.com").await;
    register_with(&c, "s1@example.com", json!("stargazer"))
        .await
        .data();
    register_with(&c, "s2@example.com", Value::Null)
        .await
        .data();
    let r = c
        .clone()
        .with_token(&admin)
        .query("users.list", json!({"search": "GAZE"}))
        .await;
    let d = r.data();
    assert_eq!(d["total"], 1);
    assert_eq!(d["items"][0]["username"], "stargazer");
    // Every UserDetails carries the field, null when unset.
    let all = c
        .clone()
        .with_token(&admin)
        .query("users.list", json!(null))
        .await;
    for item in all.data()["items"].as_array().expect("items") {
        assert!(item.get("username").is_some(), "{item}");
    }
}

/// A database migrated before usernames existed, with a user in it: the
/// new migration adds the column as NULL for that user, and the unique
/// index lets any number of users have none.
async fn migration_keeps_existing_users_without_username(backend: Backend) {
    use gatehouse_migrations::{Migrator, MigratorTrait};
    use sea_orm::{ConnectionTrait, Statement};

    let dir = tempfile::tempdir().expect("tempdir");
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("old.db").display()),
        Backend::Postgres => {
            let admin = common::postgres_admin_url().expect("PostgreSQL URL");
            common::fresh_postgres_db(&admin).await
        }
    };
    let db = gatehouse_auth::db::connect(&url).await.expect("connect");
    let before = Migrator::migrations().len() - 1;
    Migrator::up(&db, Some(u32::try_from(before).expect("count")))
        .await
        .expect("earlier migrations");
    let exec = |sql: &str| {
        let stmt = Statement::from_string(db.get_database_backend(), sql.to_owned());
        let db = &db;
        async move { db.execute_raw(stmt).await }
    };
    for (id, email) in [("u1", "old1@example.com"), ("u2", "old2@example.com")] {
        exec(&format!(
            "INSERT INTO users (id, email, password_hash, first_name, last_name, phone, role, \
             created_at, updated_at) VALUES ('{id}', '{email}', 'h', 'Old', 'User', NULL, \
             'VIEWER', 1, 2)"
        ))
        .await
        .expect("insert an old user");
    }
    Migrator::up(&db, None)
        .await
        .expect("the username migration");

    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT id, username FROM users ORDER BY id".to_owned(),
        ))
        .await
        .expect("select");
    let got: Vec<(String, Option<String>)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get("", "id").expect("id"),
                r.try_get("", "username").expect("username"),
            )
        })
        .collect();
    assert_eq!(got, [("u1".into(), None), ("u2".into(), None)]);
    // Unique once set.
    exec("UPDATE users SET username = 'same' WHERE id = 'u1'")
        .await
        .expect("set a username");
    let clash = exec("UPDATE users SET username = 'same' WHERE id = 'u2'")
        .await
        .expect_err("a second 'same' is refused");
    assert!(gatehouse_auth::db::is_username_violation(&clash), "{clash}");
    assert!(!gatehouse_auth::db::is_username_violation(
        &exec("UPDATE users SET email = 'old1@example.com' WHERE id = 'u2'")
            .await
            .expect_err("duplicate email")
    ));
    let _ = db.close().await;
}
