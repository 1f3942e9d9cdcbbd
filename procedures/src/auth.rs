//! The `auth.*` procedures.

use std::time::Duration;

use gatehouse::{Ctx, Guard, Kind, NoInput, Procedure, Role, RpcError, True};
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use ts_rs::TS;
use uuid::Uuid;

use crate::db::{begin_write, fetch_unique, is_unique_violation, now_ms, rfc3339, sql};
use crate::entities::{password_reset, session, user};
use crate::error::AuthError;
use crate::limits;
use crate::mail::password_reset_mail;
use crate::service::AuthService;
use crate::types::{
    AuthPayload, LogoutResult, SessionInfo, Success, UserDetails, double_option, parse_role,
};
use crate::validate::{Issues, normalize_email};

/// Reset tokens are valid this long.
const RESET_TOKEN_TTL_MS: i64 = 60 * 60 * 1000;
/// bcrypt never sees more than this; longer passwords are refused, not cut.
const MAX_PASSWORD_BYTES: usize = 72;

type Ctx_ = Ctx<AuthService>;

/// Shorthand for turning a domain error into the wire error.
fn rpc(e: AuthError) -> RpcError {
    e.into()
}

/// SHA-256 hex of a reset token: only the digest is stored, so a database
/// leak does not hand out usable reset links.
pub(crate) fn hash_reset_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn client_ip_string(ctx: &Ctx_) -> String {
    ctx.service
        .client_ip(&ctx.request)
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

/// Stores a new password hash and voids every pending reset token of the
/// user: a password set by any route makes older reset mails useless.
async fn store_password(
    txn: &impl ConnectionTrait,
    user_id: &str,
    hash: String,
    now: i64,
) -> Result<(), AuthError> {
    let backend = txn.get_database_backend();
    txn.execute_raw(sql(
        backend,
        "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3",
        vec![hash.into(), now.into(), user_id.into()],
    ))
    .await?;
    txn.execute_raw(sql(
        backend,
        "UPDATE password_resets SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL",
        vec![now.into(), user_id.into()],
    ))
    .await?;
    Ok(())
}

// ---------------------------------------------------------------- register

/// `auth.register` input. The email is trimmed and lower-cased; every
/// failing field is reported at once in `error.data.issues`.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RegisterInput {
    // Required fields are `Option` so that a missing one is reported together
    // with every other failing field (serde would stop at the first).
    #[serde(default)]
    #[ts(type = "string")]
    pub email: Option<String>,
    #[serde(default)]
    #[ts(type = "string")]
    pub password: Option<String>,
    #[serde(default)]
    #[ts(type = "string")]
    pub first_name: Option<String>,
    #[serde(default)]
    #[ts(type = "string")]
    pub last_name: Option<String>,
    #[serde(default)]
    #[ts(optional)]
    pub phone: Option<String>,
}

/// Validates a phone number field: blank means none.
fn phone_field(issues: &mut Issues, value: Option<&str>) -> Option<String> {
    let v = value.map(str::trim).filter(|v| !v.is_empty())?;
    if v.chars().count() > 32 {
        issues.add("phone", "Too long");
        return None;
    }
    Some(v.to_owned())
}

/// Creates a VIEWER account and opens its first session.
pub struct Register;

impl Procedure<AuthService> for Register {
    const PATH: &'static str = "register";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Public;
    type Input = RegisterInput;
    type Output = AuthPayload;

