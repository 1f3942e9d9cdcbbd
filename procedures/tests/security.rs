//! Forged and replayed tokens: every one must be refused.

mod common;

use common::{Backend, PASSWORD, SECRET, Server, claims, login, login_token, register};
use gatehouse_auth::config::Secs;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sea_orm::EntityTrait;
use serde_json::{Value, json};

both_backends!(
    forged_tokens_are_refused,
    short_lived_tokens_expire,
    expired_token_refreshes_within_window,
    reuse_of_rotated_token_revokes_session,
    refresh_window_is_absolute,
    deleted_or_demoted_users_cannot_refresh,
    parallel_refreshes_keep_the_session,
    token_times_are_checked_to_the_millisecond,
    loosely_formed_tokens_are_refused,
    every_generation_rotated_within_the_grace_period_works,
    a_password_change_ends_generations_still_in_their_grace,
    wrong_current_passwords_lock_the_account,
    admin_email_is_reserved_until_an_admin_exists,
);

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn sign(claims: &Value, alg: Algorithm, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

async fn assert_refused(server: &Server, token: &str, what: &str) {
    let c = server.client().with_token(token);
    let me = c.query("auth.me", json!(null)).await;
    assert_eq!(
        (me.status, me.code()),
        (401, Some("UNAUTHORIZED")),
        "{what}: auth.me accepted it: {}",
        me.body
    );
}

async fn forged_tokens_are_refused(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let (token, _) = register(&c, "victim@example.com").await;
    // The genuine token works, and re-signing its own claims works too, so
    // each refusal below is caused by the one thing changed.
    let genuine = claims(&token);
    assert_eq!(c.me(&token).await.status, 200);
    let resigned = sign(&genuine, Algorithm::HS256, SECRET);
    assert_eq!(c.me(&resigned).await.status, 200);

    // alg: none, no signature.
    let header = common::base64_lite::encode_url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = common::base64_lite::encode_url(genuine.to_string().as_bytes());
    assert_refused(&server, &format!("{header}.{payload}."), "alg none").await;
    assert_refused(
        &server,
        &format!("{header}.{payload}"),
        "alg none, two parts",
    )
    .await;

    // Another algorithm with the same secret.
    assert_refused(&server, &sign(&genuine, Algorithm::HS384, SECRET), "HS384").await;
    assert_refused(&server, &sign(&genuine, Algorithm::HS512, SECRET), "HS512").await;

    // Wrong secret.
    assert_refused(
        &server,
        &sign(
            &genuine,
            Algorithm::HS256,
            "another-secret-another-secret-0123456",
        ),
        "wrong secret",
    )
    .await;

    // Tampered payload with the original signature (role escalated).
    let mut escalated = genuine.clone();
    escalated["role"] = json!("ADMIN");
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        common::base64_lite::encode_url(escalated.to_string().as_bytes()),
        parts[2]
    );
    assert_refused(&server, &tampered, "tampered payload").await;
    // Even correctly signed, a role the user does not have is refused.
    assert_refused(
        &server,
        &sign(&escalated, Algorithm::HS256, SECRET),
        "role claim mismatch",
    )
    .await;

    // Expired (beyond the small leeway), future nbf, wrong iss, missing exp.
    let mut expired = genuine.clone();
    expired["iat"] = json!(now() - 3600);
    expired["nbf"] = json!(now() - 3600);
    expired["exp"] = json!(now() - 60);
    assert_refused(
        &server,
        &sign(&expired, Algorithm::HS256, SECRET),
        "expired",
    )
    .await;
    let mut future = genuine.clone();
    future["nbf"] = json!(now() + 3600);
    let future = sign(&future, Algorithm::HS256, SECRET);
    assert_refused(&server, &future, "future nbf").await;
    c.refresh(&future).await.assert_error("UNAUTHORIZED", 401);
    let mut wrong_iss = genuine.clone();
    wrong_iss["iss"] = json!("not-gatehouse");
    let wrong_iss = sign(&wrong_iss, Algorithm::HS256, SECRET);
    assert_refused(&server, &wrong_iss, "wrong iss").await;
    c.refresh(&wrong_iss)
        .await
        .assert_error("UNAUTHORIZED", 401);
    let mut no_exp = genuine.clone();
    no_exp.as_object_mut().expect("obj").remove("exp");
    assert_refused(
        &server,
        &sign(&no_exp, Algorithm::HS256, SECRET),
        "missing exp",
    )
    .await;

    // A made-up session or token id.
    let mut other_sid = genuine.clone();
    other_sid["sid"] = json!(uuid::Uuid::new_v4().to_string());
    assert_refused(
        &server,
        &sign(&other_sid, Algorithm::HS256, SECRET),
        "unknown sid",
    )
    .await;
    let mut other_jti = genuine.clone();
    other_jti["jti"] = json!("0123");
    assert_refused(
        &server,
        &sign(&other_jti, Algorithm::HS256, SECRET),
        "unknown jti",
    )
    .await;

    // Tokens are read from the Authorization header only.
    let r = server
        .client()
        .raw(
            "GET",
            &format!("/trpc/auth.me?token={token}&access_token={token}"),
            None,
        )
        .await;
    r.assert_error("UNAUTHORIZED", 401);

    // Refresh with a forged signature is refused as well.
    c.refresh(&tampered).await.assert_error("UNAUTHORIZED", 401);
    // None of this harmed the genuine session.
    assert_eq!(c.me(&token).await.status, 200);
}

