//! httpOnly cookie sessions over TCP (`docs/cookies.md`): the cookie and
//! its attributes, `Secure` dropped for local http origins only, calls
//! authenticated by the cookie (a bearer header wins), refresh and logout by
//! cookie, the CSRF refusals and what passes them, and CORS credentials.

mod common;

use common::{Backend, Client, PASSWORD, Server, register};
use serde_json::{Value, json};

const APP: &str = "https://app.example";
const LOCAL_APP: &str = "http://localhost:5173";

async fn start(backend: Backend) -> Server {
    Server::start_with(backend, |c| {
        c.http.cors_origins = Some(format!("{APP},{LOCAL_APP},http://127.0.0.1:3000"));
    })
    .await
}

/// Every `Set-Cookie` of a response.
fn set_cookies(r: &common::Response) -> Vec<&str> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The one session cookie a response sets: `(value, attributes)`.
#[track_caller]
fn session_cookie(r: &common::Response) -> (String, Vec<String>) {
    let all = set_cookies(r);
    assert_eq!(all.len(), 1, "one Set-Cookie expected: {all:?} {}", r.body);
    let mut parts = all[0].split(';').map(str::trim);
    let (name, value) = parts
        .next()
        .and_then(|p| p.split_once('='))
        .expect("name=value");
    assert_eq!(name, "gatehouse_session");
    (value.to_owned(), parts.map(str::to_owned).collect())
}

/// A browser-like client of `origin` that asks for cookie sessions.
fn browser(server: &Server, origin: &str) -> Client {
    server
        .client()
        .with_header("origin", origin)
        .with_header("x-gatehouse-session", "cookie")
}

/// A client presenting the session cookie `value` (and nothing else).
fn with_cookie(client: Client, value: &str) -> Client {
    client.with_header("cookie", &format!("other=1; gatehouse_session={value}"))
}