    async fn call(ctx: Ctx_, input: RegisterInput) -> Result<AuthPayload, RpcError> {
        let mut issues = Issues::new();
        let email = issues.email("email", input.email.as_deref());
        let password = issues.new_password("password", input.password.as_deref());
        let first_name = issues.required_name("firstName", input.first_name.as_deref());
        let last_name = issues.required_name("lastName", input.last_name.as_deref());
        let phone = phone_field(&mut issues, input.phone.as_deref());
        issues.finish()?;

        let svc = &ctx.service;
        svc.db_up()?;
        let hash = svc.hasher.hash(&password).await.map_err(AuthError::from)?;
        let now = now_ms();
        let model = user::ActiveModel {
            id: Set(Uuid::now_v7().to_string()),
            email: Set(email),
            password_hash: Set(hash),
            first_name: Set(first_name),
            last_name: Set(last_name),
            phone: Set(phone),
            role: Set(Role::Viewer.as_str().to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
        };
        let txn = begin_write(&svc.db).await.map_err(AuthError::from)?;
        let user = match model.insert(&txn).await {
            Ok(u) => u,
            Err(e) if is_unique_violation(&e) => return Err(rpc(AuthError::EmailTaken)),
            Err(e) => return Err(rpc(e.into())),
        };
        let (sid, generation) = svc.open_session(&txn, &user.id, &ctx.request).await?;
        txn.commit().await.map_err(|e| {
            if is_unique_violation(&e) {
                AuthError::EmailTaken
            } else {
                e.into()
            }
        })?;
        tracing::info!(target: "audit", event = "register", user_id = %user.id,
            session_id = %sid, request_id = %ctx.request.request_id);
        Ok(svc.issue(&user, &sid, &generation)?)
    }
}

// ---------------------------------------------------------------- login

/// `auth.login` input.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct LoginInput {
    #[serde(default)]
    #[ts(type = "string")]
    pub email: Option<String>,
    #[serde(default)]
    #[ts(type = "string")]
    pub password: Option<String>,
}

/// Checks a password, with per-account and per-address throttling.
pub struct Login;

impl Login {
    /// Counts a failure against the account and the address, and slows the
    /// answer down a little once failures pile up.
    async fn record_failure(
        ctx: &Ctx_,
        account_key: &str,
        ip_key: &str,
        user_id: Option<&str>,
    ) -> Result<(), AuthError> {
        let svc = &ctx.service;
        let now = now_ms();
        let window_ms =
            i64::try_from(svc.settings.login_window.saturating_mul(1000)).unwrap_or(i64::MAX / 4);
        let account = limits::hit(
            &svc.db,
            account_key,
            i64::from(svc.settings.login_max_failures),
            window_ms,
            now,
        )
        .await?;
        limits::hit(
            &svc.db,
            ip_key,
            i64::from(svc.settings.ip_max_failures),
            window_ms,
            now,
        )
        .await?;
        tracing::warn!(target: "audit", event = "login.failure", user_id = user_id.unwrap_or(""),
            failures = account.count, ip = %client_ip_string(ctx), request_id = %ctx.request.request_id);
        if account.count > 3 {
            let steps = u64::try_from((account.count - 3).min(10)).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(50 * steps)).await;
        }
        Ok(())
    }
}

impl Procedure<AuthService> for Login {
    const PATH: &'static str = "login";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Public;
    type Input = LoginInput;
    type Output = AuthPayload;

    async fn call(ctx: Ctx_, input: LoginInput) -> Result<AuthPayload, RpcError> {
        let mut issues = Issues::new();
        if input.email.is_none() {
            issues.add("email", "Required");
        }
        if input.password.is_none() {
            issues.add("password", "Required");
        }
        issues.finish()?;
        let email = normalize_email(input.email.as_deref().unwrap_or_default());
        let password = input.password.unwrap_or_default();
        let svc = &ctx.service;
        svc.db_up()?;

        let account_key = format!("login:account:{email}");
        let ip_key = format!("login:ip:{}", client_ip_string(&ctx));
        if let Some(retry_after) = limits::locked_for(&svc.db, &[&account_key, &ip_key], now_ms())
            .await
            .map_err(AuthError::from)?
        {
            tracing::warn!(target: "audit", event = "login.throttled", ip = %client_ip_string(&ctx),
                request_id = %ctx.request.request_id);
            return Err(rpc(AuthError::Throttled { retry_after }));
        }

        let user = svc.find_user_by_email(&email).await?;
        let Some(user) = user.filter(|_| password.len() <= MAX_PASSWORD_BYTES) else {
            // Same work and the same answer as a wrong password.
            svc.hasher.verify_dummy(&password).await;
            Login::record_failure(&ctx, &account_key, &ip_key, None).await?;
            return Err(rpc(AuthError::InvalidCredentials));
        };
        let verdict = svc
            .hasher
            .verify(&password, &user.password_hash)
            .await
            .map_err(AuthError::from)?;
        if !verdict.matches {
            Login::record_failure(&ctx, &account_key, &ip_key, Some(&user.id)).await?;
            return Err(rpc(AuthError::InvalidCredentials));
        }
        limits::clear(&svc.db, &account_key)
            .await
            .map_err(AuthError::from)?;

        if verdict.needs_rehash {
            match svc.hasher.hash(&password).await {
                Ok(hash) => {
                    let res = svc
                        .db
                        .execute_raw(sql(
                            svc.db.get_database_backend(),
                            "UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3",
                            vec![hash.into(), user.id.clone().into(), user.password_hash.clone().into()],
                        ))
                        .await;
                    if let Err(e) = res {
                        tracing::warn!(error = %e, user_id = %user.id, "could not store re-hashed password");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, user_id = %user.id, "could not re-hash password")
                }
            }
        }

        let (sid, generation) = svc.open_session(&svc.db, &user.id, &ctx.request).await?;
        tracing::info!(target: "audit", event = "login.success", user_id = %user.id,
            session_id = %sid, ip = %client_ip_string(&ctx), request_id = %ctx.request.request_id);
        Ok(svc.issue(&user, &sid, &generation)?)
    }
}

