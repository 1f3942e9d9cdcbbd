//! [`AuthService`]: the state behind every auth procedure and the
//! authenticator the framework calls for guarded procedures.

use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use gatehouse::{ErrorCode, Principal, RequestMeta, Role, RpcError, Service};
use ipnet::IpNet;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

use crate::db::now_ms;
use crate::db_health::DbHealth;
use crate::entities::{password_reset, user};
use crate::error::AuthError;
use crate::events::{EventHub, EventTxn, RevokeReason};
use crate::i18n;
use crate::keys::set::KeySource;
use crate::limits;
use crate::mail::Mailer;
use crate::outbox::{Outbox, OutboxSettings};
use crate::password::PasswordHasher;
use crate::sessions::{self, Presented, Purpose, SessionReader, Valid};
use crate::token::{Claims, SessionClaims, TokenError, TokenKeys};
use crate::types::{AuthPayload, User};

/// `lastUsedAt` is written at most this often per session, so a busy client
/// does not turn every read into a write.
const LAST_USED_EVERY_MS: i64 = 60_000;

/// A token with an unknown `kid` reloads the key set from the database at
/// most this often, so tokens with made-up kids cannot hammer the database.
const UNKNOWN_KID_RELOAD_EVERY_MS: i64 = 1_000;

/// Longest `/readyz` waits for the database to answer a ping.
const READY_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(800);

/// Tunables of the service, from [`crate::Config`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// Absolute refresh window of a session, from its start, in seconds.
    pub refresh_ttl: u64,
    /// How long a rotated token keeps working, in milliseconds (≤ 10 s).
    pub refresh_grace_ms: i64,
    pub login_max_failures: u32,
    /// Failure-counting window and lock time, in seconds.
    pub login_window: u64,
    pub ip_max_failures: u32,
    /// Reset mails per email address per login window.
    pub reset_mails_per_window: u32,
    /// Base of the link in reset mails, checked at start-up.
    pub reset_url: url::Url,
    pub trusted_proxies: Vec<IpNet>,
    /// The mail outbox worker.
    pub mail: OutboxSettings,
    /// httpOnly cookie sessions for browsers.
    pub cookies: crate::cookies::CookieSettings,
    /// `GATEHOUSE_ADMIN_EMAIL`, normalised: while no ADMIN exists nobody may
    /// register it, so the first-admin bootstrap of a later start does not
    /// find it taken by someone else.
    pub admin_email: Option<String>,
}

/// The auth service: database, token keys, password hasher, mail outbox.
pub struct AuthService {
    pub(crate) db: DatabaseConnection,
    pub(crate) keys: TokenKeys,
    key_source: KeySource,
    /// When an unknown `kid` last reloaded the key set (Unix ms).
    unknown_kid_reload: AtomicI64,
    pub(crate) hasher: PasswordHasher,
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) settings: Settings,
    sessions: SessionReader,
    health: Arc<DbHealth>,
    /// Wakes `auth.events` subscribers; started with the first one.
    events: OnceLock<Arc<EventHub>>,
    /// The hub's poll interval instead of its per-backend default (see
    /// [`Self::with_events_poll`]).
    events_poll: Option<std::time::Duration>,
}

/// Where a request's token came from (see [`AuthService::request_token`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenSource {
    /// An `Authorization: Bearer` header.
    Bearer,
    /// A subscription's `connectionParams`.
    ConnectionParams,
    /// The session cookie (which passed the CSRF checks), so a new token
    /// goes back into it.
    Cookie,
}

/// The authenticated caller: the token's user and session.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: String,
    pub session_id: String,
    pub jti: String,
    pub role: Role,
    pub email: String,
    /// The user row as read while authenticating, so `auth.me` and friends
    /// need no second query.
    pub user: user::Model,
    /// When the token stops being accepted (Unix ms): its `exp` plus
    /// `JWT_LEEWAY`. Subscriptions opened with it end then (a session
    /// cookie carries the same token, so the same holds for cookie streams).
    pub expires_at_ms: i64,
}

impl Principal for AuthUser {
    fn role(&self) -> Role {
        self.role
    }

    fn subject(&self) -> Option<&str> {
        Some(&self.user_id)
    }

