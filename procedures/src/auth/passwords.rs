//! `auth.requestPasswordReset`, `auth.resetPassword` and
//! `auth.changePassword`: setting a password, by mailed token or by the
//! current one.

use garde::Validate;
use gatehouse::{Ctx, ErrorCode, Guard, Kind, Procedure, Rest, Role};
use rand::RngCore;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use ts_rs::TS;
use uuid::Uuid;

use super::{ClientAddr, FailureCounters, MAX_PASSWORD_BYTES, account_key, slow_down};
use crate::db::{begin_write, now_ms};
use crate::entities::password_reset;
use crate::error::AuthError;
use crate::events::RevokeReason;
use crate::limits;
use crate::mail::password_reset_mail;
use crate::service::{AuthService, HasAuth};
use crate::sessions;
use crate::types::{AuthPayload, Success, text};
use crate::users;
use crate::validate;

/// Reset tokens are valid this long.
const RESET_TOKEN_TTL_MS: i64 = 60 * 60 * 1000;

/// SHA-256 hex of a reset token: only the digest is stored, so a database
/// leak does not hand out usable reset links.
fn hash_reset_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Stores a new password hash and voids every pending reset token of the
/// user: a password set by any route makes older reset mails useless.
async fn store_password(
    txn: &impl ConnectionTrait,
    user_id: &str,
    hash: String,
    now: i64,
) -> Result<(), AuthError> {
    users::set_password_hash(txn, user_id, hash, now).await?;
    password_reset::Entity::update_many()
        .col_expr(password_reset::Column::UsedAt, Expr::value(now))
        .filter(password_reset::Column::UserId.eq(user_id))
        .filter(password_reset::Column::UsedAt.is_null())
        .exec(txn)
        .await?;
    Ok(())
}

/// `auth.requestPasswordReset` input.
#[derive(Debug, Deserialize, TS, Validate, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::types::text_fields_required)]
pub struct RequestPasswordResetInput {
    #[serde(default, deserialize_with = "text")]
    #[garde(custom(validate::email))]
    #[schemars(email)]
    pub email: String,
}

/// Mails a single-use reset token to an existing account; answers the same,
/// in the same time, whether or not the account exists.
#[derive(schemars::JsonSchema)]
pub struct RequestPasswordReset;

impl RequestPasswordReset {
    /// Stores the token and queues its mail in one transaction; the worker
    /// sends it after the answer. For an unknown address (or one that hit
    /// its limit) the same work is done short of the two inserts: a token is
    /// drawn, the mail rendered, and a write transaction bumps the address's
    /// counter, so the answer takes the same time either way.
    async fn run(svc: &AuthService, email: &str, request_id: &str) -> Result<(), AuthError> {
        let user = users::find_by_email(&svc.db, email).await?;
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
                tracing::info!(target: "audit", event = "reset.requested", user_id = user.id.as_str(), request_id);
            }
            Some(user) => {
                tracing::warn!(target: "audit", event = "reset.throttled", user_id = user.id.as_str(), request_id);
            }
            None => {
                tracing::info!(target: "audit", event = "reset.requested_unknown", request_id);
            }
        }
        Ok(())
    }
}

impl<S: HasAuth> Procedure<S> for RequestPasswordReset {
    const PATH: &'static str = "requestPasswordReset";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Public;
    const REST: Option<Rest> = Some(Rest::post("/auth/reset-password"));
    type Input = RequestPasswordResetInput;
    type Output = Success;
    type Error = AuthError;

    async fn call(ctx: Ctx<S>, input: RequestPasswordResetInput) -> Result<Success, AuthError> {
        validate::check(&input)?;
        let email = validate::email_value("email", &input.email)?;
        // `success` means the token and its mail are committed (the outbox
        // worker sends it shortly). A failure is an error, the same one for
        // known and unknown addresses: the account lookup is the first query,
        // so an unreachable database fails there either way.
        ctx.service.auth().db_up()?;
        RequestPasswordReset::run(ctx.service.auth(), &email, &ctx.request.request_id).await?;
        Ok(Success::default())
    }
}

/// `auth.resetPassword` input.
#[derive(Debug, Deserialize, TS, Validate, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::types::text_fields_required)]
pub struct ResetPasswordInput {
    #[serde(default, deserialize_with = "text")]
    #[garde(custom(validate::email))]
    #[schemars(email)]
    pub email: String,
    #[serde(default, deserialize_with = "text")]
    #[garde(custom(validate::not_blank))]
    #[schemars(length(min = 1))]
    pub token: String,
    #[serde(default, deserialize_with = "text")]
    #[garde(custom(validate::new_password))]
    #[schemars(length(min = crate::password::MIN_PASSWORD_CHARS, max = crate::password::MAX_PASSWORD_BYTES))]
    pub password: String,
}

/// Sets a new password with a mailed token; ends every session.
#[derive(schemars::JsonSchema)]
pub struct ResetPassword;

impl<S: HasAuth> Procedure<S> for ResetPassword {
    const PATH: &'static str = "resetPassword";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Public;
    const REST: Option<Rest> = Some(Rest::put("/auth/reset-password"));
    type Input = ResetPasswordInput;
    type Output = Success;
    type Error = AuthError;

