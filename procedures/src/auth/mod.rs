//! The `auth.*` procedures, one room per concern:
//! - [`signin`]: `register`, `login`;
//! - [`tokens`]: `refreshToken`, `logout`, `logoutAll`, `sessions`,
//!   `revokeSession` (the session rules themselves live in
//!   [`crate::sessions`]);
//! - [`passwords`]: `requestPasswordReset`, `resetPassword`,
//!   `changePassword`;
//! - [`profile`]: `me`, `updateProfile`;
//! - [`events`]: the `events` subscription.
//!
//! Each procedure's input, output and errors are in `docs/api.md`.

mod events;
mod passwords;
mod profile;
mod signin;
mod tokens;

use std::net::IpAddr;
use std::time::Duration;

use gatehouse::Ctx;

use crate::db::now_ms;
use crate::error::AuthError;
use crate::limits::{self, Hit};
use crate::service::{AuthService, HasAuth};

pub use events::{Events, EventsInput};
pub use passwords::{
    ChangePassword, ChangePasswordInput, RequestPasswordReset, RequestPasswordResetInput,
    ResetPassword, ResetPasswordInput,
};
pub use profile::{Me, UpdateProfile, UpdateProfileInput};
pub use signin::{Login, LoginInput, Register, RegisterInput};
pub use tokens::{Logout, LogoutAll, RefreshToken, RevokeSession, RevokeSessionInput, Sessions};

/// bcrypt never sees more than this; longer passwords are refused, not cut.
const MAX_PASSWORD_BYTES: usize = 72;

/// The client's address, worked out once per call (the TCP peer, or behind
/// trusted proxies the last untrusted `X-Forwarded-For` hop) and then used
/// for everything that names it: the address's login counter, the audit
/// lines, the session's recorded origin.
#[derive(Debug, Clone)]
pub(crate) struct ClientAddr {
    ip: Option<IpAddr>,
    /// As logged and counted: the address, or `unknown` (no socket).
    label: String,
}

impl ClientAddr {
    pub(crate) fn of<S: HasAuth>(ctx: &Ctx<S>) -> Self {
        let ip = ctx.service.auth().client_ip(&ctx.request);
        let label = ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        Self { ip, label }
    }

    pub(crate) fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.label
    }
}

/// The key of an account's login-failure counter: its normalised email.
pub(crate) fn account_key(email: &str) -> String {
    format!("login:account:{email}")
}

/// The two login-failure counters an attempt to prove a password counts
/// against: the account's and the client address's (see `docs/api.md`,
/// Rate limiting). `auth.login` and every procedure that checks a password
/// the caller types (`auth.changePassword`) go through these, so guesses
/// made through any of them add up to one limit and one lock, and a lock
/// refuses them all.
pub(crate) struct FailureCounters {
    account: String,
    ip: String,
}

impl FailureCounters {
    /// The counters of the account counted under `account` (see
    /// [`account_key`]; an unknown identifier has a key of its own) and of
    /// the caller's address.
    fn new(client: &ClientAddr, account: String) -> Self {
        Self {
            account,
            ip: format!("login:ip:{}", client.as_str()),
        }
    }

    /// The counters of the account with this (normalised) email.
    fn of_email(client: &ClientAddr, email: &str) -> Self {
        Self::new(client, account_key(email))
    }

    /// Seconds until the account and the address are both unlocked, if
    /// either is locked now. Checked before the password, so that a lock
    /// refuses the right password too and guessing gains nothing.
    async fn locked_for(&self, svc: &AuthService) -> Result<Option<u64>, AuthError> {
        Ok(limits::locked_for(&svc.db, &[&self.account, &self.ip], now_ms()).await?)
    }

    /// Counts one failure against the account and the address; the
    /// failure that reaches a limit locks for the window. Returns the
    /// account's count (for the log and [`slow_down`]).
    async fn count_failure(&self, svc: &AuthService) -> Result<Hit, AuthError> {
        let now = now_ms();
        let window_ms =
            i64::try_from(svc.settings.login_window.saturating_mul(1000)).unwrap_or(i64::MAX / 4);
        let account = limits::hit(
            &svc.db,
            &self.account,
            i64::from(svc.settings.login_max_failures),
            window_ms,
            now,
        )
        .await?;
        limits::hit(
            &svc.db,
            &self.ip,
            i64::from(svc.settings.ip_max_failures),
            window_ms,
            now,
        )
        .await?;
        Ok(account)
    }

    /// The right password: the account's counter starts again (the
    /// address's does not).
    async fn succeeded(&self, svc: &AuthService) -> Result<(), AuthError> {
        Ok(limits::clear(&svc.db, &self.account).await?)
    }
}

/// Slows the answer to a failed password down a little once an account's
/// failures pile up: 50 ms more for each failure after the third, at most
/// 500 ms, which slows guessing before the lock.
async fn slow_down(failures: i64) {
    if failures > 3 {
        let steps = u64::try_from((failures - 3).min(10)).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(50 * steps)).await;
    }
}
