//! Every procedure of docs/api.md and its error cases, over real HTTP, on SQLite
//! and (when `GATEHOUSE_TEST_POSTGRES_URL` is set) PostgreSQL.

mod common;

use common::{
    Backend, Client, PASSWORD, Server, admin_token, claims, login, login_token, register,
};
use serde_json::json;

/// Snapshots the whole JSON answer of `response`, as a client reads it, in
/// `tests/snapshots/api__<name>.snap`. The SQLite and PostgreSQL runs share
/// one snapshot: the wire answer does not depend on the database. Ids,
/// tokens and times differ on every run: each is checked for its shape (a
/// UUID, a JWT, an RFC 3339 time) and written as `[id]`, `[token]`, `[time]`.
macro_rules! assert_wire_snapshot {
    ($name:literal, $response:expr) => {
        insta::assert_json_snapshot!($name, $response.body, {
            ".**.id" => insta::dynamic_redaction(|v, p| shape::id(v.as_str(), &p.to_string())),
            ".**.token" => insta::dynamic_redaction(|v, p| shape::token(v.as_str(), &p.to_string())),
            ".**.createdAt" => insta::dynamic_redaction(|v, p| shape::time(v.as_str(), &p.to_string())),
            ".**.updatedAt" => insta::dynamic_redaction(|v, p| shape::time(v.as_str(), &p.to_string())),
            ".**.lastUsedAt" => insta::dynamic_redaction(|v, p| shape::time(v.as_str(), &p.to_string())),
        })
    };
}

/// The checks behind the redactions of [`assert_wire_snapshot`]: a redacted
/// value must still have the right shape.
mod shape {
    pub fn id(value: Option<&str>, path: &str) -> &'static str {
        let value = value.unwrap_or_else(|| panic!("{path}: expected an id string"));
        assert!(
            uuid::Uuid::parse_str(value).is_ok(),
            "{path}: {value:?} is not a UUID"
        );
        "[id]"
    }

    pub fn token(value: Option<&str>, path: &str) -> &'static str {
        let value = value.unwrap_or_else(|| panic!("{path}: expected a token string"));
        let claims = value
            .split('.')
            .nth(1)
            .map(super::common::base64_lite::decode_url);
        assert!(
            value.split('.').count() == 3
                && claims.is_some_and(|c| serde_json::from_slice::<serde_json::Value>(&c)
                    .is_ok_and(|c| c.is_object())),
            "{path}: {value:?} is not a JWT"
        );
        "[token]"
    }

    pub fn time(value: Option<&str>, path: &str) -> &'static str {
        let value = value.unwrap_or_else(|| panic!("{path}: expected a time string"));
        assert!(
            chrono::DateTime::parse_from_rfc3339(value).is_ok(),
            "{path}: {value:?} is not an RFC 3339 time"
        );
        "[time]"
    }
}

both_backends!(
    register_login_me,
    register_validation_collects_every_field,
    duplicate_registration_conflicts,
    concurrent_duplicate_registration,
    login_does_not_reveal_accounts,
    me_errors,
    role_guards,
    refresh_rotates_within_session,
    logout_revokes,
    sessions_revoke_and_logout_all,
    password_reset_flow,
    reset_mails_are_rate_limited,
    change_password,
    update_profile,
    users_list,
    set_role_and_delete,
    last_admin_is_protected,
    login_throttling,
    address_throttling,
    spanish_messages,
    rehash_on_login,
    housekeeping_keeps_live_rows,
    hashes_from_node_and_php_verify,
    custom_reset_url,
    expired_reset_token,
);

