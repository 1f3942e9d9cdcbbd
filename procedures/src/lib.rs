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
pub mod email_check;
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
pub mod token;
pub mod types;
pub mod users;
pub mod validate;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gatehouse::{Role, Router};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, PaginatorTrait, QueryFilter,
};
use uuid::Uuid;

pub use config::{Config, ConfigError};
pub use service::{AuthService, AuthUser, HasAuth, Settings};

use crate::db_health::DbHealth;
use crate::entities::user;
use crate::mail::{FileOutbox, Mailer, SmtpMailer};
use crate::password::PasswordHasher;

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

/// Why the server could not start. Each message names the setting at fault
/// where there is one.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("DATABASE_URL: {0}")]
    Db(#[from] db::DbError),
    #[error("BCRYPT_COST: {0}")]
    Hasher(#[from] password::PasswordError),
    #[error("SMTP_URL / MAIL_FROM: {0}")]
    Mail(#[from] mail::MailError),
    #[error("GATEHOUSE_ADMIN_EMAIL / GATEHOUSE_ADMIN_PASSWORD: {0}")]
    Admin(#[from] CreateUserError),
    #[error("signing keys: {0}")]
    Keys(#[from] keys::set::KeySetError),
    #[error("could not build the router: {0}")]
    Router(#[from] gatehouse::RouterError),
    #[error("GATEHOUSE_ADDR: could not listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
    /// The app's own start-up failed (see [`run_app`] and [`StartError::app`]).
    #[error("could not start the app: {0}")]
    App(Box<dyn std::error::Error + Send + Sync>),
}

impl StartError {
    /// A failure of the app's own start-up, e.g. opening its tables.
    pub fn app(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StartError::App(error.into())
    }
}

/// Opens the database of `config` and applies migrations.
pub async fn open_database(config: &Config) -> Result<DatabaseConnection, StartError> {
    let db = db::connect_sized(
        &config.database_url(),
        Duration::from_millis(config.db_acquire_timeout_ms),
        config.db_max_connections,
    )
    .await?;
    db::migrate(&db).await?;
    Ok(db)
}

/// Builds the service from a config: database (migrated), signing key,
/// hasher, mailer; then creates the first admin if asked to.
pub async fn build_service(config: &Config) -> Result<AuthService, StartError> {
    config.validate()?;
    let secret = config.load_secret()?;
    let db = open_database(config).await?;
    let hasher = PasswordHasher::new(config.bcrypt_cost)?;
    let mailer: Arc<dyn Mailer> = match &config.smtp_url {
        Some(url) => Arc::new(SmtpMailer::from_url(url, &config.mail_from)?),
        None => Arc::new(FileOutbox::new(config.outbox_dir()).with_from(&config.mail_from)?),
    };
    let settings = Settings {
        refresh_ttl: config.jwt_refresh_ttl,
        refresh_grace_ms: i64::try_from(config.refresh_grace().as_millis()).unwrap_or(10_000),
        login_max_failures: config.login_max_failures,
        login_window: config.login_window,
        ip_max_failures: config.ip_max_failures,
        reset_mails_per_window: 3,
        reset_url: config.reset_url()?,
        trusted_proxies: config.trusted_proxies()?,
        mail: config.outbox(&secret),
        cookies: config.cookies()?,
        admin_email: config
            .admin_email
            .as_deref()
            .and_then(|email| validate::normalize_email(email).ok()),
    };
    let (keys, key_source) = keys::set::token_keys(config, &db, &secret).await?;
    let health = DbHealth::new();
    health.spawn_probe(
        &config.database_url(),
        Duration::from_millis(config.db_connect_timeout_ms),
    );
    health.spawn_storage_probe(db.clone());
    let service = AuthService::new(db, keys, hasher, mailer, settings)
        .with_fast_session_reads(&config.database_url())
        .with_health(health)
        .with_key_source(key_source);
    if let (Some(email), Some(password)) = (&config.admin_email, &config.admin_password) {
        bootstrap_admin(&service, email, password).await?;
    }
    Ok(service)
}

/// Builds the service and serves `router` (normally [`app_router`], possibly
/// merged with an app's own procedures) until SIGTERM/SIGINT. Prints the
/// agreed `gatehouse listening on http://<ip>:<port>` line on stdout.
pub async fn run(config: Config, router: Router<AuthService>) -> Result<(), StartError> {
    run_app(config, router, |service| async move { Ok(service) }).await
}

/// [`run`] for an app with a state of its own: builds the auth service as
/// [`run`] does (database migrated, keys, hasher, mailer, first admin), hands
/// it to `make_state`, which builds the app's state around it (it may open
/// its own tables in the same database through [`AuthService::db`] first,
/// and fail with [`StartError::app`]), then runs housekeeping and the mail
/// worker on the auth service inside it and serves `router` on that state.
pub async fn run_app<S, F, Fut>(
    config: Config,
    router: Router<S>,
    make_state: F,
) -> Result<(), StartError>
where
    S: HasAuth,
    F: FnOnce(AuthService) -> Fut,
    Fut: Future<Output = Result<S, StartError>>,
{
    let registry = router.build()?;
    let state = Arc::new(make_state(build_service(&config).await?).await?);
    spawn_housekeeping(state.clone());
    spawn_key_reload(state.clone(), Duration::from_secs(config.keys_reload));
    let well_known = keys::routes::routes(state.clone(), config.public_url()?);
    // The app first: it installs the metrics recorder the worker reports to.
    let app =
        gatehouse::server::app_with_routes(registry, state.clone(), config.trpc()?, well_known);
    let mail_worker = spawn_mail_worker(state.auth());
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.addr,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.addr,
        source,
    })?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        // The agreed start-up line; tests and scripts wait for it.
        let _ = writeln!(out, "gatehouse listening on http://{local}");
        let _ = out.flush();
    }
    let fd_limit = gatehouse::connections::raise_fd_limit();
    let limits = config.connection_limits();
    tracing::info!(addr = %local, ?fd_limit, max_connections = limits.max_connections, "listening");
    let served = gatehouse::server::serve_with_limits(
        listener,
        app,
        gatehouse::server::shutdown_signal(),
        limits,
    )
    .await
    .map_err(StartError::Serve);
    // After the last request. A send under way gets a few seconds to finish;
    // anything unsent stays queued for the next start or another instance.
    if let Some(worker) = mail_worker {
        worker.shutdown(std::time::Duration::from_secs(5)).await;
    }
    served
}

/// Starts the outbox worker that sends queued mail, unless the settings
/// turn it off (`GATEHOUSE_MAIL_WORKER=false`). Stop it with
/// [`outbox::MailWorker::shutdown`] after the server stopped serving.
pub fn spawn_mail_worker(service: &AuthService) -> Option<outbox::MailWorker> {
    service
        .outbox()
        .settings()
        .worker
        .then(|| outbox::spawn_worker(service.outbox().clone()))
}

/// Runs [`AuthService::housekeeping`] (of the auth service in `state`)
/// every ten minutes for the life of the process, so expired sessions and
/// counters do not pile up.
pub fn spawn_housekeeping<S: HasAuth>(state: Arc<S>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            every.tick().await;
            if let Err(e) = state.auth().housekeeping().await {
                tracing::warn!(error = %e, "housekeeping failed");
            }
        }
    });
}