// ---------------------------------------------------------------- me

/// The caller's own account.
pub struct Me;

impl Procedure<AuthService> for Me {
    const PATH: &'static str = "me";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Role(Role::Viewer);
    type Input = NoInput;
    type Output = UserDetails;

    async fn call(ctx: Ctx_, _: NoInput) -> Result<UserDetails, RpcError> {
        // Read in the same query that authenticated the call.
        Ok(UserDetails::try_from(&ctx.principal()?.user)?)
    }
}

// ---------------------------------------------------------------- refresh

/// Rotates the bearer token inside its session. Public as far as the guard
/// goes: it reads the token itself because an expired one is accepted within
/// the session's absolute refresh window.
pub struct RefreshToken;

impl Procedure<AuthService> for RefreshToken {
    const PATH: &'static str = "refreshToken";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Public;
    type Input = NoInput;
    type Output = AuthPayload;

    async fn call(ctx: Ctx_, _: NoInput) -> Result<AuthPayload, RpcError> {
        let svc = &ctx.service;
        let token = ctx.request.bearer_token().ok_or(AuthError::InvalidToken)?;
        svc.db_up()?;
        let claims = svc.keys.verify_allow_expired(token).map_err(|e| {
            tracing::debug!(error = %e, "refresh token refused");
            AuthError::InvalidToken
        })?;
        let now = now_ms();
        let session = fetch_unique(session::Entity::find_by_id(claims.sid.clone()), &svc.db)
            .await
            .map_err(AuthError::from)?
            .ok_or(AuthError::SessionRevoked)?;
        if session.revoked_at.is_some() || session.user_id != claims.sub || now > session.expires_at
        {
            return Err(rpc(AuthError::SessionRevoked));
        }
        let user = svc
            .find_user(&svc.db, &claims.sub)
            .await?
            .ok_or(AuthError::SessionRevoked)?;
        if parse_role(&user.role)? != claims.role {
            return Err(rpc(AuthError::SessionRevoked));
        }
        let generation = crate::token::generation(&claims.jti);

        let mut current = session;
        if current.current_jti == generation {
            let new_generation = Uuid::new_v4().simple().to_string();
            let txn = begin_write(&svc.db).await.map_err(AuthError::from)?;
            let res = txn
                .execute_raw(sql(
                    txn.get_database_backend(),
                    "UPDATE sessions SET previous_jti = current_jti, current_jti = $1, \
                     rotated_at = $2, last_used_at = $2 \
                     WHERE id = $3 AND current_jti = $4 AND revoked_at IS NULL",
                    vec![
                        new_generation.clone().into(),
                        now.into(),
                        current.id.clone().into(),
                        generation.to_owned().into(),
                    ],
                ))
                .await
                .map_err(AuthError::from)?;
            if res.rows_affected() == 1 {
                crate::rotation::retire(&txn, &current.id, generation, now)
                    .await
                    .map_err(AuthError::from)?;
                txn.commit().await.map_err(AuthError::from)?;
                tracing::info!(target: "audit", event = "token.refresh", user_id = %user.id,
                    session_id = %current.id, request_id = %ctx.request.request_id);
                return Ok(svc.issue(&user, &current.id, &new_generation)?);
            }
            drop(txn);
            // Lost a race with a parallel refresh: look again.
            current = fetch_unique(session::Entity::find_by_id(claims.sid.clone()), &svc.db)
                .await
                .map_err(AuthError::from)?
                .ok_or(AuthError::SessionRevoked)?;
            if current.revoked_at.is_some() {
                return Err(rpc(AuthError::SessionRevoked));
            }
        }
        if svc
            .in_grace(
                &current.id,
                generation,
                current.previous_jti.as_deref(),
                current.rotated_at,
                now,
            )
            .await?
        {
            // A parallel refresh (another tab) already rotated: hand out a
            // token of the session's current generation rather than logging
            // the user out.
            return Ok(svc.issue(&user, &current.id, &current.current_jti)?);
        }
        // A rotated token presented after its grace: assume it was stolen.
        svc.db
            .execute_raw(sql(
                svc.db.get_database_backend(),
                "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                vec![now.into(), current.id.clone().into()],
            ))
            .await
            .map_err(AuthError::from)?;
        tracing::warn!(target: "audit", event = "token.reuse_detected", user_id = %user.id,
            session_id = %current.id, ip = %client_ip_string(&ctx), request_id = %ctx.request.request_id);
        Err(rpc(AuthError::SessionRevoked))
    }
}