    /// The token's end, so an `auth.events` stream cannot outlive it: it
    /// was authorised once, when it opened, and would otherwise keep
    /// delivering account changes to a token no other call accepts.
    fn expires_at(&self) -> Option<std::time::SystemTime> {
        let ms = u64::try_from(self.expires_at_ms).unwrap_or(0);
        std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_millis(ms))
    }
}

impl AuthService {
    /// Mail goes through the outbox: queued in the database, sent by the
    /// worker of [`crate::outbox::spawn_worker`] through `mailer`.
    pub fn new(
        db: DatabaseConnection,
        keys: TokenKeys,
        hasher: PasswordHasher,
        mailer: Arc<dyn Mailer>,
        settings: Settings,
    ) -> Self {
        let outbox = Arc::new(Outbox::new(db.clone(), mailer, settings.mail.clone()));
        Self {
            db,
            keys,
            key_source: KeySource::Secret,
            unknown_kid_reload: AtomicI64::new(0),
            hasher,
            outbox,
            settings,
            sessions: SessionReader::pooled(),
            health: DbHealth::new(),
            events: OnceLock::new(),
            events_poll: None,
        }
    }

    /// How often the `auth.events` hub reads the events table for new rows
    /// (default: 100 ms on SQLite, 2 s on PostgreSQL, where `LISTEN` hears
    /// them sooner). Only other processes' commits need the poll (this
    /// one's wake their subscribers themselves), which tests prove by
    /// setting an hour.
    #[must_use]
    pub fn with_events_poll(mut self, every: std::time::Duration) -> Self {
        self.events_poll = Some(every);
        self
    }

    /// Shares `health` (whose probe [`crate::build_service`] starts) so that
    /// calls fail at once while the database is unreachable.
    #[must_use]
    pub fn with_health(mut self, health: Arc<DbHealth>) -> Self {
        self.health = health;
        self
    }

    /// Where [`Self::reload_keys`] reads the key set from (see
    /// [`crate::keys::set::token_keys`]); without it the keys never change.
    #[must_use]
    pub fn with_key_source(mut self, source: KeySource) -> Self {
        self.key_source = source;
        self
    }

    /// The signing keys, e.g. for the `kid` of new tokens.
    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    /// Whether the key set lives in the database and so can change under a
    /// running instance.
    pub fn keys_are_shared(&self) -> bool {
        matches!(self.key_source, KeySource::Database { .. })
    }

    /// Rereads the key set from the database (a rotation by another
    /// instance or `gatehouse keys rotate`). Without a live key of
    /// `JWT_ALGORITHM` the current keys stay.
    pub async fn reload_keys(&self) -> Result<(), crate::keys::set::KeySetError> {
        let KeySource::Database { seal } = &self.key_source else {
            return Ok(());
        };
        let now = now_ms();
        let alg = self.keys.algorithm();
        // Opening keys (decrypting, parsing, a probe signature) costs up to
        // milliseconds for RSA: skip it when the set is the one in use.
        let rows = crate::keys::store::list(&self.db)
            .await
            .map_err(crate::keys::store::StoreError::from)?;
        let mut kids: Vec<String> = rows
            .iter()
            .filter(|r| r.not_after.is_none_or(|end| end > now))
            .map(|r| r.kid.clone())
            .collect();
        kids.sort();
        let active = rows
            .iter()
            .find(|r| r.retired_at.is_none() && r.alg == alg.as_str())
            .map(|r| r.kid.clone());
        if kids == self.keys.kids() && active == self.keys.active_kid() {
            return Ok(());
        }
        let stored = crate::keys::store::load(&self.db, seal, now).await?;
        let (active, others) = crate::keys::set::pick(stored, alg)
            .ok_or(crate::keys::set::KeySetError::NoActiveKey(alg))?;
        self.keys.replace(&active, &others)?;
        Ok(())
    }

    /// `check(keys, token)`, and once more after reloading the key set if
    /// the token names a `kid` this instance does not know yet (a key
    /// another instance just rotated in), at most once a second.
    pub(crate) async fn verify_token<T>(
        &self,
        token: &str,
        check: impl Fn(&TokenKeys, &str) -> Result<T, TokenError>,
    ) -> Result<T, TokenError> {
        match check(&self.keys, token) {
            Err(TokenError::UnknownKey(kid)) if self.keys_are_shared() => {
                let now = now_ms();
                let last = self.unknown_kid_reload.load(Ordering::Relaxed);
                if now - last < UNKNOWN_KID_RELOAD_EVERY_MS
                    || self
                        .unknown_kid_reload
                        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_err()
                {
                    return Err(TokenError::UnknownKey(kid));
                }
                if let Err(e) = self.reload_keys().await {
                    tracing::warn!(error = %e, "could not reload the signing keys");
                }
                check(&self.keys, token)
            }
            other => other,
        }
    }

