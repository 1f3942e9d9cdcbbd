//! The auth service's REST routes over TCP: every route, success and error
//! shapes (`{"timestamp","status","error","message","path","code","issues"?}`),
//! bearer auth, `Accept-Language: es`, and a client written for the Spring
//! service (`/api/1`, 201 on register, 409 on a duplicate, 401 with a
//! `message` on a bad password).

mod common;

use common::{Backend, Client, PASSWORD, Server, admin_token, token_from_mail};
use serde_json::{Value, json};

const NEW_PASSWORD: &str = "another correct horse battery";

/// Asserts a REST error: status, `code`, the fixed keys, and the path.
#[track_caller]
fn assert_rest_error(r: &common::Response, status: u16, code: &str, path: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    let body = r.body.as_object().expect("an object");
    assert_eq!(body["status"], status);
    assert_eq!(body["code"], code);
    assert_eq!(body["path"], path);
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    let timestamp = body["timestamp"].as_str().expect("timestamp");
    assert!(
        chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
        "{timestamp}"
    );
    assert!(body.get("result").is_none() && body.get("json").is_none());
}

async fn register(c: &Client, prefix: &str, email: &str) -> common::Response {
    let body =
        json!({"email": email, "password": PASSWORD, "firstName": "Rest", "lastName": "User"});
    c.raw(
        "POST",
        &format!("{prefix}/auth/register"),
        Some(&body.to_string()),
    )
    .await
}

fn token(r: &common::Response) -> String {
    r.body["token"].as_str().expect("token").to_owned()
}

