//! The durable mail outbox and the worker that drains it.
//!
//! A procedure that must send mail writes it to the `mail_outbox` table in
//! the same transaction as the change the mail announces (the reset token),
//! and answers. A worker task then sends it through the [`Mailer`]. So:
//!
//! - the answer time does not depend on the mail server (nor on whether a
//!   mail was written at all, which would reveal accounts);
//! - a mail is never lost: a failed send is retried with back-off, and a
//!   crash or restart before sending leaves the row for the next worker;
//! - a failure is visible: logged as an error and counted in metrics, and the
//!   row stays `failed` with its last error for a while.
//!
//! Several instances may share one database. A worker claims rows by moving
//! their `due_at` into the future (its lease) in one statement: on
//! PostgreSQL with `FOR UPDATE SKIP LOCKED`, so two workers never take the
//! same row; on SQLite the statement is atomic because SQLite has one writer
//! at a time. Delivery is at least once: a worker that dies after the mail
//! server accepted a mail but before recording it lets the lease expire and
//! the mail goes out again, which is the safe side for a reset link.
//!
//! The rendered body holds the live reset token, because the mail must
//! carry it and only its hash is kept elsewhere. So that a database leak
//! still hands out no usable reset link, the body is stored encrypted
//! (AES-256-GCM under a key derived from the JWT secret, which every
//! instance shares; the row id is bound in as associated data), and it is
//! cleared as soon as the mail is sent or given up (normally within a
//! second). Mails older than the token's lifetime are given up unsent, and
//! finished rows are deleted by housekeeping a day later. The price: a mail
//! queued under one JWT secret cannot be sent after the secret changed; it
//! is given up with an error (the user asks for a new one).

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::db::now_ms;
use crate::mail::{Mail, Mailer};

mod seal;
mod store;

pub use seal::MailKey;
use store::{Claimed, Outcome, any_due, claim, record};
pub use store::{housekeeping, pending_count};

/// Mails sent (accepted by the mail server or written to the folder).
pub const MAIL_SENT_TOTAL: &str = "gatehouse_mail_sent_total";
/// Mails given up after the last attempt (or too old to be worth sending).
pub const MAIL_FAILED_TOTAL: &str = "gatehouse_mail_failed_total";
/// Failed send attempts that will be retried.
pub const MAIL_RETRIES_TOTAL: &str = "gatehouse_mail_retries_total";
/// Mails waiting in the outbox (all instances), as last seen by this worker.
pub const MAIL_OUTBOX_PENDING: &str = "gatehouse_mail_outbox_pending";

/// The longest back-off between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// A queued mail is given up after this long: the reset token it carries
/// lives an hour, so a later delivery would only mail a dead link.
pub const MAX_AGE: Duration = Duration::from_secs(3600);

/// How the worker behaves; from [`crate::config::MailConfig::outbox`], which holds the
/// defaults (there is deliberately no `Default` here to repeat them).
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    /// Encrypts queued bodies; the same on every instance sharing the
    /// database (derived from the shared JWT secret).
    pub key: MailKey,
    /// Whether this process runs a worker. Off for an instance that should
    /// only queue mail (another instance sends it).
    pub worker: bool,
    /// How often the worker looks for mail queued by other instances (mail
    /// queued by this process wakes it at once).
    pub poll: Duration,
    /// Wait before the first retry; doubled for each further one.
    pub retry_delay: Duration,
    /// Attempts before a mail is given up.
    pub max_attempts: u32,
    /// Longest wait for one send; a slower one counts as a failed attempt.
    pub send_timeout: Duration,
    /// A mail not sent within this time of being queued is given up (its
    /// link would be dead anyway).
    pub max_age: Duration,
}

impl OutboxSettings {
    /// How long a claim holds a row: longer than any send may take, so a row
    /// is never taken by a second worker while the first is still sending.
    pub(super) fn lease(&self) -> Duration {
        self.send_timeout + Duration::from_secs(30)
    }