// ---------------------------------------------------------------- logout

/// Ends the bearer token's session, if any. Without a token, or with one
/// that does not verify, there is nothing to end and it answers success; with
/// a valid token it answers success only once the session's revocation is
/// committed, and an error (so the client knows the token may still work)
/// when it could not be.
pub struct Logout;

impl Procedure<AuthService> for Logout {
    const PATH: &'static str = "logout";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Public;
    type Input = NoInput;
    type Output = LogoutResult;

    async fn call(ctx: Ctx_, _: NoInput) -> Result<LogoutResult, RpcError> {
        let svc = &ctx.service;
        if let Some(claims) = ctx
            .request
            .bearer_token()
            .and_then(|t| svc.keys.verify_allow_expired(t).ok())
        {
            svc.db_up()?;
            svc.db
                .execute_raw(sql(
                    svc.db.get_database_backend(),
                    "UPDATE sessions SET revoked_at = $1 \
                     WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
                    vec![
                        now_ms().into(),
                        claims.sid.clone().into(),
                        claims.sub.clone().into(),
                    ],
                ))
                .await
                .map_err(AuthError::from)?;
            tracing::info!(target: "audit", event = "logout", user_id = %claims.sub,
                session_id = %claims.sid, request_id = %ctx.request.request_id);
        }
        Ok(LogoutResult { success: true })
    }
}

// ---------------------------------------------------------------- reset

/// `auth.requestPasswordReset` input.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RequestPasswordResetInput {
    #[serde(default)]
    #[ts(type = "string")]
    pub email: Option<String>,
}

/// Mails a single-use reset token to an existing account; answers the same,
/// in the same time, whether or not the account exists.
pub struct RequestPasswordReset;

impl RequestPasswordReset {
    /// Stores the token and queues its mail in one transaction; the worker
    /// sends it after the answer. For an unknown address (or one that hit
    /// its limit) the same work is done short of the two inserts: a token is
    /// drawn, the mail rendered, and a write transaction bumps the address's
    /// counter, so the answer takes the same time either way.
    async fn run(svc: &AuthService, email: &str, request_id: &str) -> Result<(), AuthError> {
        let user = svc.find_user_by_email(email).await?;
        let now = now_ms();
        let window_ms =
            i64::try_from(svc.settings.login_window.saturating_mul(1000)).unwrap_or(i64::MAX / 4);
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let token = hex::encode(raw);
        let to = user.as_ref().map_or(email, |u| u.email.as_str());
        let mail = password_reset_mail(to, &svc.settings.reset_url, &token);

        let txn = begin_write(&svc.db).await?;
        let hit = limits::hit(&txn, &format!("reset:{email}"), i64::MAX, window_ms, now).await?;
        let within_limit = hit.count <= i64::from(svc.settings.reset_mails_per_window);
        let queued = match &user {
            Some(user) if within_limit => {
                password_reset::ActiveModel {
                    id: Set(Uuid::new_v4().to_string()),
                    user_id: Set(user.id.clone()),
                    token_hash: Set(hash_reset_token(&token)),
                    created_at: Set(now),
                    expires_at: Set(now + RESET_TOKEN_TTL_MS),
                    used_at: Set(None),
                }
                .insert(&txn)
                .await?;
                svc.outbox.enqueue(&txn, &mail, now).await?;
                true
            }
            _ => false,
        };
        txn.commit().await?;
        match &user {
            Some(user) if queued => {
                svc.outbox.wake();
                tracing::info!(target: "audit", event = "reset.requested", user_id = %user.id, request_id);
            }
            Some(user) => {
                tracing::warn!(target: "audit", event = "reset.throttled", user_id = %user.id, request_id);
            }
            None => {
                tracing::info!(target: "audit", event = "reset.requested_unknown", request_id);
            }
        }
        Ok(())
    }
}

