//! Start-up: the checks of the settings, the database, the service built from
//! them, the background tasks and the server loop. Kept apart from the crate
//! root so the root reads as the list of what the service is (modules and the
//! router), and what runs once at start lives in one place.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gatehouse::Router;
use sea_orm::DatabaseConnection;

use crate::config::{Checked, Config, ConfigError};
use crate::db_health::DbHealth;
use crate::mail::{FileOutbox, Mailer, SmtpMailer};
use crate::password::PasswordHasher;
use crate::service::{AuthService, HasAuth, Settings};
use crate::users::CreateUserError;
use crate::{db, keys, mail, outbox, password, users, validate};

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
        config.database.db_acquire_timeout_ms.get(),
        config.database.db_max_connections,
    )
    .await?;
    db::migrate(&db).await?;
    Ok(db)
}

/// Builds the service from a config: database (migrated), signing key,
/// hasher, mailer; then creates the first admin if asked to.
pub async fn build_service(config: &Config) -> Result<AuthService, StartError> {
    build_checked_service(config, &config.validate()?).await
}

/// [`build_service`] for a config already checked into `checked`, so
/// [`run_app`] checks (and parses) the settings once for the service and
/// the server.
async fn build_checked_service(
    config: &Config,
    checked: &Checked,
) -> Result<AuthService, StartError> {
    let secret = config.load_secret()?;
    let db = open_database(config).await?;
    let hasher = PasswordHasher::new(config.bcrypt_cost)?;
    let mailer: Arc<dyn Mailer> = match &config.mail.smtp_url {
        Some(url) => Arc::new(SmtpMailer::from_url(url, &config.mail.mail_from)?),
        None => Arc::new(FileOutbox::new(config.outbox_dir()).with_from(&config.mail.mail_from)?),
    };
    let settings = Settings {
        refresh_ttl: config.tokens.jwt_refresh_ttl,
        refresh_grace_ms: i64::try_from(config.tokens.refresh_grace.get().as_millis())
            .unwrap_or(10_000),
        login_max_failures: config.limits.login_max_failures,
        login_window: config.limits.login_window,
        ip_max_failures: config.limits.ip_max_failures,
        reset_mails_per_window: 3,
        reset_url: checked.reset_url.clone(),
        trusted_proxies: checked.trusted_proxies.clone(),
        mail: config.mail.outbox(&secret),
        cookies: checked.cookies.clone(),
        admin_email: config
            .admin_email
            .as_deref()
            .and_then(|email| validate::normalize_email(email).ok()),
    };
    let (keys, key_source) = keys::set::token_keys(&config.tokens, &db, &secret).await?;
    let health = DbHealth::new();
    health.spawn_probe(
        &config.database_url(),
        config.database.db_connect_timeout_ms.get(),
    );
    health.spawn_storage_probe(db.clone());
    let service = AuthService::new(db, keys, hasher, mailer, settings)
        .with_fast_session_reads(&config.database_url())
        .with_health(health)
        .with_key_source(key_source);
    if let (Some(email), Some(password)) = (&config.admin_email, &config.admin_password) {
        users::bootstrap_admin(&service, email, password).await?;
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
    let checked = config.validate()?;
    let state = Arc::new(make_state(build_checked_service(&config, &checked).await?).await?);
    spawn_housekeeping(state.clone());
    spawn_key_reload(state.clone(), config.tokens.keys_reload.get());
    let well_known = keys::routes::routes(state.clone(), checked.public_url);
    // The app first: it installs the metrics recorder the worker reports to.
    let app = gatehouse::server::app_with_routes(registry, state.clone(), checked.trpc, well_known);
    let mail_worker = spawn_mail_worker(state.auth());
    let listener = tokio::net::TcpListener::bind(config.http.addr)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.http.addr,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.http.addr,
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
    let limits = config.http.connection_limits();
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