/// Rereads the key set from the database every `every` (when it lives
/// there), so a rotation on another instance is picked up without a
/// restart even before a token signed with the new key arrives.
pub fn spawn_key_reload<S: HasAuth>(state: Arc<S>, every: Duration) {
    if !state.auth().keys_are_shared() {
        return;
    }
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if let Err(e) = state.auth().reload_keys().await {
                tracing::warn!(error = %e, "could not reload the signing keys");
            }
        }
    });
}

/// Why a user could not be created from the command line or at start-up.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("invalid email address {0:?}")]
    Email(String),
    #[error("invalid email address {0:?}: {1}")]
    EmailForm(String, validate::EmailError),
    #[error("{0}")]
    Policy(&'static str),
    #[error("first and last names must not be empty")]
    Names,
    #[error("a user with this email already exists")]
    Exists,
    /// `GATEHOUSE_ADMIN_EMAIL` names an account that is not an ADMIN and
    /// whose password is not `GATEHOUSE_ADMIN_PASSWORD` (see
    /// [`bootstrap_admin`] for why it is not promoted).
    #[error(
        "{0} already belongs to an account that is not an ADMIN and whose password is not GATEHOUSE_ADMIN_PASSWORD; \
         refusing to make it the first ADMIN, since whoever registered it chose that password \
         (and a mistyped address would take over someone else's account). \
         Either set GATEHOUSE_ADMIN_EMAIL to another address; \
         or, if that account is yours, set GATEHOUSE_ADMIN_PASSWORD to its password; \
         or create an ADMIN with `gatehouse users create --role ADMIN --email <another address>` \
         (once an ADMIN exists these settings are ignored) and then delete that account (users.delete) \
         or let its owner keep it"
    )]
    AdminEmailTaken(String),
    #[error("invalid username: {0}")]
    Username(&'static str),
    #[error("the username is already taken")]
    UsernameTaken,
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("password hashing failed: {0}")]
    Hash(#[from] password::PasswordError),
}