impl Procedure<AuthService> for RequestPasswordReset {
    const PATH: &'static str = "requestPasswordReset";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Public;
    type Input = RequestPasswordResetInput;
    type Output = Success;

    async fn call(ctx: Ctx_, input: RequestPasswordResetInput) -> Result<Success, RpcError> {
        let mut issues = Issues::new();
        let email = issues.email("email", input.email.as_deref());
        issues.finish()?;
        // `success` means the token and its mail are committed (the outbox
        // worker sends it shortly). A failure is an error, the same one for
        // known and unknown addresses: the account lookup is the first query,
        // so an unreachable database fails there either way.
        ctx.service.db_up()?;
        RequestPasswordReset::run(&ctx.service, &email, &ctx.request.request_id).await?;
        Ok(Success::default())
    }
}

/// `auth.resetPassword` input.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ResetPasswordInput {
    #[serde(default)]
    #[ts(type = "string")]
    pub email: Option<String>,
    #[serde(default)]
    #[ts(type = "string")]
    pub token: Option<String>,
    #[serde(default)]
    #[ts(type = "string")]
    pub password: Option<String>,
}

/// Sets a new password with a mailed token; ends every session.
pub struct ResetPassword;

impl Procedure<AuthService> for ResetPassword {
    const PATH: &'static str = "resetPassword";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Public;
    type Input = ResetPasswordInput;
    type Output = Success;

    async fn call(ctx: Ctx_, input: ResetPasswordInput) -> Result<Success, RpcError> {
        let mut issues = Issues::new();
        let email = issues.email("email", input.email.as_deref());
        let token = input
            .token
            .as_deref()
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        if input.token.is_none() {
            issues.add("token", "Required");
        } else if token.is_empty() {
            issues.add("token", "Must not be empty");
        }
        let password = issues.new_password("password", input.password.as_deref());
        issues.finish()?;

        let svc = &ctx.service;
        svc.db_up()?;
        let user = svc
            .find_user_by_email(&email)
            .await?
            .ok_or(AuthError::InvalidResetToken)?;
        let hash = svc.hasher.hash(&password).await.map_err(AuthError::from)?;
        let now = now_ms();
        let txn = begin_write(&svc.db).await.map_err(AuthError::from)?;
        let backend = txn.get_database_backend();
        // Consumed atomically: of two concurrent uses only one matches.
        let consumed = txn
            .execute_raw(sql(
                backend,
                "UPDATE password_resets SET used_at = $1 \
                 WHERE token_hash = $2 AND user_id = $3 AND used_at IS NULL AND expires_at > $1",
                vec![
                    now.into(),
                    hash_reset_token(&token).into(),
                    user.id.clone().into(),
                ],
            ))
            .await
            .map_err(AuthError::from)?;
        if consumed.rows_affected() != 1 {
            return Err(rpc(AuthError::InvalidResetToken));
        }
        store_password(&txn, &user.id, hash, now).await?;
        svc.revoke_sessions(&txn, &user.id, None).await?;
        limits::clear(&txn, &format!("login:account:{email}"))
            .await
            .map_err(AuthError::from)?;
        txn.commit().await.map_err(AuthError::from)?;
        tracing::info!(target: "audit", event = "reset.completed", user_id = %user.id,
            request_id = %ctx.request.request_id);
        Ok(Success::default())
    }
}