    /// The wait after failed attempt number `attempts` (1-based).
    pub(super) fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
        self.retry_delay.saturating_mul(factor).min(MAX_BACKOFF)
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// The outbox of one process: how to reach the database and the mailer,
/// and the signal that wakes its worker when this process queues a mail.
pub struct Outbox {
    db: DatabaseConnection,
    mailer: Arc<dyn Mailer>,
    settings: OutboxSettings,
    wakeup: Notify,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// An outbox sending through `mailer`.
    pub fn new(db: DatabaseConnection, mailer: Arc<dyn Mailer>, settings: OutboxSettings) -> Self {
        Self {
            db,
            mailer,
            settings,
            wakeup: Notify::new(),
        }
    }

    /// The worker settings.
    pub fn settings(&self) -> &OutboxSettings {
        &self.settings
    }

    /// Queues `mail` for the worker, its body encrypted. Call it inside the
    /// transaction that makes the mail true (e.g. the one storing the reset
    /// token), so both are committed or neither; after the commit, wake the
    /// worker with [`Outbox::wake`].
    pub async fn enqueue(
        &self,
        db: &impl ConnectionTrait,
        mail: &Mail,
        now: i64,
    ) -> Result<(), DbErr> {
        let id = Uuid::now_v7().to_string();
        let body = self.settings.key.seal(&id, &mail.text);
        store::insert(db, id, mail, body, now).await?;
        Ok(())
    }

    /// Tells this process's worker that a mail was queued (after the
    /// transaction committed). A wake-up while it is busy is kept, not lost.
    pub fn wake(&self) {
        self.wakeup.notify_one();
    }

    /// Sends every due mail, batch by batch, until none is left. Returns how
    /// many rows were handled.
    pub async fn drain(&self) -> Result<usize, DbErr> {
        let lease_ms = ms(self.settings.lease());
        let mut handled = 0;
        loop {
            if !any_due(&self.db, now_ms()).await? {
                return Ok(handled);
            }
            let rows = claim(&self.db, now_ms(), lease_ms).await?;
            if rows.is_empty() {
                return Ok(handled);
            }
            handled += rows.len();
            for row in rows {
                let outcome = self.attempt(&row).await;
                self.report(&row, &outcome);
                if let Err(e) = record(&self.db, &row, &outcome, &self.settings).await {
                    // The lease runs out and the row is tried again, so a
                    // sent mail may go out twice; never lost.
                    tracing::warn!(error = %e, mail_id = %row.id, "could not record a mail's outcome");
                }
            }
        }
    }

    /// One send attempt.
    async fn attempt(&self, row: &Claimed) -> Outcome {
        let age_ms = now_ms().saturating_sub(row.created_at);
        if age_ms > ms(self.settings.max_age) {
            return Outcome::Failed {
                error: "expired before it could be sent".to_owned(),
            };
        }
        let Some(stored) = row.body.as_deref() else {
            return Outcome::Failed {
                error: "the message body is missing".to_owned(),
            };
        };
        let Some(body) = self.settings.key.open(&row.id, stored) else {
            return Outcome::Failed {
                error: "the message body cannot be decrypted (was JWT_SECRET changed?)".to_owned(),
            };
        };
        let mail = Mail {
            to: row.recipient.clone(),
            subject: row.subject.clone(),
            text: body,
        };
        let error =
            match tokio::time::timeout(self.settings.send_timeout, self.mailer.send(mail)).await {
                Ok(Ok(())) => return Outcome::Sent,
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!(
                    "no answer from the mailer within {} s",
                    self.settings.send_timeout.as_secs()
                ),
            };
        if u32::try_from(row.attempts).unwrap_or(u32::MAX) >= self.settings.max_attempts {
            Outcome::Failed { error }
        } else {
            Outcome::Retry { error }
        }
    }

