//! The server's "stop now" signal, as a request extension: long-lived
//! answers (subscriptions) watch it and end cleanly, so a graceful shutdown
//! is not held up by streams that would otherwise never finish.

use tokio::sync::watch;

/// Set on every request by [`crate::connections`]; resolves once the server
/// stops accepting connections. A request without it (served by another
/// server, or in-process) is never told to stop.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    pub fn new(receiver: watch::Receiver<bool>) -> Self {
        Self(receiver)
    }

    /// Resolves when the server is shutting down (or its sender is gone).
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }
}
