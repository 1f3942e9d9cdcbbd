//! The Gatehouse authentication service: every procedure of `docs/api.md`
//! (`auth.*`, `users.*`), its storage, tokens, limits and the server start-up
//! shared by the `gatehouse` binary and apps that mount their own routers
//! beside it, on the auth service or on a state of their own that contains it
//! (see [`run`], [`run_app`] and [`HasAuth`]).

pub mod auth;
pub mod config;
pub mod cookies;
pub mod db;
pub mod db_health;
pub mod entities;
pub mod error;
pub mod events;
pub mod i18n;
pub mod keys;
pub mod limits;
pub mod mail;
pub mod outbox;
pub mod password;

pub mod service;
mod sessions;
mod start;
pub mod token;
pub mod types;
pub mod users;
pub mod validate;

use gatehouse::Router;

pub use config::{Config, ConfigError};
pub use service::{AuthService, AuthUser, HasAuth, Settings};
pub use start::{
    StartError, build_service, open_database, run, run_app, spawn_housekeeping, spawn_key_reload,
    spawn_mail_worker,
};
pub use users::{CreateUserError, NewUser, create_user, email_check};

/// Every auth and users procedure, on any state that contains the auth
/// service (`app_router::<AuthService>()` for the service alone). Needs no
/// database, so the bindings emitter and apps adding their own routers can
/// build it anywhere.
pub fn app_router<S: HasAuth>() -> Router<S> {
    let auth = Router::new()
        .procedure::<auth::Register>()
        .procedure::<auth::Login>()
        .procedure::<auth::Me>()
        .procedure::<auth::RefreshToken>()
        .procedure::<auth::Logout>()
        .procedure::<auth::RequestPasswordReset>()
        .procedure::<auth::ResetPassword>()
        .procedure::<auth::ChangePassword>()
        .procedure::<auth::UpdateProfile>()
        .procedure::<auth::Sessions>()
        .procedure::<auth::RevokeSession>()
        .procedure::<auth::LogoutAll>()
        .subscription::<auth::Events>();
    let users = Router::new()
        .procedure::<users::ListUsers>()
        .procedure::<users::SetRole>()
        .procedure::<users::DeleteUser>();
    Router::new().nest("auth", auth).nest("users", users)
}