    /// `Err(Unavailable)` while the database is known to be unreachable, so
    /// a call answers at once instead of waiting for the pool.
    pub(crate) fn db_up(&self) -> Result<(), AuthError> {
        if self.health.is_up() {
            Ok(())
        } else {
            Err(AuthError::Unavailable)
        }
    }

    /// Reads sessions of guarded calls straight from the SQLite file at
    /// `database_url` (when it is one) instead of through the pool; see
    /// [`crate::sessions::read`]. [`crate::build_service`] always does this.
    #[must_use]
    pub fn with_fast_session_reads(mut self, database_url: &str) -> Self {
        self.sessions = SessionReader::for_url(database_url);
        self
    }

    /// The database, for apps that add their own procedures beside auth.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The mail outbox, whose worker [`crate::outbox::spawn_worker`] starts.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// The caller's address as used for throttling and session records.
    pub(crate) fn client_ip(&self, meta: &RequestMeta) -> Option<IpAddr> {
        limits::client_ip(meta, &self.settings.trusted_proxies)
    }

    /// Signs a token for `user` in session `sid`, with a new token id in
    /// the session generation `generation` (see [`crate::token::generation`]).
    pub(crate) fn issue(
        &self,
        user: &user::Model,
        sid: &str,
        generation: &str,
    ) -> Result<AuthPayload, AuthError> {
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(self.keys.ttl).unwrap_or(i64::MAX / 4);
        let api_user = User::from(user);
        let claims = Claims {
            iss: self.keys.issuer.clone(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(ttl),
            sub: user.id.clone(),
            jti: crate::token::new_jti(generation),
            sid: sid.to_owned(),
            id: user.id.clone(),
            email: user.email.clone(),
            role: api_user.role,
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
        };
        Ok(AuthPayload {
            token: self.keys.sign(&claims)?,
            expires_in: u32::try_from(self.keys.ttl).unwrap_or(u32::MAX),
            user: api_user,
        })
    }

    /// Opens a session for `user_id` from this request and returns
    /// `(session id, generation)` for [`Self::issue`].
    pub(crate) async fn open_session(
        &self,
        db: &impl ConnectionTrait,
        user_id: &str,
        meta: &RequestMeta,
        client_ip: Option<IpAddr>,
    ) -> Result<(String, String), AuthError> {
        let refresh_ms =
            i64::try_from(self.settings.refresh_ttl.saturating_mul(1000)).unwrap_or(i64::MAX / 4);
        let origin = sessions::Origin {
            user_agent: meta
                .header("user-agent")
                .map(|ua| ua.chars().take(512).collect()),
            ip: client_ip.map(|ip| ip.to_string()),
        };
        Ok(sessions::open(db, user_id, origin, refresh_ms, now_ms()).await?)
    }

    /// The token a request carries, and where it came from: the one place
    /// that decides which credential counts, for the authenticator and for
    /// the procedures that read the token themselves (refresh, logout).
    /// Its bearer token, else a subscription's `connectionParams` `token`
    /// (a browser's EventSource cannot set headers, so
    /// `httpSubscriptionLink` clients pass it there; the framework hands
    /// `connectionParams` to subscriptions only), else, only without either,
    /// its session cookie, which must then pass the CSRF checks: a failure
    /// is an error, not the absence of a token.
    pub(crate) fn request_token<'a>(
        &self,
        meta: &'a RequestMeta,
    ) -> Result<Option<(&'a str, TokenSource)>, AuthError> {
        if let Some(token) = meta.bearer_token() {
            return Ok(Some((token, TokenSource::Bearer)));
        }
        let param = meta.connection_param("token").map(str::trim);
        if let Some(token) = param.filter(|t| !t.is_empty()) {
            return Ok(Some((token, TokenSource::ConnectionParams)));
        }
        match self.settings.cookies.token(meta) {
            Some(token) => {
                self.settings.cookies.check_csrf(meta)?;
                Ok(Some((token, TokenSource::Cookie)))
            }
            None => Ok(None),
        }
    }