/// An account to create outside the API (command line, first admin).
#[derive(Debug, Clone, Copy)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub role: Role,
    /// Optional; normalised and checked like a registration's.
    pub username: Option<&'a str>,
}

/// Creates a user outside the API (CLI, first admin), with the same checks
/// as registration.
pub async fn create_user(
    db: &DatabaseConnection,
    hasher: &PasswordHasher,
    new: NewUser<'_>,
) -> Result<user::Model, CreateUserError> {
    let email = validate::normalize_email(new.email)
        .map_err(|e| CreateUserError::EmailForm(new.email.to_owned(), e))?;
    if !validate::is_valid_email(&email) {
        return Err(CreateUserError::Email(email));
    }
    password::check_password_policy(new.password)
        .map_err(|e| CreateUserError::Policy(validate::policy_message(&e)))?;
    if new.first_name.trim().is_empty() || new.last_name.trim().is_empty() {
        return Err(CreateUserError::Names);
    }
    if let Err(e) = validate::username(&new.username.map(str::to_owned), &()) {
        let key = e.message().to_string();
        return Err(CreateUserError::Username(
            i18n::english(&key).unwrap_or("not allowed"),
        ));
    }
    insert_user(
        db,
        hasher,
        NewUser {
            email: &email,
            ..new
        },
    )
    .await
}