async fn cookie_login(server: &Server, origin: &str, email: &str) -> (common::Response, String) {
    let r = browser(server, origin)
        .mutation(
            "auth.login",
            json!({ "email": email, "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (value, _) = session_cookie(&r);
    (r, value)
}

async fn a_login_that_asks_gets_an_httponly_cookie(backend: Backend) {
    let server = start(backend).await;
    let c = server.client();
    register(&c, "ada@example.com").await;

    let (r, value) = cookie_login(&server, APP, "ada@example.com").await;
    let (_, attributes) = session_cookie(&r);
    for wanted in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(
            attributes.iter().any(|a| a == wanted),
            "{wanted} in {attributes:?}"
        );
    }
    let max_age = format!("Max-Age={}", server.config.tokens.jwt_refresh_ttl);
    assert!(attributes.contains(&max_age), "{attributes:?}");
    assert_eq!(value.split('.').count(), 3, "a JWT: {value}");
    // The answer keeps its type; the token is only in the cookie.
    let data = r.data();
    assert_eq!(data["token"], "");
    assert_eq!(data["user"]["email"], "ada@example.com");
    assert!(data["expiresIn"].as_u64().is_some_and(|s| s > 0));

    // The cookie's token is a working session.
    let me = with_cookie(server.client(), &value)
        .query("auth.me", Value::Null)
        .await;
    assert_eq!(me.data()["email"], "ada@example.com");

    // Register too, and the REST route the same way.
    let r = browser(&server, APP)
        .mutation(
            "auth.register",
            json!({ "email": "bo@example.com", "password": PASSWORD, "firstName": "B", "lastName": "O" }),
        )
        .await;
    session_cookie(&r);
    assert_eq!(r.data()["token"], "");
    let body = json!({ "email": "bo@example.com", "password": PASSWORD }).to_string();
    let r = browser(&server, APP)
        .raw("POST", "/api/auth/login", Some(&body))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    session_cookie(&r);
    assert_eq!(r.body["token"], "");

    // Clients that do not ask see no change: no cookie, the token in JSON.
    let r = c
        .clone()
        .with_header("origin", APP)
        .mutation(
            "auth.login",
            json!({ "email": "ada@example.com", "password": PASSWORD }),
        )
        .await;
    assert!(set_cookies(&r).is_empty(), "{:?}", r.headers);
    assert_eq!(
        r.data()["token"].as_str().map(|t| t.split('.').count()),
        Some(3)
    );
}

async fn secure_is_dropped_for_local_http_only(backend: Backend) {
    let server = start(backend).await;
    register(&server.client(), "ada@example.com").await;
    for (origin, secure) in [
        (LOCAL_APP, false),
        ("http://127.0.0.1:3000", false),
        (APP, true),
    ] {
        let (r, _) = cookie_login(&server, origin, "ada@example.com").await;
        let (_, attributes) = session_cookie(&r);
        assert_eq!(
            attributes.iter().any(|a| a == "Secure"),
            secure,
            "{origin}: {attributes:?}"
        );
        assert!(attributes.iter().any(|a| a == "HttpOnly"));
    }
}

async fn the_cookie_authenticates_and_a_bearer_header_wins(backend: Backend) {
    let server = start(backend).await;
    let c = server.client();
    register(&c, "ada@example.com").await;
    let (bo_token, _) = register(&c, "bo@example.com").await;
    let (_, ada_cookie) = cookie_login(&server, APP, "ada@example.com").await;

    // GET queries change nothing: no Origin needed.
    let me = with_cookie(server.client(), &ada_cookie)
        .query("auth.me", Value::Null)
        .await;
    assert_eq!(me.data()["email"], "ada@example.com");
    let r = with_cookie(server.client(), &ada_cookie)
        .raw("GET", "/api/user/profile", None)
        .await;
    assert_eq!(
        (r.status, r.body["email"].clone()),
        (200, json!("ada@example.com"))
    );

    let both = with_cookie(server.client(), &ada_cookie).with_token(&bo_token);
    let me = both.query("auth.me", Value::Null).await;
    assert_eq!(me.data()["email"], "bo@example.com");

    // A broken cookie is an invalid token, as a broken bearer would be.
    let r = with_cookie(server.client(), "not-a-token")
        .query("auth.me", Value::Null)
        .await;
    r.assert_error("UNAUTHORIZED", 401);
}

async fn refresh_and_logout_work_by_cookie(backend: Backend) {
    let server = start(backend).await;
    register(&server.client(), "ada@example.com").await;
    let (_, first) = cookie_login(&server, APP, "ada@example.com").await;

    // No input and no bearer: the cookie is the token refreshed, and the
    // new one comes back as a cookie.
    let r = with_cookie(server.client().with_header("origin", APP), &first)
        .mutation("auth.refreshToken", Value::Null)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (second, _) = session_cookie(&r);
    assert_ne!(second, first);
    assert_eq!(r.data()["token"], "");

    let r = with_cookie(server.client().with_header("origin", APP), &second)
        .mutation("auth.logout", Value::Null)
        .await;
    assert_eq!(r.data()["success"], true);
    let (cleared, attributes) = session_cookie(&r);
    assert_eq!(cleared, "");
    assert!(
        attributes.iter().any(|a| a == "Max-Age=0"),
        "{attributes:?}"
    );
    // Revoked, not only forgotten by the browser.
    let me = with_cookie(server.client(), &second)
        .query("auth.me", Value::Null)
        .await;
    me.assert_error("UNAUTHORIZED", 401);
}

async fn cookie_mutations_need_an_allowed_origin_and_a_script_header(backend: Backend) {
    let server = start(backend).await;
    let c = server.client();
    let (bearer, _) = register(&c, "ada@example.com").await;
    let (_, cookie) = cookie_login(&server, APP, "ada@example.com").await;
    let update = json!({ "firstName": "Changed" });

    // tRPC mutations by cookie.
    let no_origin = with_cookie(server.client(), &cookie);
    let r = no_origin
        .mutation("auth.updateProfile", update.clone())
        .await;
    r.assert_error("FORBIDDEN", 403);
    assert!(r.message().contains("allowed origin"), "{}", r.message());
    let wrong = with_cookie(
        server
            .client()
            .with_header("origin", "https://evil.example"),
        &cookie,
    );
    wrong
        .mutation("auth.updateProfile", update.clone())
        .await
        .assert_error("FORBIDDEN", 403);
    let null = with_cookie(server.client().with_header("origin", "null"), &cookie);
    null.mutation("auth.updateProfile", update.clone())
        .await
        .assert_error("FORBIDDEN", 403);
    let referer_elsewhere = with_cookie(
        server
            .client()
            .with_header("referer", "https://evil.example/page"),
        &cookie,
    );
    referer_elsewhere
        .mutation("auth.updateProfile", update.clone())
        .await
        .assert_error("FORBIDDEN", 403);

    // REST: a form's content type (body-less route, so nothing else stops it).
    let form = with_cookie(
        server
            .client()
            .with_header("origin", APP)
            .with_header("content-type", "application/x-www-form-urlencoded"),
        &cookie,
    );
    let r = form.raw("POST", "/api/auth/logout-all", None).await;
    assert_eq!(
        (r.status, r.body["code"].clone()),
        (403, json!("FORBIDDEN")),
        "{}",
        r.body
    );
    let r = with_cookie(server.client().with_header("origin", APP), &cookie)
        .raw("DELETE", "/api/user/sessions/none", None)
        .await;
    assert_eq!(r.status, 403, "no JSON, no custom header: {}", r.body);
    // Nothing was changed by the refused calls.
    let me = with_cookie(server.client(), &cookie)
        .query("auth.me", Value::Null)
        .await;
    assert_eq!(me.data()["firstName"], "Test");

    // What passes: an allowed origin (or its Referer, or the API's own
    // origin) with JSON or the session header.
    let ok = with_cookie(server.client().with_header("origin", APP), &cookie);
    let r = ok.mutation("auth.updateProfile", update.clone()).await;
    assert_eq!(r.data()["firstName"], "Changed");
    let referer = with_cookie(
        server
            .client()
            .with_header("referer", &format!("{APP}/settings")),
        &cookie,
    );
    let r = referer
        .mutation("auth.updateProfile", json!({ "lastName": "R" }))
        .await;
    assert_eq!(r.data()["lastName"], "R");
    let own = with_cookie(
        server
            .client()
            .with_header("origin", &format!("http://{}", server.addr)),
        &cookie,
    );
    let r = own
        .mutation("auth.updateProfile", json!({ "lastName": "S" }))
        .await;
    assert_eq!(r.data()["lastName"], "S");
    let header = with_cookie(
        server
            .client()
            .with_header("origin", APP)
            .with_header("x-gatehouse-session", "cookie"),
        &cookie,
    );
    let r = header.raw("DELETE", "/api/user/sessions/none", None).await;
    assert_eq!(r.status, 404, "passed the checks: {}", r.body);

    // A bearer token is unaffected by all of this.
    let r = c
        .clone()
        .with_token(&bearer)
        .with_header("origin", "https://evil.example")
        .mutation("auth.updateProfile", json!({ "lastName": "T" }))
        .await;
    assert_eq!(r.data()["lastName"], "T");

    // Asking for a cookie from an origin that is not allowed is refused
    // before the password is even checked.
    let r = browser(&server, "https://evil.example")
        .mutation(
            "auth.login",
            json!({ "email": "ada@example.com", "password": PASSWORD }),
        )
        .await;
    r.assert_error("FORBIDDEN", 403);
    assert!(set_cookies(&r).is_empty());
}

async fn cors_lets_listed_origins_send_credentials(backend: Backend) {
    let server = start(backend).await;
    let preflight = |origin: &str| {
        server
            .client()
            .with_header("origin", origin)
            .with_header("access-control-request-method", "POST")
            .with_header(
                "access-control-request-headers",
                "content-type,x-gatehouse-session",
            )
    };
    let r = preflight(APP)
        .raw("OPTIONS", "/trpc/auth.login", None)
        .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some(APP),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    let allowed = r.header("access-control-allow-headers").unwrap_or_default();
    assert!(allowed.contains("x-gatehouse-session"), "{allowed}");
    let r = preflight("https://evil.example")
        .raw("OPTIONS", "/trpc/auth.login", None)
        .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        None,
        "{:?}",
        r.headers
    );
    let r = server
        .client()
        .with_header("origin", APP)
        .query("auth.me", Value::Null)
        .await;
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    drop(server);

    // `*` never carries credentials (tower-http would panic, browsers would
    // refuse): the server starts and simply does not allow them.
    let any = Server::start_with(backend, |c| c.http.cors_origins = Some("*".to_owned())).await;
    let r = any
        .client()
        .with_header("origin", APP)
        .with_header("access-control-request-method", "POST")
        .raw("OPTIONS", "/trpc/auth.login", None)
        .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("*"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("access-control-allow-credentials"), None);
    drop(any);

    // Cookie sessions off: no credentials, no cookies, cookies not read.
    let off = Server::start_with(backend, |c| {
        c.http.cors_origins = Some(APP.to_owned());
        c.cookies.cookie_mode = gatehouse_auth::cookies::CookieMode::Off;
    })
    .await;
    let r = off
        .client()
        .with_header("origin", APP)
        .query("auth.me", Value::Null)
        .await;
    assert_eq!(r.header("access-control-allow-credentials"), None);
    register(&off.client(), "ada@example.com").await;
    let r = browser(&off, APP)
        .mutation(
            "auth.login",
            json!({ "email": "ada@example.com", "password": PASSWORD }),
        )
        .await;
    assert!(set_cookies(&r).is_empty());
    let token = r.data()["token"].as_str().expect("token").to_owned();
    let r = with_cookie(off.client(), &token)
        .query("auth.me", Value::Null)
        .await;
    r.assert_error("UNAUTHORIZED", 401);
}

async fn always_mode_sets_cookies_for_browsers_only(backend: Backend) {
    let server = Server::start_with(backend, |c| {
        c.http.cors_origins = Some(APP.to_owned());
        c.cookies.cookie_mode = gatehouse_auth::cookies::CookieMode::Always;
    })
    .await;
    register(&server.client(), "ada@example.com").await;
    let login = json!({ "email": "ada@example.com", "password": PASSWORD });
    let r = server
        .client()
        .with_header("origin", APP)
        .mutation("auth.login", login.clone())
        .await;
    session_cookie(&r);
    assert_eq!(r.data()["token"], "");
    // A non-browser client (no Origin) gets its token as before.
    let r = server.client().mutation("auth.login", login.clone()).await;
    assert!(set_cookies(&r).is_empty());
    assert!(r.data()["token"].as_str().is_some_and(|t| !t.is_empty()));
    // So does a browser page that says so.
    let r = server
        .client()
        .with_header("origin", APP)
        .with_header("x-gatehouse-session", "bearer")
        .mutation("auth.login", login)
        .await;
    assert!(set_cookies(&r).is_empty());
    assert!(r.data()["token"].as_str().is_some_and(|t| !t.is_empty()));
}

/// The public procedures that read or set the session cookie refuse a
/// request from an origin that is not allowed with 403 `FORBIDDEN`, and
/// `/openapi.json` lists that 403 for each of them, tRPC and REST alike.
async fn public_cookie_procedures_answer_and_declare_403(backend: Backend) {
    let server = start(backend).await;
    register(&server.client(), "ada@example.com").await;
    let evil = browser(&server, "https://evil.example");
    let calls = [
        (
            "auth.register",
            json!({ "email": "eve@example.com", "password": PASSWORD, "firstName": "E", "lastName": "Ve" }),
        ),
        (
            "auth.login",
            json!({ "email": "ada@example.com", "password": PASSWORD }),
        ),
    ];
    for (path, input) in calls {
        let r = evil.mutation(path, input).await;
        r.assert_error("FORBIDDEN", 403);
    }
    // Refresh and logout by a cookie from the wrong origin.
    let (_, cookie) = cookie_login(&server, APP, "ada@example.com").await;
    let stolen = with_cookie(
        server
            .client()
            .with_header("origin", "https://evil.example"),
        &cookie,
    );
    for path in ["auth.refreshToken", "auth.logout"] {
        stolen
            .mutation(path, Value::Null)
            .await
            .assert_error("FORBIDDEN", 403);
    }

    let document = server.client().raw("GET", "/openapi.json", None).await.body;
    for (route, method) in [
        ("/trpc/auth.register", "post"),
        ("/api/auth/register", "post"),
        ("/trpc/auth.login", "post"),
        ("/api/auth/login", "post"),
        ("/trpc/auth.refreshToken", "post"),
        ("/api/auth/refresh", "post"),
        ("/trpc/auth.logout", "post"),
        ("/api/auth/logout", "post"),
    ] {
        let responses = &document["paths"][route][method]["responses"];
        assert!(
            responses.get("403").is_some(),
            "{route} lists 403: {responses}"
        );
    }
}

both_backends!(
    public_cookie_procedures_answer_and_declare_403,
    a_login_that_asks_gets_an_httponly_cookie,
    secure_is_dropped_for_local_http_only,
    the_cookie_authenticates_and_a_bearer_header_wins,
    refresh_and_logout_work_by_cookie,
    cookie_mutations_need_an_allowed_origin_and_a_script_header,
    cors_lets_listed_origins_send_credentials,
    always_mode_sets_cookies_for_browsers_only,
);