// ---------------------------------------------------------------- change password

/// `auth.changePassword` input.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ChangePasswordInput {
    #[serde(default)]
    #[ts(type = "string")]
    pub current_password: Option<String>,
    #[serde(default)]
    #[ts(type = "string")]
    pub new_password: Option<String>,
}

/// Changes the caller's password; other sessions end, this one gets a new
/// token.
pub struct ChangePassword;

impl Procedure<AuthService> for ChangePassword {
    const PATH: &'static str = "changePassword";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Role(Role::Viewer);
    type Input = ChangePasswordInput;
    type Output = AuthPayload;

    async fn call(ctx: Ctx_, input: ChangePasswordInput) -> Result<AuthPayload, RpcError> {
        let me = ctx.principal()?.clone();
        let mut issues = Issues::new();
        if input.current_password.is_none() {
            issues.add("currentPassword", "Required");
        }
        let new_password = issues.new_password("newPassword", input.new_password.as_deref());
        issues.finish()?;
        let current = input.current_password.unwrap_or_default();

        let svc = &ctx.service;
        let user = me.user.clone();
        let ok = current.len() <= MAX_PASSWORD_BYTES
            && svc
                .hasher
                .verify(&current, &user.password_hash)
                .await
                .map_err(AuthError::from)?
                .matches;
        if !ok {
            tracing::warn!(target: "audit", event = "password.change_failed", user_id = %user.id,
                request_id = %ctx.request.request_id);
            return Err(rpc(AuthError::WrongCurrentPassword));
        }
        let hash = svc
            .hasher
            .hash(&new_password)
            .await
            .map_err(AuthError::from)?;
        let now = now_ms();
        let new_generation = Uuid::new_v4().simple().to_string();
        let txn = begin_write(&svc.db).await.map_err(AuthError::from)?;
        let backend = txn.get_database_backend();
        store_password(&txn, &user.id, hash, now).await?;
        svc.revoke_sessions(&txn, &user.id, Some(&me.session_id))
            .await?;
        // The presented token stops working too; only the new one is valid.
        let rotated = txn
            .execute_raw(sql(
                backend,
                "UPDATE sessions SET current_jti = $1, previous_jti = NULL, rotated_at = $2, \
                 last_used_at = $2 WHERE id = $3 AND revoked_at IS NULL",
                vec![
                    new_generation.clone().into(),
                    now.into(),
                    me.session_id.clone().into(),
                ],
            ))
            .await
            .map_err(AuthError::from)?;
        if rotated.rows_affected() != 1 {
            return Err(rpc(AuthError::SessionRevoked));
        }
        // Tokens of generations refreshed away moments ago end too.
        crate::rotation::forget(&txn, &me.session_id)
            .await
            .map_err(AuthError::from)?;
        txn.commit().await.map_err(AuthError::from)?;
        tracing::info!(target: "audit", event = "password.changed", user_id = %user.id,
            session_id = %me.session_id, request_id = %ctx.request.request_id);
        Ok(svc.issue(&user, &me.session_id, &new_generation)?)
    }
}

// ---------------------------------------------------------------- profile

/// `auth.updateProfile` input: absent fields are left alone; `phone: null`
/// clears the phone number.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct UpdateProfileInput {
    #[serde(default)]
    #[ts(optional)]
    pub first_name: Option<String>,
    #[serde(default)]
    #[ts(optional)]
    pub last_name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[ts(optional)]
    pub phone: Option<Option<String>>,
}

/// Updates the caller's names and phone number.
pub struct UpdateProfile;

impl Procedure<AuthService> for UpdateProfile {
    const PATH: &'static str = "updateProfile";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Role(Role::Viewer);
    type Input = UpdateProfileInput;
    type Output = UserDetails;