/// Hashes the password and inserts the user (its email already
/// normalised), without the policy checks of [`create_user`]; a duplicate
/// email is [`CreateUserError::Exists`].
async fn insert_user(
    db: &DatabaseConnection,
    hasher: &PasswordHasher,
    new: NewUser<'_>,
) -> Result<user::Model, CreateUserError> {
    let hash = hasher.hash(new.password).await?;
    let now = db::now_ms();
    let model = user::ActiveModel {
        id: Set(Uuid::now_v7().to_string()),
        email: Set(new.email.to_owned()),
        password_hash: Set(hash),
        first_name: Set(new.first_name.trim().to_owned()),
        last_name: Set(new.last_name.trim().to_owned()),
        phone: Set(None),
        username: Set(validate::username_value(new.username)),
        role: Set(new.role.as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    };
    match model.insert(db).await {
        Ok(u) => Ok(u),
        Err(e) if db::is_username_violation(&e) => Err(CreateUserError::UsernameTaken),
        Err(e) if db::is_unique_violation(&e) => Err(CreateUserError::Exists),
        Err(e) => Err(e.into()),
    }
}

/// Whether any ADMIN exists.
pub(crate) async fn admin_exists(db: &impl ConnectionTrait) -> Result<bool, sea_orm::DbErr> {
    let admins = user::Entity::find()
        .filter(user::Column::Role.eq(Role::Admin.as_str()))
        .count(db)
        .await?;
    Ok(admins > 0)
}

/// Creates the first ADMIN from `GATEHOUSE_ADMIN_EMAIL`/`_PASSWORD` when no
/// ADMIN exists yet.
///
/// An account that already has that email is promoted only if its password
/// is `GATEHOUSE_ADMIN_PASSWORD`. Anyone else's account is never taken over:
/// with open registration, whoever registered the address before the
/// operator's first start chose its password, and promoting it would make
/// them ADMIN (issue 22); and a mistyped address would hand the operator a
/// real user's account. The start is refused instead
/// ([`CreateUserError::AdminEmailTaken`]), naming the way out.
async fn bootstrap_admin(
    service: &AuthService,
    email: &str,
    password: &str,
) -> Result<(), CreateUserError> {
    let db = service.db();
    if admin_exists(db).await? {
        return Ok(());
    }
    let normalized = validate::normalize_email(email)
        .map_err(|e| CreateUserError::EmailForm(email.to_owned(), e))?;
    if !validate::is_valid_email(&normalized) {
        return Err(CreateUserError::Email(normalized));
    }
    match password::check_password_policy(password) {
        // Allowed with a warning so that a demo setup still starts; unlike a
        // password bcrypt would truncate, it is still usable.
        Err(password::PasswordPolicyError::TooCommon) => {
            tracing::warn!("GATEHOUSE_ADMIN_PASSWORD is a common password; change it soon");
        }
        Err(e) => return Err(CreateUserError::Policy(validate::policy_message(&e))),
        Ok(()) => {}
    }
    if let Some(existing) = find_by_email(db, &normalized).await? {
        return promote_own_account(service, existing, password).await;
    }
    let admin = NewUser {
        email: &normalized,
        password,
        first_name: "Admin",
        last_name: "User",
        role: Role::Admin,
        username: None,
    };
    let u = match insert_user(db, &service.hasher, admin).await {
        // Another instance starting at the same time created it first, or
        // a registration took the address a moment ago: judged as above.
        Err(CreateUserError::Exists) => {
            return match find_by_email(db, &normalized).await? {
                Some(existing) => promote_own_account(service, existing, password).await,
                None => Err(CreateUserError::Exists),
            };
        }
        other => other?,
    };
    tracing::info!(target: "audit", event = "admin.bootstrap_created", user_id = u.id.as_str(),
        "created the first ADMIN from GATEHOUSE_ADMIN_EMAIL");
    Ok(())
}

async fn find_by_email(
    db: &DatabaseConnection,
    email: &str,
) -> Result<Option<user::Model>, sea_orm::DbErr> {
    user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .one(db)
        .await
}

/// Makes `existing` (whose email is `GATEHOUSE_ADMIN_EMAIL`) the first ADMIN
/// if `password` (`GATEHOUSE_ADMIN_PASSWORD`) is its password: then whoever
/// set the variable demonstrably controls the account. Otherwise refuses
/// (see [`bootstrap_admin`]). The check runs on the hasher's blocking pool,
/// like every other bcrypt verification.
async fn promote_own_account(
    service: &AuthService,
    existing: user::Model,
    password: &str,
) -> Result<(), CreateUserError> {
    if existing.role == Role::Admin.as_str() {
        // Created by another instance starting at the same time.
        return Ok(());
    }
    let taken = || CreateUserError::AdminEmailTaken(existing.email.clone());
    // A hash that cannot be read proves nothing: refused like a mismatch.
    let proven = service
        .hasher
        .verify(password, &existing.password_hash)
        .await
        .is_ok_and(|v| v.matches);
    if !proven {
        return Err(taken());
    }
    // Only while the password is still the one just verified.
    let promoted = user::Entity::update_many()
        .col_expr(user::Column::Role, Expr::value(Role::Admin.as_str()))
        .col_expr(user::Column::UpdatedAt, Expr::value(db::now_ms()))
        .filter(user::Column::Id.eq(existing.id.clone()))
        .filter(user::Column::PasswordHash.eq(existing.password_hash.clone()))
        .exec(service.db())
        .await?;
    if promoted.rows_affected != 1 {
        return Err(taken());
    }
    let u = existing;
    tracing::warn!(target: "audit", event = "admin.bootstrap_promoted", user_id = u.id.as_str(),
        "no ADMIN existed; promoted the existing GATEHOUSE_ADMIN_EMAIL account, whose password is GATEHOUSE_ADMIN_PASSWORD");
    Ok(())
}