    /// Hands a new token to the client: in the session cookie when
    /// `cookie`, with the answer's `token` then empty (see
    /// `docs/cookies.md`), else in the answer as always.
    pub(crate) fn deliver(
        &self,
        meta: &RequestMeta,
        cookie: bool,
        mut payload: AuthPayload,
    ) -> AuthPayload {
        if cookie {
            self.settings.cookies.set(meta, &payload.token);
            payload.token = String::new();
        }
        payload
    }

    /// The wake-up channel of `auth.events` in this process, started (with
    /// its poller and, on PostgreSQL, its listener) on first use.
    pub(crate) fn events(&self) -> &Arc<EventHub> {
        self.events
            .get_or_init(|| EventHub::start(self.db.clone(), self.events_poll))
    }

    /// Whether session `sid` exists and is not revoked.
    pub(crate) async fn session_is_live(&self, sid: &str) -> Result<bool, AuthError> {
        Ok(sessions::find(&self.db, sid)
            .await?
            .is_some_and(|s| s.revoked_at.is_none()))
    }

    /// Begins a write transaction that may record account events; its
    /// commit wakes their subscribers in this process (see [`EventTxn`]).
    /// The events hub of this service (started with its first subscriber),
    /// for the few writers that open their [`EventTxn`] themselves.
    pub(crate) fn events_hub(&self) -> &OnceLock<Arc<EventHub>> {
        &self.events
    }

    pub(crate) async fn begin_event_txn(&self) -> Result<EventTxn<'_>, DbErr> {
        EventTxn::begin(&self.db, &self.events).await
    }

    /// Revokes every live session of a user, optionally sparing one.
    pub(crate) async fn revoke_sessions(
        &self,
        txn: &EventTxn<'_>,
        user_id: &str,
        except: Option<&str>,
        reason: RevokeReason,
    ) -> Result<u64, AuthError> {
        Ok(sessions::revoke_all(txn, user_id, except, now_ms(), reason).await?)
    }

    /// The session and user of a token presented for `purpose`, read in one
    /// query ([`crate::sessions::read`]) and judged at `now` by
    /// [`sessions::validate`], the verdicts the authenticator and
    /// `auth.refreshToken` share; a refusal as the client sees it.
    pub(crate) async fn token_session(
        &self,
        sid: &str,
        presented: Presented<'_>,
        now: i64,
        purpose: Purpose,
    ) -> Result<Valid, AuthError> {
        let found = self.sessions.read(&self.db, sid).await?;
        sessions::validate(&self.db, found, presented, now, purpose)
            .await
            .map_err(|refusal| refusal.into_error(purpose))
    }

    /// Checks a token against its session and user in one query.
    async fn check_token(&self, meta: &RequestMeta, token: &str) -> Result<AuthUser, AuthError> {
        let claims = self
            .verify_token(token, TokenKeys::verify::<SessionClaims>)
            .await
            .map_err(|e| {
                tracing::debug!(error = %e, "token refused");
                AuthError::InvalidToken
            })?;
        let expires_at_ms = self.keys.refused_from_ms(&claims);
        let now = now_ms();
        let presented = Presented::new(&claims.sub, claims.role, &claims.jti);
        let purpose = Purpose::Call {
            grace_ms: self.settings.refresh_grace_ms,
        };
        let Valid {
            session,
            user,
            role,
        } = self
            .token_session(&claims.sid, presented, now, purpose)
            .await?;
        if now - session.last_used_at > LAST_USED_EVERY_MS {
            let db = self.db.clone();
            let sid = session.id.clone();
            let request_id = meta.request_id.clone();
            tokio::spawn(async move {
                if let Err(e) = sessions::touch(&db, &sid, now).await {
                    tracing::warn!(error = %e, request_id, "could not record session use");
                }
            });
        }
        Ok(AuthUser {
            user_id: user.id.clone(),
            session_id: session.id,
            jti: claims.jti,
            role,
            email: user.email.clone(),
            user,
            expires_at_ms,
        })
    }

    /// Deletes rows that can no longer matter: sessions whose tokens have all
    /// expired, spent or expired reset tokens, and counters whose window and
    /// lock are over. Safe to run on every instance at once.
    pub async fn housekeeping(&self) -> Result<(), AuthError> {
        let now = now_ms();
        let ttl_ms = i64::try_from(self.keys.ttl.saturating_mul(1000)).unwrap_or(i64::MAX / 4);
        let window_ms =
            i64::try_from(self.settings.login_window.saturating_mul(1000)).unwrap_or(i64::MAX / 4);
        let horizon = now.saturating_sub(ttl_ms);
        // Retired generations matter for the grace period (at most 10 s).
        sessions::prune(&self.db, horizon, now.saturating_sub(60_000)).await?;
        password_reset::Entity::delete_many()
            .filter(password_reset::Column::ExpiresAt.lt(now.saturating_sub(86_400_000)))
            .exec(&self.db)
            .await?;
        limits::prune(&self.db, now.saturating_sub(window_ms), now).await?;
        crate::outbox::housekeeping(&self.db, now).await?;
        crate::events::prune(&self.db, now.saturating_sub(crate::events::RETENTION_MS)).await?;
        let pruned = crate::keys::store::prune(&self.db, now).await?;
        if pruned > 0 {
            tracing::info!(pruned, "pruned signing keys past their verifying window");
        }
        Ok(())
    }
}