async fn auth_routes(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    // Register: 201 with the token and the user; no envelope.
    let r = register(&c, "/api", "rest@example.com").await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["user"]["email"], "rest@example.com");
    assert!(r.body["expiresIn"].as_u64().is_some());
    let first = token(&r);
    // Taken, invalid.
    let taken = register(&c, "/api", "rest@example.com").await;
    assert_rest_error(&taken, 409, "CONFLICT", "/api/auth/register");
    assert_eq!(taken.body["message"], "Email is already registered");
    let invalid = c
        .raw(
            "POST",
            "/api/auth/register",
            Some(r#"{"email":"nope","password":"x"}"#),
        )
        .await;
    assert_rest_error(&invalid, 400, "BAD_REQUEST", "/api/auth/register");
    let fields: Vec<&str> = invalid.body["issues"]
        .as_array()
        .expect("issues")
        .iter()
        .filter_map(|i| i["path"][0].as_str())
        .collect();
    assert!(
        fields.contains(&"email") && fields.contains(&"password"),
        "{fields:?}"
    );

    // Login, and its refusal (translated).
    let login = json!({"email": "rest@example.com", "password": PASSWORD}).to_string();
    let r = c.raw("POST", "/api/auth/login", Some(&login)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let second = token(&r);
    let wrong = json!({"email": "rest@example.com", "password": "wrong password!"}).to_string();
    let r = c.raw("POST", "/api/auth/login", Some(&wrong)).await;
    assert_rest_error(&r, 401, "UNAUTHORIZED", "/api/auth/login");
    assert_eq!(r.body["message"], "Invalid email or password");
    let es = c.clone().with_header("accept-language", "es");
    let r = es.raw("POST", "/api/auth/login", Some(&wrong)).await;
    assert_eq!(
        r.body["message"],
        "Correo electrónico o contraseña incorrectos"
    );

    // The profile routes need the bearer token.
    let r = c.raw("GET", "/api/user/profile", None).await;
    assert_rest_error(&r, 401, "UNAUTHORIZED", "/api/user/profile");
    let me = c.clone().with_token(&second);
    let r = me.raw("GET", "/api/user/profile", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["email"], "rest@example.com");
    let r = me
        .raw(
            "PUT",
            "/api/user/profile",
            Some(r#"{"firstName":"Renamed"}"#),
        )
        .await;
    assert_eq!(
        (r.status, r.body["firstName"].clone()),
        (200, json!("Renamed"))
    );

    // Sessions: list, revoke the first, an unknown one is 404.
    let r = me.raw("GET", "/api/user/sessions", None).await;
    let sessions = r.body.as_array().expect("a list").clone();
    assert_eq!(sessions.len(), 2);
    let first_sid = common::claims(&first)["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    let r = me
        .raw("DELETE", &format!("/api/user/sessions/{first_sid}"), None)
        .await;
    assert_eq!((r.status, r.body.clone()), (200, json!({"success": true})));
    let r = me.raw("DELETE", "/api/user/sessions/unknown", None).await;
    assert_rest_error(&r, 404, "NOT_FOUND", "/api/user/sessions/unknown");

    // Refresh, change the password, log out.
    let r = me.raw("POST", "/api/auth/refresh", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let refreshed = c.clone().with_token(&token(&r));
    let change = json!({"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}).to_string();
    let r = refreshed
        .raw("PUT", "/api/user/password", Some(&change))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let current = c.clone().with_token(&token(&r));
    let r = current.raw("POST", "/api/auth/logout-all", None).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({"success": true})));
    let r = current.raw("GET", "/api/user/profile", None).await;
    assert_eq!(r.status, 401);
    let r = current.raw("POST", "/api/auth/logout", None).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({"success": true})));

    // Password reset: the mail, then the reset with its token.
    let r = c
        .raw(
            "POST",
            "/api/auth/reset-password",
            Some(r#"{"email":"rest@example.com"}"#),
        )
        .await;
    assert_eq!((r.status, r.body.clone()), (200, json!({"success": true})));
    let mail = server.mails(1).await.pop().expect("a reset mail");
    let reset =
        json!({"email": "rest@example.com", "token": token_from_mail(&mail), "password": PASSWORD});
    let r = c
        .raw("PUT", "/api/auth/reset-password", Some(&reset.to_string()))
        .await;
    assert_eq!((r.status, r.body.clone()), (200, json!({"success": true})));
    let r = c
        .raw("PUT", "/api/auth/reset-password", Some(&reset.to_string()))
        .await;
    assert_rest_error(&r, 400, "BAD_REQUEST", "/api/auth/reset-password");
}

async fn admin_routes(backend: Backend) {
    let server = Server::start(backend).await;
    let c = server.client();
    let admin = c
        .clone()
        .with_token(&admin_token(&server, "boss@example.com").await);
    let r = register(&c, "/api", "viewer@example.com").await;
    let viewer_id = r.body["user"]["id"].as_str().expect("id").to_owned();
    let viewer = c.clone().with_token(&token(&r));
    // VIEWER may not list users: 403.
    let r = viewer.raw("GET", "/api/users", None).await;
    assert_rest_error(&r, 403, "FORBIDDEN", "/api/users");
    // The query string carries the list's input, numbers included.
    let r = admin
        .raw(
            "GET",
            "/api/users?pageSize=1&page=2&search=example.com",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["page"].clone(), r.body["pageSize"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(r.body["total"], 2);
    let r = admin.raw("GET", "/api/users?pageSize=lots", None).await;
    assert_rest_error(&r, 400, "BAD_REQUEST", "/api/users");
    // The path parameter is the input's `id`.
    let r = admin
        .raw(
            "PUT",
            &format!("/api/users/{viewer_id}/role"),
            Some(r#"{"role":"OPERATOR"}"#),
        )
        .await;
    assert_eq!((r.status, r.body["role"].clone()), (200, json!("OPERATOR")));
    let r = admin
        .raw("DELETE", &format!("/api/users/{viewer_id}"), None)
        .await;
    assert_eq!((r.status, r.body.clone()), (200, json!({"success": true})));
    let r = admin
        .raw("DELETE", &format!("/api/users/{viewer_id}"), None)
        .await;
    assert_rest_error(&r, 404, "NOT_FOUND", &format!("/api/users/{viewer_id}"));
    // Unknown routes and wrong methods, in the same shape.
    let r = admin.raw("GET", "/api/nowhere", None).await;
    assert_rest_error(&r, 404, "NOT_FOUND", "/api/nowhere");
    let r = admin.raw("PATCH", "/api/users", Some("{}")).await;
    assert_rest_error(&r, 405, "METHOD_NOT_SUPPORTED", "/api/users");
    assert_eq!(r.header("allow"), Some("GET"));
}

async fn throttled_logins_say_when_to_retry(backend: Backend) {
    let server = Server::start_with(backend, |c| c.limits.login_max_failures = 2).await;
    let c = server.client();
    register(&c, "/api", "throttle@example.com").await;
    let wrong = json!({"email": "throttle@example.com", "password": "wrong password!"}).to_string();
    let mut last = None;
    for _ in 0..3 {
        last = Some(c.raw("POST", "/api/auth/login", Some(&wrong)).await);
    }
    let r = last.expect("three tries");
    assert_rest_error(&r, 429, "TOO_MANY_REQUESTS", "/api/auth/login");
    assert!(
        r.header("retry-after")
            .and_then(|s| s.parse::<u64>().ok())
            .is_some()
    );
}

async fn a_spring_client_works_under_api_1(backend: Backend) {
    let server = Server::start_with(backend, |c| c.http.rest_prefix = "/api/1".to_owned()).await;
    let c = server.client();
    let r = register(&c, "/api/1", "spring@example.com").await;
    assert_eq!(r.status, 201);
    assert!(
        r.body["token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    let again = register(&c, "/api/1", "spring@example.com").await;
    assert_eq!(again.status, 409);
    assert_eq!(again.body["error"], "Conflict");
    let bad = json!({"email": "spring@example.com", "password": "not the password"}).to_string();
    let r = c.raw("POST", "/api/1/auth/login", Some(&bad)).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["message"], "Invalid email or password");
    // The Spring service's login by username.
    let named = json!({"email": "named@example.com", "username": "Spring.User", "password": PASSWORD, "firstName": "N", "lastName": "U"});
    let r = c
        .raw("POST", "/api/1/auth/register", Some(&named.to_string()))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let by_name = json!({"username": "spring.user", "password": PASSWORD}).to_string();
    let r = c.raw("POST", "/api/1/auth/login", Some(&by_name)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["user"]["email"], "named@example.com");
    let taken = json!({"email": "other@example.com", "username": "spring.user", "password": PASSWORD, "firstName": "N", "lastName": "U"});
    let r = c
        .raw("POST", "/api/1/auth/register", Some(&taken.to_string()))
        .await;
    assert_eq!((r.status, r.body["code"].clone()), (409, json!("CONFLICT")));
    // The default prefix is not served then.
    let r = c.raw("POST", "/api/auth/login", Some(&bad)).await;
    assert_eq!((r.status, r.body.clone()), (404, Value::Null));
}

both_backends!(
    auth_routes,
    admin_routes,
    throttled_logins_say_when_to_retry,
    a_spring_client_works_under_api_1,
);