async fn expired_token_refreshes_within_window(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let (token, _) = register(&c, "late@example.com").await;
    let mut expired = claims(&token);
    expired["iat"] = json!(now() - 90_000);
    expired["nbf"] = json!(now() - 90_000);
    expired["exp"] = json!(now() - 3_600);
    let expired = sign(&expired, Algorithm::HS256, SECRET);
    assert_refused(&server, &expired, "expired").await;
    let r = c.refresh(&expired).await;
    let fresh = r.data()["token"].as_str().expect("token").to_owned();
    assert_eq!(c.me(&fresh).await.status, 200);
}

async fn reuse_of_rotated_token_revokes_session(backend: Backend) {
    // No grace period, so the replay below is unambiguous.
    let server = Server::start_with(backend, |c| c.tokens.refresh_grace = Secs::new(0)).await;
    let c = server.client();
    let (t1, _) = register(&c, "theft@example.com").await;
    let other = login_token(&c, "theft@example.com", PASSWORD).await;
    let t2 = c.refresh(&t1).await.data()["token"]
        .as_str()
        .expect("token")
        .to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // The rotated token no longer authenticates...
    assert_refused(&server, &t1, "rotated token").await;
    assert_eq!(c.me(&t2).await.status, 200);
    // ...and presenting it to refresh is treated as theft: the session dies.
    c.refresh(&t1).await.assert_error("UNAUTHORIZED", 401);
    assert_refused(&server, &t2, "token of the revoked session").await;
    c.refresh(&t2).await.assert_error("UNAUTHORIZED", 401);
    // Other sessions of the user are not affected.
    assert_eq!(c.me(&other).await.status, 200);
}

async fn refresh_window_is_absolute(backend: Backend) {
    let server = Server::start_with(backend, |c| c.tokens.jwt_refresh_ttl = 1).await;
    let c = server.client();
    let (t1, _) = register(&c, "window@example.com").await;
    let t2 = c.refresh(&t1).await.data()["token"]
        .as_str()
        .expect("token")
        .to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1_300)).await;
    // Refreshing did not extend the window.
    c.refresh(&t2).await.assert_error("UNAUTHORIZED", 401);
}

async fn deleted_or_demoted_users_cannot_refresh(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let admin = common::admin_token(&server, "root@example.com").await;
    let a = c.clone().with_token(&admin);
    let (t_del, id_del) = register(&c, "del@example.com").await;
    let (t_role, id_role) = register(&c, "role@example.com").await;
    a.mutation("users.delete", json!({"id": id_del}))
        .await
        .data();
    a.mutation("users.setRole", json!({"id": id_role, "role": "OPERATOR"}))
        .await
        .data();
    for t in [&t_del, &t_role] {
        c.refresh(t).await.assert_error("UNAUTHORIZED", 401);
    }
}

async fn parallel_refreshes_keep_the_session(backend: Backend) {
    // Several browser tabs refresh the same token at once: none is logged out.
    let server = Server::start(backend).await;
    let c = server.client();
    let (token, _) = register(&c, "tabs@example.com").await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let tab = c.clone().with_token(&token);
        tasks.push(tokio::spawn(async move {
            tab.mutation("auth.refreshToken", json!(null)).await
        }));
    }
    let mut fresh = Vec::new();
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status, 200, "{}", r.body);
        fresh.push(r.data()["token"].as_str().expect("token").to_owned());
    }
    for t in &fresh {
        assert_eq!(c.me(t).await.status, 200);
        assert_eq!(claims(t)["sid"], claims(&token)["sid"]);
    }
    // Every token has its own jti.
    let mut jtis: Vec<String> = fresh.iter().map(|t| claims(t)["jti"].to_string()).collect();
    jtis.push(claims(&token)["jti"].to_string());
    jtis.sort();
    jtis.dedup();
    assert_eq!(jtis.len(), fresh.len() + 1);
}

