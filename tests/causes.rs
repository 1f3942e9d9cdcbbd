//! An internal error keeps its cause for the log: the adapter logs it once,
//! with the request id and the procedure path, and the client only ever
//! sees `Internal server error`.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{TestService, request, send};
use gatehouse::procedure::{Ctx, Guard, Kind, NoInput, Procedure};
use gatehouse::{Router, RpcError};

/// Fails the way a storage layer would: an error with a source chain.
#[derive(schemars::JsonSchema)]
struct Broken;
impl Procedure<TestService> for Broken {
    const PATH: &'static str = "broken";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Public;
    type Input = NoInput;
    type Output = String;
    type Error = RpcError;
    async fn call(_: Ctx<TestService>, _: NoInput) -> Result<String, RpcError> {
        #[derive(Debug, thiserror::Error)]
        #[error("could not load the sensor")]
        struct Load(#[source] std::io::Error);
        let disk = std::io::Error::other("disk on fire at /var/secret");
        Err(RpcError::internal(Load(disk)))
    }
}

/// A `MakeWriter` that keeps every log line in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn the_cause_is_logged_once_with_request_id_and_path_never_sent() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let registry = Router::new()
        .procedure::<Broken>()
        .build()
        .expect("router builds");
    let app = gatehouse::server::app(
        registry,
        Arc::new(TestService::default()),
        gatehouse::http::TrpcConfig::default(),
    );
    let req = request("GET", "/trpc/broken")
        .header("x-request-id", "req-cause-1")
        .body(axum::body::Body::empty())
        .expect("request");
    let resp = send(&app, req).await;

    assert_eq!(resp.status, 500);
    let body = resp.json();
    assert_eq!(body["error"]["json"]["message"], "Internal server error");
    assert!(!resp.body.contains("disk"), "cause leaked: {}", resp.body);
    assert!(!resp.body.contains("sensor"), "cause leaked: {}", resp.body);

    let text = String::from_utf8(logs.0.lock().expect("logs").clone()).expect("utf-8 logs");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("disk on fire"))
        .collect();
    assert_eq!(lines.len(), 1, "logged once, got:\n{text}");
    let line = lines[0];
    assert!(
        line.contains("could not load the sensor: disk on fire"),
        "{line}"
    );
    assert!(line.contains("req-cause-1"), "{line}");
    assert!(line.contains("broken"), "{line}");
}