    async fn call(ctx: Ctx<S>, input: ResetPasswordInput) -> Result<Success, AuthError> {
        validate::check(&input)?;
        let email = validate::email_value("email", &input.email)?;
        let token = input.token.trim();
        let password = input.password;

        let svc = ctx.service.auth();
        svc.db_up()?;
        let user = users::find_by_email(&svc.db, &email)
            .await?
            .ok_or(AuthError::InvalidResetToken)?;
        let hash = svc.hasher.hash(&password).await?;
        let now = now_ms();
        let txn = svc.begin_event_txn().await?;
        // Consumed atomically: of two concurrent uses only one matches.
        let consumed = password_reset::Entity::update_many()
            .col_expr(password_reset::Column::UsedAt, Expr::value(now))
            .filter(password_reset::Column::TokenHash.eq(hash_reset_token(token)))
            .filter(password_reset::Column::UserId.eq(user.id.clone()))
            .filter(password_reset::Column::UsedAt.is_null())
            .filter(password_reset::Column::ExpiresAt.gt(now))
            .exec(&txn)
            .await?;
        if consumed.rows_affected != 1 {
            return Err(AuthError::InvalidResetToken);
        }
        store_password(&txn, &user.id, hash, now).await?;
        svc.revoke_sessions(&txn, &user.id, None, RevokeReason::PasswordReset)
            .await?;
        limits::clear(&txn, &account_key(&user.email)).await?;
        txn.commit().await?;
        tracing::info!(target: "audit", event = "reset.completed", user_id = user.id.as_str(),
            request_id = ctx.request.request_id.as_str());
        Ok(Success::default())
    }
}

/// `auth.changePassword` input.
#[derive(Debug, Deserialize, TS, Validate, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::types::text_fields_required)]
pub struct ChangePasswordInput {
    #[serde(default, deserialize_with = "text")]
    #[garde(custom(validate::required))]
    #[schemars(length(min = 1))]
    pub current_password: String,
    #[serde(default, deserialize_with = "text")]
    #[garde(custom(validate::new_password))]
    #[schemars(length(min = crate::password::MIN_PASSWORD_CHARS, max = crate::password::MAX_PASSWORD_BYTES))]
    pub new_password: String,
}

/// Changes the caller's password; other sessions end, this one gets a new
/// token.
///
/// A wrong current password counts as a failed login of the account and
/// the address, and a locked account is refused before the password is
/// checked, so a stolen token cannot guess the password faster than
/// `auth.login` may.
#[derive(schemars::JsonSchema)]
pub struct ChangePassword;

impl<S: HasAuth> Procedure<S> for ChangePassword {
    const PATH: &'static str = "changePassword";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Role(Role::Viewer);
    const REST: Option<Rest> = Some(Rest::put("/user/password"));
    type Input = ChangePasswordInput;
    type Output = AuthPayload;
    type Error = AuthError;
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::Unauthorized, ErrorCode::TooManyRequests];

    async fn call(ctx: Ctx<S>, input: ChangePasswordInput) -> Result<AuthPayload, AuthError> {
        let me = ctx.principal()?.clone();
        validate::check(&input)?;
        let current = input.current_password;
        let new_password = input.new_password;

        let svc = ctx.service.auth();
        let user = me.user.clone();
        let counters = FailureCounters::of_email(&ClientAddr::of(&ctx), &user.email);
        if let Some(retry_after) = counters.locked_for(svc).await? {
            tracing::warn!(target: "audit", event = "password.change_throttled", user_id = user.id.as_str(),
                request_id = ctx.request.request_id.as_str());
            return Err(AuthError::Throttled { retry_after });
        }
        let ok = current.len() <= MAX_PASSWORD_BYTES
            && svc
                .hasher
                .verify(&current, &user.password_hash)
                .await?
                .matches;
        if !ok {
            let failures = counters.count_failure(svc).await?.count;
            tracing::warn!(target: "audit", event = "password.change_failed", user_id = user.id.as_str(),
                request_id = ctx.request.request_id.as_str());
            slow_down(failures).await;
            return Err(AuthError::WrongCurrentPassword);
        }
        counters.succeeded(svc).await?;
        let hash = svc.hasher.hash(&new_password).await?;
        let now = now_ms();
        let txn = svc.begin_event_txn().await?;
        store_password(&txn, &user.id, hash, now).await?;
        svc.revoke_sessions(
            &txn,
            &user.id,
            Some(&me.session_id),
            RevokeReason::PasswordChanged,
        )
        .await?;
        // The presented token stops working too, and so do tokens of
        // generations refreshed away moments ago: only the new one is valid.
        let new_generation = sessions::restart(&txn, &me.session_id, now)
            .await?
            .ok_or(AuthError::SessionRevoked)?;
        txn.commit().await?;
        tracing::info!(target: "audit", event = "password.changed", user_id = user.id.as_str(),
            session_id = me.session_id.as_str(), request_id = ctx.request.request_id.as_str());
        svc.issue(&user, &me.session_id, &new_generation)
    }
}