    /// Logs and counts an outcome. Never logs the body (it holds the token).
    fn report(&self, row: &Claimed, outcome: &Outcome) {
        match outcome {
            Outcome::Sent => {
                metrics::counter!(MAIL_SENT_TOTAL).increment(1);
                tracing::info!(mail_id = %row.id, attempts = row.attempts, "mail sent");
            }
            Outcome::Retry { error } => {
                metrics::counter!(MAIL_RETRIES_TOTAL).increment(1);
                let attempts = u32::try_from(row.attempts).unwrap_or(1);
                tracing::warn!(mail_id = %row.id, attempts, error = %error,
                    retry_in_s = self.settings.backoff(attempts).as_secs_f64(),
                    "could not send a mail; will retry");
            }
            Outcome::Failed { error } => {
                metrics::counter!(MAIL_FAILED_TOTAL).increment(1);
                tracing::error!(mail_id = %row.id, attempts = row.attempts, error = %error,
                    "could not send a mail; giving up");
            }
        }
    }

    /// Refreshes the pending-mail gauge.
    async fn update_gauge(&self) {
        match pending_count(&self.db).await {
            #[allow(clippy::cast_precision_loss)]
            Ok(n) => metrics::gauge!(MAIL_OUTBOX_PENDING).set(n as f64),
            Err(e) => tracing::debug!(error = %e, "could not count pending mails"),
        }
    }
}

/// The running worker of [`spawn_worker`]; [`MailWorker::shutdown`] stops it.
#[derive(Debug)]
pub struct MailWorker {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl MailWorker {
    /// Stops the worker once the mail it is sending, if any, is done, but
    /// waits at most `wait`: then it is aborted, and a mail it had taken is
    /// tried again (by any instance) once its lease has run out. Mail not
    /// taken yet stays queued for the next start or another instance.
    pub async fn shutdown(self, wait: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(wait, &mut task).await.is_err() {
            task.abort();
        }
    }

    /// Stops the worker at once (tests dropping a server).
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// Starts the worker: it drains the outbox at start, whenever this process
/// queues a mail, and every `poll` (for mail queued by other instances or
/// due for a retry), until [`MailWorker::shutdown`].
pub fn spawn_worker(outbox: Arc<Outbox>) -> MailWorker {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        metrics::describe_counter!(MAIL_SENT_TOTAL, "Mails sent");
        metrics::describe_counter!(MAIL_FAILED_TOTAL, "Mails given up after the last attempt");
        metrics::describe_counter!(
            MAIL_RETRIES_TOTAL,
            "Failed mail send attempts that will be retried"
        );
        metrics::describe_gauge!(MAIL_OUTBOX_PENDING, "Mails waiting in the outbox");
        let mut failing = false;
        loop {
            match outbox.drain().await {
                Ok(_) => failing = false,
                // Logged once per outage, not every poll.
                Err(e) if !failing => {
                    failing = true;
                    tracing::error!(error = %e, "the mail worker cannot read the outbox");
                }
                Err(e) => tracing::debug!(error = %e, "the mail worker cannot read the outbox"),
            }
            outbox.update_gauge().await;
            tokio::select! {
                () = outbox.wakeup.notified() => {}
                () = tokio::time::sleep(outbox.settings.poll) => {}
                _ = stopped.wait_for(|s| *s) => break,
            }
            if *stopped.borrow() {
                break;
            }
        }
        tracing::debug!("mail worker stopped");
    });
    MailWorker { stop, task }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let s = OutboxSettings {
            retry_delay: Duration::from_secs(5),
            ..crate::Config::defaults()
                .mail
                .outbox(b"a secret a secret a secret a secret!")
        };
        assert_eq!(s.backoff(1), Duration::from_secs(5));
        assert_eq!(s.backoff(2), Duration::from_secs(10));
        assert_eq!(s.backoff(4), Duration::from_secs(40));
        assert_eq!(s.backoff(30), MAX_BACKOFF);
        assert!(s.lease() > s.send_timeout);
    }
}