    async fn call(ctx: Ctx_, input: UpdateProfileInput) -> Result<UserDetails, RpcError> {
        let me = ctx.principal()?.clone();
        let mut issues = Issues::new();
        let first_name = input
            .first_name
            .as_deref()
            .map(|v| issues.required_name("firstName", Some(v)));
        let last_name = input
            .last_name
            .as_deref()
            .map(|v| issues.required_name("lastName", Some(v)));
        let phone = input
            .phone
            .as_ref()
            .map(|p| phone_field(&mut issues, p.as_deref()));
        issues.finish()?;

        let svc = &ctx.service;
        let user = me.user.clone();
        let mut model: user::ActiveModel = user.into();
        if let Some(v) = first_name {
            model.first_name = Set(v);
        }
        if let Some(v) = last_name {
            model.last_name = Set(v);
        }
        if let Some(v) = phone {
            model.phone = Set(v);
        }
        model.updated_at = Set(now_ms());
        let user = model.update(&svc.db).await.map_err(AuthError::from)?;
        Ok(UserDetails::try_from(&user)?)
    }
}

// ---------------------------------------------------------------- sessions

/// The caller's live sessions, newest first.
pub struct Sessions;

impl Procedure<AuthService> for Sessions {
    const PATH: &'static str = "sessions";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Role(Role::Viewer);
    type Input = NoInput;
    type Output = Vec<SessionInfo>;

    async fn call(ctx: Ctx_, _: NoInput) -> Result<Vec<SessionInfo>, RpcError> {
        let me = ctx.principal()?;
        let svc = &ctx.service;
        let ttl_ms = i64::try_from(svc.keys.ttl.saturating_mul(1000)).unwrap_or(i64::MAX / 4);
        let horizon = now_ms().saturating_sub(ttl_ms);
        let rows = session::Entity::find()
            .filter(session::Column::UserId.eq(me.user_id.clone()))
            .filter(session::Column::RevokedAt.is_null())
            .filter(session::Column::ExpiresAt.gt(horizon))
            .order_by_desc(session::Column::CreatedAt)
            .all(&svc.db)
            .await
            .map_err(AuthError::from)?;
        Ok(rows
            .into_iter()
            .map(|s| SessionInfo {
                current: s.id == me.session_id,
                id: s.id,
                created_at: rfc3339(s.created_at),
                last_used_at: rfc3339(s.last_used_at),
                user_agent: s.user_agent,
                ip: s.ip,
            })
            .collect())
    }
}

/// `auth.revokeSession` input.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RevokeSessionInput {
    #[serde(default)]
    #[ts(type = "string")]
    pub id: Option<String>,
}

/// Ends one of the caller's sessions.
pub struct RevokeSession;

impl Procedure<AuthService> for RevokeSession {
    const PATH: &'static str = "revokeSession";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Role(Role::Viewer);
    type Input = RevokeSessionInput;
    type Output = Success;

    async fn call(ctx: Ctx_, input: RevokeSessionInput) -> Result<Success, RpcError> {
        let me = ctx.principal()?;
        let mut issues = Issues::new();
        let id = issues.required_name("id", input.id.as_deref());
        issues.finish()?;
        let svc = &ctx.service;
        let res = svc
            .db
            .execute_raw(sql(
                svc.db.get_database_backend(),
                "UPDATE sessions SET revoked_at = $1 \
                 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
                vec![
                    now_ms().into(),
                    id.clone().into(),
                    me.user_id.clone().into(),
                ],
            ))
            .await
            .map_err(AuthError::from)?;
        if res.rows_affected() == 0 {
            return Err(rpc(AuthError::SessionNotFound));
        }
        tracing::info!(target: "audit", event = "session.revoked", user_id = %me.user_id,
            session_id = %id, request_id = %ctx.request.request_id);
        Ok(Success::default())
    }
}

/// Ends every session of the caller, the current one included.
pub struct LogoutAll;

impl Procedure<AuthService> for LogoutAll {
    const PATH: &'static str = "logoutAll";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Role(Role::Viewer);
    type Input = NoInput;
    type Output = Success;

    async fn call(ctx: Ctx_, _: NoInput) -> Result<Success, RpcError> {
        let me = ctx.principal()?;
        let n = ctx
            .service
            .revoke_sessions(&ctx.service.db, &me.user_id, None)
            .await?;
        tracing::info!(target: "audit", event = "logout.all", user_id = %me.user_id,
            sessions = n, request_id = %ctx.request.request_id);
        Ok(Success { success: True })
    }
}