async fn short_lived_tokens_expire(backend: Backend) {
    // JWT_TTL=1: after its second (and no leeway by default) the token is
    // refused, yet it still refreshes.
    let server = Server::start_with(backend, |c| c.tokens.jwt_ttl = 1).await;
    let c = server.client();
    let (token, _) = register(&c, "brief@example.com").await;
    assert_eq!(c.me(&token).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    assert_refused(&server, &token, "expired by JWT_TTL").await;
    let r = c.refresh(&token).await;
    assert_eq!(r.data()["expiresIn"], 1);
}

/// Waits until the clock is in the first half of a second, so that a claim
/// of "now + 1 s" cannot be reached while a test runs.
async fn early_in_a_second() -> i64 {
    loop {
        let ms = chrono::Utc::now().timestamp_millis();
        if ms % 1000 < 500 {
            return ms / 1000;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn token_times_are_checked_to_the_millisecond(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let (token, _) = register(&c, "clock@example.com").await;
    let genuine = claims(&token);

    let second = early_in_a_second().await;
    let mut t = genuine.clone();
    t["exp"] = json!(second);
    // `now >= exp` to the millisecond: a token whose `exp` is the current
    // second is already expired.
    assert_refused(&server, &sign(&t, Algorithm::HS256, SECRET), "exp = now").await;
    t["exp"] = json!(second + 60);
    t["nbf"] = json!(second + 1);
    assert_refused(
        &server,
        &sign(&t, Algorithm::HS256, SECRET),
        "nbf = now + 1 s",
    )
    .await;
    t["nbf"] = json!(second);
    assert_eq!(c.me(&sign(&t, Algorithm::HS256, SECRET)).await.status, 200);

    // JWT_LEEWAY covers drifting clocks, both ways, and no further.
    let lenient = Server::start_with(backend, |c| c.tokens.jwt_leeway = 30).await;
    let lc = lenient.client();
    let (token, _) = register(&lc, "clock@example.com").await;
    let mut t = claims(&token);
    let now = now();
    t["exp"] = json!(now - 10);
    assert_eq!(lc.me(&sign(&t, Algorithm::HS256, SECRET)).await.status, 200);
    t["exp"] = json!(now + 60);
    t["nbf"] = json!(now + 10);
    assert_eq!(lc.me(&sign(&t, Algorithm::HS256, SECRET)).await.status, 200);
    t["nbf"] = json!(now);
    t["exp"] = json!(now - 40);
    assert_refused(
        &lenient,
        &sign(&t, Algorithm::HS256, SECRET),
        "exp beyond the leeway",
    )
    .await;
}

async fn loosely_formed_tokens_are_refused(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let (token, _) = register(&c, "loose@example.com").await;
    let genuine = claims(&token);

    let mut t = genuine.clone();
    t.as_object_mut().expect("claims object").remove("iat");
    assert_refused(&server, &sign(&t, Algorithm::HS256, SECRET), "no iat").await;

    let mut t = genuine.clone();
    t["iss"] = json!(["evil", "gatehouse"]);
    assert_refused(
        &server,
        &sign(&t, Algorithm::HS256, SECRET),
        "iss as an array",
    )
    .await;

    let mut header = Header::new(Algorithm::HS256);
    header.crit = Some(vec!["exp-ext".to_owned()]);
    let crit = jsonwebtoken::encode(
        &header,
        &genuine,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign");
    assert_refused(&server, &crit, "crit header").await;

    // Size: the same claims padded past 8 KiB are refused; padded to just
    // under it they still work, so the size alone decides.
    let mut t = genuine.clone();
    t["pad"] = json!("x".repeat(5_500));
    let fits = sign(&t, Algorithm::HS256, SECRET);
    assert!(fits.len() < 8 * 1024, "{} bytes", fits.len());
    assert_eq!(c.me(&fits).await.status, 200);
    t["pad"] = json!("x".repeat(6_500));
    let large = sign(&t, Algorithm::HS256, SECRET);
    assert!(large.len() > 8 * 1024, "{} bytes", large.len());
    assert_refused(&server, &large, "token over 8 KiB").await;
    // Refresh and logout refuse them as well.
    assert_eq!(c.refresh(&large).await.status, 401);
    let mut t = genuine.clone();
    t["iss"] = json!(["evil", "gatehouse"]);
    assert_eq!(
        c.refresh(&sign(&t, Algorithm::HS256, SECRET)).await.status,
        401
    );
}

/// The token in a successful answer.
fn token_of(r: &common::Response) -> String {
    r.data()["token"].as_str().expect("token").to_owned()
}

async fn every_generation_rotated_within_the_grace_period_works(backend: Backend) {
    // Refreshed three times in a row (tabs taking turns): every older token
    // still works within the grace period, not only the one just before.
    let server = Server::start_with(backend, |c| c.tokens.refresh_grace = Secs::new(2)).await;
    let c = server.client();
    let (t0, _) = register(&c, "turns@example.com").await;
    let t1 = token_of(&c.refresh(&t0).await);
    let t2 = token_of(&c.refresh(&t1).await);
    let t3 = token_of(&c.refresh(&t2).await);
    for (i, t) in [&t0, &t1, &t2, &t3].into_iter().enumerate() {
        let r = c.me(t).await;
        assert_eq!(
            r.status, 200,
            "token {i} within the grace period: {}",
            r.body
        );
    }
    // Refreshing the oldest one is a late tab, not a theft: it gets a
    // token of the current generation.
    let late = token_of(&c.refresh(&t0).await);
    assert_eq!(c.me(&late).await.status, 200);
    assert_eq!(c.me(&t3).await.status, 200);

    // Past the grace period the old generations are refused, and presenting
    // one to refresh ends the session.
    tokio::time::sleep(std::time::Duration::from_millis(2_300)).await;
    assert_refused(&server, &t1, "generation past its grace").await;
    assert_eq!(c.me(&t3).await.status, 200);
    c.refresh(&t0).await.assert_error("UNAUTHORIZED", 401);
    assert_refused(&server, &t3, "session ended by the replay").await;
}

async fn a_password_change_ends_generations_still_in_their_grace(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let (t0, _) = register(&c, "grace-change@example.com").await;
    let t1 = token_of(&c.refresh(&t0).await);
    let t2 = token_of(&c.refresh(&t1).await);
    assert_eq!(c.me(&t0).await.status, 200, "within its grace");
    let r = c
        .clone()
        .with_token(&t2)
        .mutation(
            "auth.changePassword",
            json!({"currentPassword": PASSWORD, "newPassword": "another long passphrase"}),
        )
        .await;
    let fresh = token_of(&r);
    for (i, t) in [&t0, &t1, &t2].into_iter().enumerate() {
        assert_refused(&server, t, &format!("token {i} after the password change")).await;
    }
    assert_eq!(c.me(&fresh).await.status, 200);
}

/// Issue 22 (3): `auth.changePassword` proves a password like `auth.login`
/// does, so a token holder's guesses at the current password count against
/// the account's login lock, are refused once it is locked (the right
/// password too), and lock `auth.login` of that account as well.
async fn wrong_current_passwords_lock_the_account(backend: Backend) {
    let server = Server::start_with(backend, |c| c.limits.login_max_failures = 3).await;
    let c = server.client();
    let (token, _) = register(&c, "guessed@example.com").await;
    let caller = c.clone().with_token(&token);
    let change = |current: &'static str| {
        let caller = caller.clone();
        async move {
            caller
                .mutation(
                    "auth.changePassword",
                    json!({"currentPassword": current, "newPassword": "a brand new passphrase"}),
                )
                .await
        }
    };
    // The failure that reaches the limit is still answered 401 and locks.
    for _ in 0..3 {
        change("not my password")
            .await
            .assert_error("UNAUTHORIZED", 401);
    }
    for current in ["not my password", PASSWORD] {
        let r = change(current).await;
        r.assert_error("TOO_MANY_REQUESTS", 429);
        let retry: u64 = r
            .header("retry-after")
            .expect("Retry-After header")
            .parse()
            .expect("seconds");
        assert!(retry > 0 && retry <= 900, "{retry}");
    }
    // The same lock as logins: the right password cannot log in either.
    let r = login(&c, "guessed@example.com", PASSWORD).await;
    r.assert_error("TOO_MANY_REQUESTS", 429);
    assert!(r.header("retry-after").is_some());
    // The password was never changed and the token still works.
    assert_eq!(c.me(&token).await.status, 200);
}

/// While `GATEHOUSE_ADMIN_EMAIL` is set and no ADMIN exists, nobody may
/// register that address (in any spelling that normalises to it).
async fn admin_email_is_reserved_until_an_admin_exists(backend: Backend) {
    let server = Server::start_with(backend, |c| {
        c.admin_email = Some("Boss@Example.com".to_owned());
        c.admin_password = Some("the operator password 1".to_owned());
    })
    .await;
    let c = server.client();
    // The admin was created at start; remove it behind the server's back,
    // as if it had never been there.
    gatehouse_auth::entities::user::Entity::delete_many()
        .exec(server.service.db())
        .await
        .expect("delete the admin");
    for spelling in [
        "boss@example.com",
        " BOSS@example.COM",
        "\u{ff42}oss@example.com",
    ] {
        c.mutation(
            "auth.register",
            json!({ "email": spelling, "password": PASSWORD, "firstName": "B", "lastName": "O" }),
        )
        .await
        .assert_error("CONFLICT", 409);
    }
    // Any other address registers as usual.
    register(&c, "someone@example.com").await;
}
