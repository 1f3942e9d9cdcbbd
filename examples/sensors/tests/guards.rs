//! The sensors router's guards over real HTTP: a VIEWER can list but not
//! create, an OPERATOR can create but not delete, an ADMIN can delete; an
//! anonymous caller can do nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use gatehouse_auth::Config;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADMIN_EMAIL: &str = "admin@sensors.test";
const ADMIN_PASSWORD: &str = "Sensors-Admin-Passw0rd";
const PASSWORD: &str = "Sensors-User-Passw0rd";

/// One HTTP/1.0 exchange (the server closes the connection after it, so
/// the body is everything after the headers). Returns status and JSON body.
async fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!("{method} {target} HTTP/1.0\r\nhost: {addr}\r\n");
    if let Some(token) = token {
        request.push_str(&format!("authorization: Bearer {token}\r\n"));
    }
    if method == "POST" {
        request.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers end");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// A mutation with `{"json": input}`; returns status and `result.data.json` or the error's `data.code`.
async fn mutation(addr: SocketAddr, path: &str, input: Value, token: Option<&str>) -> (u16, Value) {
    let (status, body) = http(
        addr,
        "POST",
        &format!("/trpc/{path}"),
        token,
        Some(&json!({ "json": input })),
    )
    .await;
    (status, unwrap(body))
}

/// A query without input (GET).
async fn query(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, Value) {
    let (status, body) = http(addr, "GET", &format!("/trpc/{path}"), token, None).await;
    (status, unwrap(body))
}

fn unwrap(body: Value) -> Value {
    if let Some(data) = body.pointer("/result/data/json") {
        data.clone()
    } else if let Some(code) = body.pointer("/error/json/data/code") {
        code.clone()
    } else {
        body
    }
}

async fn login(addr: SocketAddr, email: &str, password: &str) -> String {
    let (status, out) = mutation(
        addr,
        "auth.login",
        json!({ "email": email, "password": password }),
        None,
    )
    .await;
    assert_eq!(status, 200, "login {email}: {out}");
    out["token"].as_str().expect("token").to_owned()
}

async fn register(addr: SocketAddr, email: &str) -> (String, String) {
    let (status, out) = mutation(
        addr,
        "auth.register",
        json!({ "email": email, "password": PASSWORD, "firstName": "S", "lastName": "T" }),
        None,
    )
    .await;
    assert_eq!(status, 200, "register {email}: {out}");
    (
        out["token"].as_str().expect("token").to_owned(),
        out["user"]["id"].as_str().expect("id").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_gets_exactly_its_sensor_procedures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: Some(format!(
            "sqlite://{}",
            dir.path().join("sensors.db").display()
        )),
        data_dir: dir.path().to_path_buf(),
        jwt_secret: Some("sensors-secret-sensors-secret-sensors-secret".to_owned()),
        bcrypt_cost: 4,
        admin_email: Some(ADMIN_EMAIL.to_owned()),
        admin_password: Some(ADMIN_PASSWORD.to_owned()),
        outbox_dir: Some(dir.path().join("outbox")),
        ..Config::defaults()
    };
    let registry = gatehouse_sensors::app_router()
        .build()
        .expect("router builds");
    let service = gatehouse_auth::build_service(&config)
        .await
        .expect("service starts");
    let app = gatehouse::server::app(
        registry,
        Arc::new(service),
        config.trpc().expect("trpc config"),
    );
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let server = tokio::spawn(gatehouse::server::serve_with_shutdown(
        listener,
        app,
        std::future::pending(),
    ));

    // Anonymous: nothing.
    assert_eq!(
        query(addr, "sensors.list", None).await,
        (401, json!("UNAUTHORIZED"))
    );

    let (viewer, _) = register(addr, "viewer@sensors.test").await;
    let (_, operator_id) = register(addr, "operator@sensors.test").await;
    let admin = login(addr, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (status, out) = mutation(
        addr,
        "users.setRole",
        json!({ "id": operator_id, "role": "OPERATOR" }),
        Some(&admin),
    )
    .await;
    assert_eq!((status, &out["role"]), (200, &json!("OPERATOR")), "{out}");
    // A role change revokes the old token: log in again as OPERATOR.
    let operator = login(addr, "operator@sensors.test", PASSWORD).await;

    // VIEWER: can list, cannot create.
    let (status, listed) = query(addr, "sensors.list", Some(&viewer)).await;
    assert_eq!(status, 200, "{listed}");
    assert!(listed.is_array());
    let new_sensor = json!({ "name": "Boiler room", "unit": "°C" });
    assert_eq!(
        mutation(addr, "sensors.create", new_sensor.clone(), Some(&viewer)).await,
        (403, json!("FORBIDDEN"))
    );

    // OPERATOR: can create (and list), cannot delete.
    let (status, created) = mutation(addr, "sensors.create", new_sensor, Some(&operator)).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["name"], "Boiler room");
    assert_eq!(created["unit"], "°C");
    assert_eq!(created["createdBy"], "operator@sensors.test");
    let id = created["id"].as_str().expect("id").to_owned();
    let (status, listed) = query(addr, "sensors.list", Some(&viewer)).await;
    assert_eq!(status, 200);
    assert!(
        listed
            .as_array()
            .expect("array")
            .iter()
            .any(|s| s["id"] == id.as_str()),
        "{listed}"
    );
    let (status, invalid) = http(
        addr,
        "POST",
        "/trpc/sensors.create",
        Some(&operator),
        Some(&json!({ "json": { "name": " ", "unit": "°C" } })),
    )
    .await;
    assert_eq!(status, 400, "{invalid}");
    assert_eq!(
        invalid.pointer("/error/json/data/issues/0/path/0"),
        Some(&json!("name")),
        "{invalid}"
    );
    assert_eq!(
        mutation(addr, "sensors.delete", json!({ "id": id }), Some(&operator)).await,
        (403, json!("FORBIDDEN"))
    );

    // ADMIN: can delete; a second delete finds nothing.
    assert_eq!(
        mutation(addr, "sensors.delete", json!({ "id": id }), Some(&admin)).await,
        (200, json!({ "success": true }))
    );
    assert_eq!(
        mutation(addr, "sensors.delete", json!({ "id": id }), Some(&admin)).await,
        (404, json!("NOT_FOUND"))
    );
    let (_, listed) = query(addr, "sensors.list", Some(&admin)).await;
    assert!(
        !listed
            .as_array()
            .expect("array")
            .iter()
            .any(|s| s["id"] == id.as_str())
    );

    server.abort();
}