impl Service for AuthService {
    type Principal = AuthUser;
    /// A valid token whose user has been deleted since.
    const AUTHENTICATE_ERRORS: &'static [ErrorCode] = &[ErrorCode::NotFound];

    async fn authenticate(&self, request: &RequestMeta) -> Result<Option<AuthUser>, RpcError> {
        let Some((token, _)) = self.request_token(request)? else {
            return Ok(None);
        };
        self.db_up()?;
        self.check_token(request, token)
            .await
            .map(Some)
            .map_err(RpcError::from)
    }

    /// Down at once while the probe says so; otherwise a ping that may take
    /// at most [`READY_PING_TIMEOUT`].
    async fn ready(&self) -> bool {
        self.health.is_ready()
            && matches!(
                tokio::time::timeout(READY_PING_TIMEOUT, self.db.ping()).await,
                Ok(Ok(()))
            )
    }

    fn finalize_error(&self, request: &RequestMeta, error: &mut RpcError) {
        // Every error the service answers passes here, so this is where a
        // write that found the disk full marks the storage (see
        // `crate::db_health`).
        if error
            .cause
            .as_deref()
            .is_some_and(|cause| cause.is::<crate::db_health::StorageFull>())
        {
            self.health.mark_storage_full();
        }
        i18n::localize(error, i18n::negotiate(request.header("accept-language")));
    }
}

/// An application state that contains the auth service, so every `auth.*`
/// and `users.*` procedure runs on it (the idea of axum's `FromRef`): the
/// procedures are `impl<S: HasAuth> Procedure<S>` and reach the service with
/// `ctx.service.auth()`. [`AuthService`] is one itself; an app with its own
/// state implements [`Service`] by handing each method to the auth service
/// (a blanket impl is not possible: `Service` is the framework's trait), and
/// serves it with [`crate::run_app`]:
///
/// ```
/// use gatehouse::{ErrorCode, RequestMeta, RpcError, Service};
/// use gatehouse_auth::{AuthService, AuthUser, HasAuth};
///
/// pub struct App {
///     auth: AuthService,
///     sensors: sea_orm::DatabaseConnection,
/// }
///
/// impl Service for App {
///     type Principal = AuthUser;
///     const AUTHENTICATE_ERRORS: &'static [ErrorCode] = AuthService::AUTHENTICATE_ERRORS;
///
///     async fn authenticate(&self, request: &RequestMeta) -> Result<Option<AuthUser>, RpcError> {
///         self.auth.authenticate(request).await
///     }
///
///     async fn ready(&self) -> bool {
///         self.auth.ready().await
///     }
///
///     fn finalize_error(&self, request: &RequestMeta, error: &mut RpcError) {
///         self.auth.finalize_error(request, error);
///     }
/// }
///
/// impl HasAuth for App {
///     fn auth(&self) -> &AuthService {
///         &self.auth
///     }
/// }
///
/// // Every auth.* and users.* procedure, on the app's state:
/// let router = gatehouse_auth::app_router::<App>();
/// ```
pub trait HasAuth: Service<Principal = AuthUser> {
    fn auth(&self) -> &AuthService;
}

impl HasAuth for AuthService {
    fn auth(&self) -> &AuthService {
        self
    }
}
