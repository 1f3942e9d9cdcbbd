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

use gatehouse::Ctx;

use crate::service::HasAuth;

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

/// The caller's address as logged in audit events.
fn client_ip_string<S: HasAuth>(ctx: &Ctx<S>) -> String {
    ctx.service
        .auth()
        .client_ip(&ctx.request)
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}