async fn register_login_me(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server
        .client()
        .with_header("user-agent", "gatehouse-tests/1");
    let r = c
        .mutation(
            "auth.register",
            json!({"email": "  Alice@Example.COM ", "password": PASSWORD,
                   "firstName": "Alice", "lastName": "Liddell", "phone": "+34 600 000 000"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_wire_snapshot!("register", r);
    let data = r.data();
    let user = &data["user"];

    let token = data["token"].as_str().expect("token");
    let cl = claims(token);
    let mut claim_keys: Vec<_> = cl.as_object().expect("claims").keys().cloned().collect();
    claim_keys.sort();
    assert_eq!(
        claim_keys,
        [
            "email",
            "exp",
            "firstName",
            "iat",
            "id",
            "iss",
            "jti",
            "lastName",
            "nbf",
            "role",
            "sid",
            "sub"
        ]
    );
    assert_eq!(cl["iss"], "gatehouse");
    assert_eq!(cl["sub"], user["id"]);
    assert_eq!(cl["role"], "VIEWER");
    assert_eq!(
        cl["exp"].as_i64().expect("exp") - cl["iat"].as_i64().expect("iat"),
        86400
    );

    let me = c.me(token).await;
    assert_wire_snapshot!("me", me);
    assert_eq!(me.data()["id"], user["id"]);

    let r = login(&c, "ALICE@example.com ", PASSWORD).await;
    assert_wire_snapshot!("login", r);
    let data = r.data();
    assert_eq!(data["user"]["id"], user["id"]);
    assert_ne!(
        claims(data["token"].as_str().expect("token"))["sid"],
        cl["sid"]
    );
}

async fn register_validation_collects_every_field(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let r = c
        .mutation(
            "auth.register",
            json!({"email": "not-an-email", "password": "short", "firstName": "  ", "lastName": ""}),
        )
        .await;
    r.assert_error("BAD_REQUEST", 400);
    assert_wire_snapshot!("register_invalid", r);

    // Missing fields are reported too.
    let r = c.mutation("auth.register", json!({})).await;
    r.assert_error("BAD_REQUEST", 400);
    assert_eq!(
        r.issue_fields(),
        ["email", "password", "firstName", "lastName"]
    );

    // 73 bytes: refused, never truncated. 72 bytes is fine.
    let long = "a".repeat(73);
    let r = c
        .mutation(
            "auth.register",
            json!({"email": "l@example.com", "password": long, "firstName": "L", "lastName": "L"}),
        )
        .await;
    r.assert_error("BAD_REQUEST", 400);
    assert_eq!(r.issue_fields(), ["password"]);
    assert_eq!(r.message(), "Password must be at most 72 bytes");
    // Multi-byte: 25 × "ñé€" style characters, few chars but over 72 bytes.
    let r = c
        .mutation(
            "auth.register",
            json!({"email": "m@example.com", "password": "€".repeat(25), "firstName": "M", "lastName": "M"}),
        )
        .await;
    r.assert_error("BAD_REQUEST", 400);
    let ok72 = format!("{}{}", "x7Q!".repeat(17), "abcd");
    assert_eq!(ok72.len(), 72);
    let r = c
        .mutation(
            "auth.register",
            json!({"email": "ok@example.com", "password": ok72, "firstName": "O", "lastName": "K"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Exactly the 72 bytes log in; a 73rd byte does not (no silent truncation).
    assert_eq!(login(&c, "ok@example.com", &ok72).await.status, 200);
    login(&c, "ok@example.com", &format!("{ok72}Z"))
        .await
        .assert_error("UNAUTHORIZED", 401);

    // A common password.
    let r = c
        .mutation(
            "auth.register",
            json!({"email": "c@example.com", "password": "password123", "firstName": "C", "lastName": "C"}),
        )
        .await;
    r.assert_error("BAD_REQUEST", 400);
    assert_eq!(r.issue_fields(), ["password"]);
}

async fn duplicate_registration_conflicts(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    register(&c, "dup@example.com").await;
    let r = c
        .mutation(
            "auth.register",
            json!({"email": " DUP@example.com", "password": PASSWORD, "firstName": "D", "lastName": "D"}),
        )
        .await;
    r.assert_error("CONFLICT", 409);
    assert_wire_snapshot!("register_duplicate", r);
}

async fn concurrent_duplicate_registration(backend: Backend) {
    let server = Server::start(backend).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = server.client();
        tasks.push(tokio::spawn(async move {
            c.mutation(
                "auth.register",
                json!({"email": "race@example.com", "password": PASSWORD,
                       "firstName": format!("R{i}"), "lastName": "R"}),
            )
            .await
        }));
    }
    let mut ok = 0;
    let mut conflict = 0;
    for t in tasks {
        let r = t.await.expect("task");
        match r.status {
            200 => ok += 1,
            409 => conflict += 1,
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert_eq!((ok, conflict), (1, 7));
    let admin = admin_token(&server, "root@example.com").await;
    let r = server
        .client()
        .with_token(&admin)
        .query("users.list", json!({"search": "race@"}))
        .await;
    assert_eq!(r.data()["total"], 1);
}

async fn login_does_not_reveal_accounts(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    register(&c, "known@example.com").await;
    let wrong = login(&c, "known@example.com", "not the password").await;
    let unknown = login(&c, "nobody@example.com", "not the password").await;
    wrong.assert_error("UNAUTHORIZED", 401);
    assert_wire_snapshot!("login_wrong_password", wrong);
    // An unknown account gets the very same answer.
    unknown.assert_error("UNAUTHORIZED", 401);
    assert_eq!(wrong.body, unknown.body);
}

async fn me_errors(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let r = c.query("auth.me", json!(null)).await;
    r.assert_error("UNAUTHORIZED", 401);
    assert_wire_snapshot!("me_without_token", r);
    c.me("garbage").await.assert_error("UNAUTHORIZED", 401);
    // A valid token whose user was deleted: NOT_FOUND.
    let (token, id) = register(&c, "gone@example.com").await;
    let admin = admin_token(&server, "root@example.com").await;
    let r = c
        .clone()
        .with_token(&admin)
        .mutation("users.delete", json!({"id": id}))
        .await;
    assert_eq!(r.data()["success"], true);
    c.me(&token).await.assert_error("NOT_FOUND", 404);
}

async fn role_guards(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let (viewer, id) = register(&c, "viewer@example.com").await;
    let v = c.clone().with_token(&viewer);
    let r = v.query("users.list", json!({})).await;
    r.assert_error("FORBIDDEN", 403);
    assert_wire_snapshot!("users_list_forbidden", r);
    v.mutation("users.setRole", json!({"id": id, "role": "ADMIN"}))
        .await
        .assert_error("FORBIDDEN", 403);
    v.mutation("users.delete", json!({"id": id}))
        .await
        .assert_error("FORBIDDEN", 403);
    // Anonymous callers get UNAUTHORIZED, not FORBIDDEN.
    c.query("users.list", json!({}))
        .await
        .assert_error("UNAUTHORIZED", 401);
    // An OPERATOR is still below ADMIN.
    let admin = admin_token(&server, "root@example.com").await;
    c.clone()
        .with_token(&admin)
        .mutation("users.setRole", json!({"id": id, "role": "OPERATOR"}))
        .await
        .data();
    let op = login_token(&c, "viewer@example.com", PASSWORD).await;
    let o = c.clone().with_token(&op);
    assert_eq!(
        o.query("auth.me", json!(null)).await.data()["role"],
        "OPERATOR"
    );
    o.query("users.list", json!({}))
        .await
        .assert_error("FORBIDDEN", 403);
}

async fn refresh_rotates_within_session(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let (t1, _) = register(&c, "r@example.com").await;
    let r = c.refresh(&t1).await;
    assert_wire_snapshot!("refresh", r);
    let t2 = r.data()["token"].as_str().expect("token").to_owned();
    assert_ne!(t1, t2);
    assert_eq!(claims(&t1)["sid"], claims(&t2)["sid"]);
    assert_ne!(claims(&t1)["jti"], claims(&t2)["jti"]);
    // The new token works; the old one still works inside the grace period,
    // and a parallel refresh with it yields a working token, not a logout.
    let me2 = c.me(&t2).await;
    assert_eq!(me2.status, 200);
    let again = c.refresh(&t1).await;
    let t3 = again.data()["token"].as_str().expect("token").to_owned();
    assert_eq!(c.me(&t3).await.status, 200);
    assert_eq!(c.me(&t2).await.status, 200);
    // No token, or a garbage one: UNAUTHORIZED.
    c.mutation("auth.refreshToken", json!(null))
        .await
        .assert_error("UNAUTHORIZED", 401);
    c.refresh("a.b.c").await.assert_error("UNAUTHORIZED", 401);
}

async fn logout_revokes(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    // Always { success: true }, even without or with a bad token.
    assert_eq!(
        c.mutation("auth.logout", json!(null)).await.data()["success"],
        true
    );
    assert_eq!(
        c.clone()
            .with_token("nonsense")
            .mutation("auth.logout", json!(null))
            .await
            .data()["success"],
        true
    );
    let (token, _) = register(&c, "out@example.com").await;
    let other = login_token(&c, "out@example.com", PASSWORD).await;
    let me = c.clone().with_token(&token);
    assert_eq!(
        me.mutation("auth.logout", json!(null)).await.data()["success"],
        true
    );
    me.query("auth.me", json!(null))
        .await
        .assert_error("UNAUTHORIZED", 401);
    me.mutation("auth.refreshToken", json!(null))
        .await
        .assert_error("UNAUTHORIZED", 401);
    // Other sessions are untouched.
    assert_eq!(c.me(&other).await.status, 200);
}

async fn sessions_revoke_and_logout_all(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client().with_header("user-agent", "agent-one");
    let (t1, _) = register(&c, "s@example.com").await;
    // The list is newest first: two sessions a few milliseconds apart.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let t2 = login_token(
        &server.client().with_header("user-agent", "agent-two"),
        "s@example.com",
        PASSWORD,
    )
    .await;
    let r = c
        .clone()
        .with_token(&t1)
        .query("auth.sessions", json!(null))
        .await;
    assert_wire_snapshot!("sessions", r);
    let list = r.data().as_array().expect("array");
    assert_eq!(list[0]["id"], claims(&t2)["sid"]);
    assert_eq!(list[1]["id"], claims(&t1)["sid"]);
    // Revoke the other session: its token stops working at once.
    let sid2 = claims(&t2)["sid"].as_str().expect("sid").to_owned();
    let r = c
        .clone()
        .with_token(&t1)
        .mutation("auth.revokeSession", json!({"id": sid2}))
        .await;
    assert_eq!(r.data()["success"], true);
    c.me(&t2).await.assert_error("UNAUTHORIZED", 401);
    // Unknown or foreign session ids: NOT_FOUND.
    let r = c
        .clone()
        .with_token(&t1)
        .mutation(
            "auth.revokeSession",
            json!({"id": "00000000-0000-0000-0000-000000000000"}),
        )
        .await;
    r.assert_error("NOT_FOUND", 404);
    assert_wire_snapshot!("revoke_session_not_found", r);
    let (other, _) = register(&c, "other@example.com").await;
    let sid1 = claims(&t1)["sid"].as_str().expect("sid").to_owned();
    c.clone()
        .with_token(&other)
        .mutation("auth.revokeSession", json!({"id": sid1}))
        .await
        .assert_error("NOT_FOUND", 404);
    // logoutAll ends every session, this one included.
    let t3 = login_token(&c, "s@example.com", PASSWORD).await;
    let r = c
        .clone()
        .with_token(&t1)
        .mutation("auth.logoutAll", json!(null))
        .await;
    assert_eq!(r.data()["success"], true);
    for t in [&t1, &t3] {
        c.me(t).await.assert_error("UNAUTHORIZED", 401);
    }
    assert_eq!(c.me(&other).await.status, 200);
}

async fn password_reset_flow(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let (token, _) = register(&c, "reset@example.com").await;

    // Unknown email: the same answer, and no mail.
    let r = c
        .mutation(
            "auth.requestPasswordReset",
            json!({"email": "nobody@example.com"}),
        )
        .await;
    assert_eq!(r.data()["success"], true);
    let r = c
        .mutation(
            "auth.requestPasswordReset",
            json!({"email": " Reset@Example.com "}),
        )
        .await;
    assert_eq!(r.data()["success"], true);
    // Sent by the outbox worker just after the answer.
    let mails = server.mails(1).await;
    assert_eq!(
        mails.len(),
        1,
        "exactly one mail (none for the unknown address)"
    );
    let mail = &mails[0];
    assert!(mail.contains("To: reset@example.com"), "{mail}");
    let reset_token = common::token_from_mail(mail);
    assert!(reset_token.len() >= 32, "at least 128 bits");
    let unfolded = mail.replace("=\r\n", "").replace("=\n", "");
    assert!(
        unfolded.contains("http://localhost:3000/reset-password?"),
        "{mail}"
    );
    assert!(unfolded.contains(&format!("token={reset_token}")), "{mail}");
    assert!(unfolded.contains("email=reset%40example.com"), "{mail}");

    // Wrong token, weak password, wrong email.
    c.mutation(
        "auth.resetPassword",
        json!({"email": "reset@example.com", "token": "0".repeat(64), "password": "a brand new secret"}),
    )
    .await
    .assert_error("BAD_REQUEST", 400);
    let r = c
        .mutation(
            "auth.resetPassword",
            json!({"email": "reset@example.com", "token": reset_token, "password": "short"}),
        )
        .await;
    r.assert_error("BAD_REQUEST", 400);
    assert_eq!(r.issue_fields(), ["password"]);
    c.mutation(
        "auth.resetPassword",
        json!({"email": "other@example.com", "token": reset_token, "password": "a brand new secret"}),
    )
    .await
    .assert_error("BAD_REQUEST", 400);

    // Success: sessions end, the new password works, the token is single-use.
    let r = c
        .mutation(
            "auth.resetPassword",
            json!({"email": "reset@example.com", "token": reset_token, "password": "a brand new secret"}),
        )
        .await;
    assert_eq!(r.data()["success"], true);
    c.me(&token).await.assert_error("UNAUTHORIZED", 401);
    login(&c, "reset@example.com", PASSWORD)
        .await
        .assert_error("UNAUTHORIZED", 401);
    assert_eq!(
        login(&c, "reset@example.com", "a brand new secret")
            .await
            .status,
        200
    );
    c.mutation(
        "auth.resetPassword",
        json!({"email": "reset@example.com", "token": reset_token, "password": "yet another secret"}),
    )
    .await
    .assert_error("BAD_REQUEST", 400);
}

async fn reset_mails_are_rate_limited(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    register(&c, "many@example.com").await;
    for _ in 0..6 {
        let r = c
            .mutation(
                "auth.requestPasswordReset",
                json!({"email": "many@example.com"}),
            )
            .await;
        assert_eq!(r.data()["success"], true);
    }
    // Once nothing is left queued, the count is final.
    let mails = server.mails(3).await;
    assert_eq!(mails.len(), 3);
    // Every earlier token is void once one is used.
    let first = common::token_from_mail(&mails[0]);
    let last = common::token_from_mail(&mails[2]);
    let r = c
        .mutation(
            "auth.resetPassword",
            json!({"email": "many@example.com", "token": last, "password": "fresh secret words"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    c.mutation(
        "auth.resetPassword",
        json!({"email": "many@example.com", "token": first, "password": "other secret words"}),
    )
    .await
    .assert_error("BAD_REQUEST", 400);
}

async fn change_password(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let (t1, _) = register(&c, "cp@example.com").await;
    let t2 = login_token(&c, "cp@example.com", PASSWORD).await;
    let me = c.clone().with_token(&t1);
    me.mutation(
        "auth.changePassword",
        json!({"currentPassword": "wrong wrong wrong", "newPassword": "another good secret"}),
    )
    .await
    .assert_error("UNAUTHORIZED", 401);
    let r = me
        .mutation(
            "auth.changePassword",
            json!({"currentPassword": PASSWORD, "newPassword": "short"}),
        )
        .await;
    r.assert_error("BAD_REQUEST", 400);
    assert_eq!(r.issue_fields(), ["newPassword"]);
    let r = me
        .mutation(
            "auth.changePassword",
            json!({"currentPassword": PASSWORD, "newPassword": "another good secret"}),
        )
        .await;
    let fresh = r.data()["token"].as_str().expect("token").to_owned();
    assert_eq!(r.data()["user"]["email"], "cp@example.com");
    assert_eq!(claims(&fresh)["sid"], claims(&t1)["sid"]);
    // Fresh token works; the old one of this session and the other session do not.
    assert_eq!(c.me(&fresh).await.status, 200);
    for t in [&t1, &t2] {
        c.me(t).await.assert_error("UNAUTHORIZED", 401);
    }
    assert_eq!(
        login(&c, "cp@example.com", "another good secret")
            .await
            .status,
        200
    );
    login(&c, "cp@example.com", PASSWORD)
        .await
        .assert_error("UNAUTHORIZED", 401);
    // Without a token: UNAUTHORIZED before any input check.
    c.mutation("auth.changePassword", json!({}))
        .await
        .assert_error("UNAUTHORIZED", 401);
}

async fn update_profile(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let (t, _) = register(&c, "p@example.com").await;
    let me = c.clone().with_token(&t);
    let r = me
        .mutation(
            "auth.updateProfile",
            json!({"firstName": " Paula ", "phone": "123"}),
        )
        .await;
    let d = r.data();
    assert_eq!(d["firstName"], "Paula");
    assert_eq!(d["lastName"], "User");
    assert_eq!(d["phone"], "123");
    // Absent phone: unchanged.
    let d = me
        .mutation("auth.updateProfile", json!({"lastName": "Perez"}))
        .await
        .data()
        .clone();
    assert_eq!(d["phone"], "123");
    assert_eq!(d["lastName"], "Perez");
    // null: cleared.
    let d = me
        .mutation("auth.updateProfile", json!({"phone": null}))
        .await
        .data()
        .clone();
    assert!(d["phone"].is_null());
    assert_eq!(
        me.query("auth.me", json!(null)).await.data()["phone"],
        json!(null)
    );
    // Empty names are refused, every field reported.
    let r = me
        .mutation(
            "auth.updateProfile",
            json!({"firstName": "", "lastName": " "}),
        )
        .await;
    r.assert_error("BAD_REQUEST", 400);
    assert_eq!(r.issue_fields(), ["firstName", "lastName"]);
}

async fn users_list(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let admin = admin_token(&server, "root@example.com").await;
    for i in 0..5 {
        register(&c, &format!("user{i}@example.com")).await;
    }
    c.mutation(
        "auth.register",
        json!({"email": "zed@example.com", "password": PASSWORD, "firstName": "Zed", "lastName": "Zebra_%"}),
    )
    .await
    .data();
    let a = c.clone().with_token(&admin);
    let r = a.query("users.list", json!(null)).await;
    let d = r.data();
    assert_eq!(d["total"], 7);
    assert_eq!(d["page"], 1);
    assert_eq!(d["pageSize"], 20);
    assert_eq!(d["items"].as_array().expect("items").len(), 7);

    // Oldest first: root, user0..user4, zed.
    let r = a
        .query("users.list", json!({"page": 2, "pageSize": 3}))
        .await;
    assert_wire_snapshot!("users_list_page_2", r);
    let r = a
        .query("users.list", json!({"page": 3, "pageSize": 3}))
        .await;
    assert_eq!(r.data()["items"].as_array().expect("items").len(), 1);
    // Past the last page: empty, with the total; even a page number whose
    // offset would not fit in 64 bits (found by schemathesis: it was a 500).
    for page in [4_i64, 3_260_843_550_502_764_544, i64::MAX] {
        let r = a
            .query("users.list", json!({"page": page, "pageSize": 20}))
            .await;
        let d = r.data();
        assert_eq!(d["items"], json!([]), "page {page}");
        assert_eq!(d["total"], 7, "page {page}");
        assert_eq!(d["page"], page, "page {page}");
    }

    let r = a.query("users.list", json!({"role": "ADMIN"})).await;
    assert_eq!(r.data()["total"], 1);
    assert_eq!(r.data()["items"][0]["email"], "root@example.com");

    let r = a.query("users.list", json!({"search": "ZEBRA"})).await;
    assert_eq!(r.data()["total"], 1);
    let r = a.query("users.list", json!({"search": "user"})).await;
    assert_eq!(r.data()["total"], 5);
    // LIKE wildcards are literal.
    let r = a.query("users.list", json!({"search": "_%"})).await;
    assert_eq!(r.data()["total"], 1);

    let r = a.query("users.list", json!({"pageSize": 101})).await;
    r.assert_error("BAD_REQUEST", 400);
    assert_wire_snapshot!("users_list_page_size_too_big", r);
    a.query("users.list", json!({"page": 0}))
        .await
        .assert_error("BAD_REQUEST", 400);
    a.query("users.list", json!({"role": "ROOT"}))
        .await
        .assert_error("BAD_REQUEST", 400);
}

async fn set_role_and_delete(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let admin = admin_token(&server, "root@example.com").await;
    let a = c.clone().with_token(&admin);
    let (user_token, id) = register(&c, "promote@example.com").await;

    let r = a
        .mutation("users.setRole", json!({"id": id, "role": "OPERATOR"}))
        .await;
    let d = r.data();
    assert_eq!(d["role"], "OPERATOR");
    assert_eq!(d["email"], "promote@example.com");
    // The role change takes effect at once: the old token is refused.
    c.me(&user_token).await.assert_error("UNAUTHORIZED", 401);

    a.mutation(
        "users.setRole",
        json!({"id": "00000000-0000-0000-0000-000000000000", "role": "ADMIN"}),
    )
    .await
    .assert_error("NOT_FOUND", 404);
    a.mutation("users.setRole", json!({"id": id, "role": "KING"}))
        .await
        .assert_error("BAD_REQUEST", 400);

    let r = a.mutation("users.delete", json!({"id": id})).await;
    assert_eq!(r.data()["success"], true);
    a.mutation("users.delete", json!({"id": id}))
        .await
        .assert_error("NOT_FOUND", 404);
    login(&c, "promote@example.com", PASSWORD)
        .await
        .assert_error("UNAUTHORIZED", 401);
    // The email is free again.
    register(&c, "promote@example.com").await;
}

async fn last_admin_is_protected(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let admin = admin_token(&server, "root@example.com").await;
    let a = c.clone().with_token(&admin);
    let root_id = claims(&admin)["sub"].as_str().expect("sub").to_owned();
    let r = a
        .mutation("users.setRole", json!({"id": root_id, "role": "VIEWER"}))
        .await;
    r.assert_error("PRECONDITION_FAILED", 412);
    assert_wire_snapshot!("last_admin_demotion", r);
    a.mutation("users.delete", json!({"id": root_id}))
        .await
        .assert_error("PRECONDITION_FAILED", 412);
    // With a second admin, one may go.
    let (_, id2) = register(&c, "second@example.com").await;
    a.mutation("users.setRole", json!({"id": id2, "role": "ADMIN"}))
        .await
        .data();
    let second = login_token(&c, "second@example.com", PASSWORD).await;
    // Both admins demote each other at the same time: exactly one wins.
    let s = c.clone().with_token(&second);
    let (r1, r2) = tokio::join!(
        a.mutation("users.setRole", json!({"id": id2, "role": "VIEWER"})),
        s.mutation("users.setRole", json!({"id": root_id, "role": "VIEWER"})),
    );
    let codes = [r1.status, r2.status];
    assert!(
        codes.contains(&200) && (codes.contains(&412) || codes.contains(&401)),
        "one demotion must fail: {} / {}",
        r1.body,
        r2.body
    );
    let fresh_admin = if r1.status == 200 { &admin } else { &second };
    let r = c
        .clone()
        .with_token(fresh_admin)
        .query("users.list", json!({"role": "ADMIN"}))
        .await;
    assert_eq!(r.data()["total"], 1);
}

async fn login_throttling(backend: Backend) {
    let server = Server::start_with(backend, |c| c.limits.login_max_failures = 3).await;
    let c = server.client();
    register(&c, "lock@example.com").await;
    // Two failures, then a success resets the account counter.
    for _ in 0..2 {
        login(&c, "lock@example.com", "bad password!")
            .await
            .assert_error("UNAUTHORIZED", 401);
    }
    assert_eq!(login(&c, "lock@example.com", PASSWORD).await.status, 200);
    for _ in 0..2 {
        login(&c, "lock@example.com", "bad password!")
            .await
            .assert_error("UNAUTHORIZED", 401);
    }
    assert_eq!(login(&c, "lock@example.com", PASSWORD).await.status, 200);
    // Three failures in a row lock the account, even for the right password.
    for _ in 0..3 {
        login(&c, "lock@example.com", "bad password!")
            .await
            .assert_error("UNAUTHORIZED", 401);
    }
    let r = login(&c, "lock@example.com", PASSWORD).await;
    r.assert_error("TOO_MANY_REQUESTS", 429);
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After header")
        .parse()
        .expect("seconds");
    assert!(retry > 0 && retry <= 900, "{retry}");
    // Unknown accounts are counted the same way (no enumeration via locks).
    for _ in 0..3 {
        login(&c, "ghost@example.com", "bad password!")
            .await
            .assert_error("UNAUTHORIZED", 401);
    }
    login(&c, "ghost@example.com", "bad password!")
        .await
        .assert_error("TOO_MANY_REQUESTS", 429);
}

async fn address_throttling(backend: Backend) {
    let server = Server::start_with(backend, |c| {
        c.limits.ip_max_failures = 3;
        c.limits.trusted_proxies = Some("127.0.0.1".to_owned());
    })
    .await;
    let c = server.client();
    register(&c, "ip@example.com").await;
    let from = |ip: &str| server.client().with_header("x-forwarded-for", ip);
    for i in 0..3 {
        login(
            &from("203.0.113.7"),
            &format!("u{i}@example.com"),
            "bad password!",
        )
        .await
        .assert_error("UNAUTHORIZED", 401);
    }
    // That address is locked, for any account...
    login(&from("203.0.113.7"), "ip@example.com", PASSWORD)
        .await
        .assert_error("TOO_MANY_REQUESTS", 429);
    // ...a spoofed left-most entry does not help (right-most untrusted counts)...
    login(
        &from("198.51.100.1, 203.0.113.7"),
        "ip@example.com",
        PASSWORD,
    )
    .await
    .assert_error("TOO_MANY_REQUESTS", 429);
    // ...while another address is fine.
    assert_eq!(
        login(&from("198.51.100.2"), "ip@example.com", PASSWORD)
            .await
            .status,
        200
    );
}

async fn spanish_messages(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let es = c
        .clone()
        .with_header("accept-language", "es-ES,es;q=0.9,en;q=0.5");
    let r = login(&es, "x@example.com", "whatever it is").await;
    r.assert_error("UNAUTHORIZED", 401);
    assert_eq!(r.message(), "Correo electrónico o contraseña incorrectos");
    let r = login(
        &c.clone().with_header("accept-language", "en-US"),
        "x@example.com",
        "whatever it is",
    )
    .await;
    assert_eq!(r.message(), "Invalid email or password");
    let r = es.query("auth.me", json!(null)).await;
    r.assert_error("UNAUTHORIZED", 401);
    assert_eq!(r.message(), "Se requiere autenticación");
    let r = es
        .mutation(
            "auth.register",
            json!({"email": "bad", "password": PASSWORD, "firstName": "A", "lastName": "B"}),
        )
        .await;
    assert_eq!(r.message(), "Dirección de correo electrónico no válida");

    // Every issue is translated by its key, not only the first.
    let r = es
        .mutation("auth.register", json!({"email": "bad", "firstName": " "}))
        .await;
    let messages: Vec<&str> = r.body["error"]["json"]["data"]["issues"]
        .as_array()
        .expect("issues")
        .iter()
        .filter_map(|i| i["message"].as_str())
        .collect();
    assert_eq!(
        messages,
        [
            "Dirección de correo electrónico no válida",
            "Obligatorio",
            "No puede estar vacío",
            "Obligatorio"
        ]
    );

    // The framework's messages carry their values into the translation.
    let r = es.query("auth.nope", json!(null)).await;
    r.assert_error("NOT_FOUND", 404);
    assert_eq!(
        r.message(),
        "No se encontró ningún procedimiento en la ruta \"auth.nope\""
    );
    let r = es.query("auth.login", json!(null)).await;
    r.assert_error("METHOD_NOT_SUPPORTED", 405);
    assert_eq!(
        r.message(),
        "Solicitud GET no admitida para la mutación en la ruta \"auth.login\""
    );
    let viewer = register(&c, "es-viewer@example.com").await.0;
    let r = es
        .clone()
        .with_token(&viewer)
        .query("users.list", json!(null))
        .await;
    r.assert_error("FORBIDDEN", 403);
    assert_eq!(r.message(), "Este procedimiento requiere el rol ADMIN");
    // serde's own words are translated, its details kept.
    let r = es
        .clone()
        .with_token(&viewer)
        .mutation("auth.revokeSession", json!({"id": 5}))
        .await;
    r.assert_error("BAD_REQUEST", 400);
    assert!(
        r.message().starts_with("tipo no válido: integer `5`"),
        "{}",
        r.message()
    );
}

async fn rehash_on_login(backend: Backend) {
    // A user hashed at cost 4 logs in on a server configured for cost 5.
    let server = Server::start_with(backend, |c| c.bcrypt_cost = 5).await;
    let db = gatehouse_auth::db::connect(&server.config.database_url())
        .await
        .expect("db");
    let cheap = gatehouse_auth::password::PasswordHasher::new(4).expect("hasher");
    let old = gatehouse_auth::NewUser {
        email: "old@example.com",
        password: PASSWORD,
        first_name: "O",
        last_name: "H",
        role: gatehouse::Role::Viewer,
        username: None,
    };
    gatehouse_auth::create_user(&db, &cheap, old)
        .await
        .expect("user");
    let hash_of = || async {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        gatehouse_auth::entities::user::Entity::find()
            .filter(gatehouse_auth::entities::user::Column::Email.eq("old@example.com"))
            .one(&db)
            .await
            .expect("query")
            .expect("user")
            .password_hash
    };
    assert!(hash_of().await.starts_with("$2b$04$"));
    assert_eq!(
        login(&server.client(), "old@example.com", PASSWORD)
            .await
            .status,
        200
    );
    assert!(
        hash_of().await.starts_with("$2b$05$"),
        "re-hashed at the configured cost"
    );
    assert_eq!(
        login(&server.client(), "old@example.com", PASSWORD)
            .await
            .status,
        200
    );
}

#[allow(dead_code)]
fn _client_is_used(_: Client) {}

async fn housekeeping_keeps_live_rows(backend: Backend) {
    let server = Server::start_with(backend, |c| c.limits.login_max_failures = 2).await;
    let c = server.client();
    let (token, _) = register(&c, "keep@example.com").await;
    for _ in 0..2 {
        login(&c, "keep@example.com", "bad password!")
            .await
            .assert_error("UNAUTHORIZED", 401);
    }
    let service = gatehouse_auth::build_service(&server.config)
        .await
        .expect("service");
    service.housekeeping().await.expect("housekeeping runs");
    // Live sessions and active locks survive it.
    assert_eq!(c.me(&token).await.status, 200);
    login(&c, "keep@example.com", PASSWORD)
        .await
        .assert_error("TOO_MANY_REQUESTS", 429);
}

async fn hashes_from_node_and_php_verify(backend: Backend) {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let server = Server::start(backend).await;
    let db = gatehouse_auth::db::connect(&server.config.database_url())
        .await
        .expect("db");
    // The same bcrypt digest under the three prefixes other stacks write.
    let hash = bcrypt::hash(PASSWORD, 4).expect("hash");
    let digest = hash.strip_prefix("$2b$").expect("2b hash");
    for (i, prefix) in ["$2a$", "$2b$", "$2y$"].into_iter().enumerate() {
        let now = chrono::Utc::now().timestamp_millis();
        gatehouse_auth::entities::user::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string()),
            email: Set(format!("legacy{i}@example.com")),
            password_hash: Set(format!("{prefix}{digest}")),
            first_name: Set("Legacy".into()),
            last_name: Set("User".into()),
            phone: Set(None),
            username: Set(None),
            role: Set(gatehouse_auth::entities::user::StoredRole::Viewer),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&db)
        .await
        .expect("insert");
        let c = server.client();
        let r = login(&c, &format!("legacy{i}@example.com"), PASSWORD).await;
        assert_eq!(r.status, 200, "{prefix}: {}", r.body);
        login(&c, &format!("legacy{i}@example.com"), "not the password")
            .await
            .assert_error("UNAUTHORIZED", 401);
    }
}

async fn custom_reset_url(backend: Backend) {
    let server = Server::start_with(backend, |c| {
        c.mail.reset_url = "https://app.example.com/account/reset".to_owned();
    })
    .await;
    let c = server.client();
    register(&c, "link@example.com").await;
    c.mutation(
        "auth.requestPasswordReset",
        json!({"email": "link@example.com"}),
    )
    .await
    .data();
    let mails = server.mails(1).await;
    assert_eq!(mails.len(), 1);
    let token = common::token_from_mail(&mails[0]);
    let unfolded = mails[0].replace("=\r\n", "").replace("=\n", "");
    assert!(
        unfolded.contains(&format!(
            "https://app.example.com/account/reset?token={token}"
        )),
        "{unfolded}"
    );
}

async fn expired_reset_token(backend: Backend) {
    use sea_orm::ConnectionTrait;
    let server = Server::start(backend).await;
    let c = server.client();
    register(&c, "late-reset@example.com").await;
    c.mutation(
        "auth.requestPasswordReset",
        json!({"email": "late-reset@example.com"}),
    )
    .await
    .data();
    let token = common::token_from_mail(&server.mails(1).await[0]);
    // Age the token past its 60 minutes.
    let db = gatehouse_auth::db::connect(&server.config.database_url())
        .await
        .expect("db");
    db.execute_unprepared("UPDATE password_resets SET expires_at = expires_at - 3600001")
        .await
        .expect("age token");
    c.mutation(
        "auth.resetPassword",
        json!({"email": "late-reset@example.com", "token": token, "password": "too late for this"}),
    )
    .await
    .assert_error("BAD_REQUEST", 400);
    assert_eq!(
        login(&c, "late-reset@example.com", PASSWORD).await.status,
        200
    );
}
