//! `auth.refreshToken`, `auth.logout`, `auth.logoutAll`, `auth.sessions`
//! and `auth.revokeSession`: what a client does with its tokens and
//! sessions. The rules they follow are [`crate::sessions`]'.

use garde::Validate;
use gatehouse::{Bearer, Ctx, ErrorCode, Guard, Kind, NoInput, Procedure, Rest, Role, True};
use serde::Deserialize;
use ts_rs::TS;

use super::ClientAddr;
use crate::db::{now_ms, rfc3339};
use crate::error::AuthError;
use crate::events::RevokeReason;
use crate::service::{HasAuth, TokenSource};
use crate::sessions;
use crate::token::TokenKeys;
use crate::types::{AuthPayload, LogoutResult, SessionInfo, Success, text};
use crate::validate;

/// Rotates the bearer token (else the session cookie's) inside its
/// session. Public as far as the guard goes: it reads the token itself
/// because an expired one is accepted within the session's absolute refresh
/// window.
#[derive(schemars::JsonSchema)]
pub struct RefreshToken;

impl<S: HasAuth> Procedure<S> for RefreshToken {
    const PATH: &'static str = "refreshToken";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Public;
    const REST: Option<Rest> = Some(Rest::post("/auth/refresh"));
    type Input = NoInput;
    type Output = AuthPayload;
    type Error = AuthError;
    // FORBIDDEN: the session cookie sent from an origin not allowed.
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::Unauthorized, ErrorCode::Forbidden];
    const BEARER: Bearer = Bearer::Required;

    async fn call(ctx: Ctx<S>, _: NoInput) -> Result<AuthPayload, AuthError> {
        let svc = ctx.service.auth();
        let (token, source) = svc
            .request_token(&ctx.request)?
            .ok_or(AuthError::InvalidToken)?;
        // Refreshed by cookie, answered by cookie.
        let cookie = source == TokenSource::Cookie || svc.settings.cookies.wanted(&ctx.request)?;
        svc.db_up()?;
        let claims = svc
            .verify_token(token, TokenKeys::verify_allow_expired)
            .await
            .map_err(|e| {
                tracing::debug!(error = %e, "refresh token refused");
                AuthError::InvalidToken
            })?;
        let now = now_ms();
        let presented = sessions::Presented::new(&claims.sub, claims.role, &claims.jti);
        let sessions::Valid { session, user, .. } = svc
            .token_session(&claims.sid, presented, now, sessions::Purpose::Refresh)
            .await?;
        let generation = presented.generation;
        let sid = session.id.clone();
        let grace = svc.settings.refresh_grace_ms;
        match sessions::refresh(&svc.db, svc.events_hub(), grace, session, generation, now).await? {
            sessions::Refresh::Rotated(next) => {
                tracing::info!(target: "audit", event = "token.refresh", user_id = user.id.as_str(),
                    session_id = sid.as_str(), request_id = ctx.request.request_id.as_str());
                let payload = svc.issue(&user, &sid, &next)?;
                Ok(svc.deliver(&ctx.request, cookie, payload))
            }
            // Another tab refreshed first: its generation, not a logout.
            sessions::Refresh::AlreadyRotated(current) => {
                let payload = svc.issue(&user, &sid, &current)?;
                Ok(svc.deliver(&ctx.request, cookie, payload))
            }
            sessions::Refresh::Reused => {
                tracing::warn!(target: "audit", event = "token.reuse_detected", user_id = user.id.as_str(),
                    session_id = sid.as_str(), ip = ClientAddr::of(&ctx).as_str(), request_id = ctx.request.request_id.as_str());
                Err(AuthError::SessionRevoked)
            }
            sessions::Refresh::Revoked => Err(AuthError::SessionRevoked),
        }
    }
}

/// Ends the session of the bearer token (else of the session cookie,
/// which it also clears), if any. Without a token, or with one that does
/// not verify, there is nothing to end and it answers success; with
/// a valid token it answers success only once the session's revocation is
/// committed, and an error (so the client knows the token may still work)
/// when it could not be.
#[derive(schemars::JsonSchema)]
pub struct Logout;

impl<S: HasAuth> Procedure<S> for Logout {
    const PATH: &'static str = "logout";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Public;
    const REST: Option<Rest> = Some(Rest::post("/auth/logout"));
    type Input = NoInput;
    type Output = LogoutResult;
    type Error = AuthError;
    // FORBIDDEN: the session cookie sent from an origin not allowed.
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::Forbidden];
    const BEARER: Bearer = Bearer::Optional;

    async fn call(ctx: Ctx<S>, _: NoInput) -> Result<LogoutResult, AuthError> {
        let svc = ctx.service.auth();
        let token = svc.request_token(&ctx.request)?.map(|(token, _)| token);
        let cookies = &svc.settings.cookies;
        if cookies.token(&ctx.request).is_some() || cookies.wanted(&ctx.request)? {
            cookies.clear(&ctx.request);
        }
        let claims = match token {
            Some(t) => svc
                .verify_token(t, TokenKeys::verify_allow_expired)
                .await
                .ok(),
            None => None,
        };
        if let Some(claims) = claims {
            svc.db_up()?;
            let reason = RevokeReason::Logout;
            let txn = svc.begin_event_txn().await?;
            sessions::revoke(&txn, &claims.sid, Some(&claims.sub), now_ms(), reason).await?;
            txn.commit().await?;
            tracing::info!(target: "audit", event = "logout", user_id = claims.sub.as_str(),
                session_id = claims.sid.as_str(), request_id = ctx.request.request_id.as_str());
        }
        Ok(LogoutResult { success: true })
    }
}

/// The caller's live sessions, newest first.
#[derive(schemars::JsonSchema)]
pub struct Sessions;

impl<S: HasAuth> Procedure<S> for Sessions {
    const PATH: &'static str = "sessions";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Role(Role::Viewer);
    const REST: Option<Rest> = Some(Rest::get("/user/sessions"));
    type Input = NoInput;
    type Output = Vec<SessionInfo>;
    type Error = AuthError;

    async fn call(ctx: Ctx<S>, _: NoInput) -> Result<Vec<SessionInfo>, AuthError> {
        let me = ctx.principal()?;
        let svc = ctx.service.auth();
        let ttl_ms = i64::try_from(svc.keys.ttl.saturating_mul(1000)).unwrap_or(i64::MAX / 4);
        let horizon = now_ms().saturating_sub(ttl_ms);
        let rows = sessions::live(&svc.db, &me.user_id, horizon).await?;
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
#[derive(Debug, Deserialize, TS, Validate, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::types::text_fields_required)]
pub struct RevokeSessionInput {
    #[serde(default, deserialize_with = "text")]
    #[garde(custom(validate::name))]
    #[schemars(length(min = 1, max = crate::validate::MAX_NAME_CHARS))]
    pub id: String,
}

/// Ends one of the caller's sessions.
#[derive(schemars::JsonSchema)]
pub struct RevokeSession;

impl<S: HasAuth> Procedure<S> for RevokeSession {
    const PATH: &'static str = "revokeSession";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Role(Role::Viewer);
    const REST: Option<Rest> = Some(Rest::delete("/user/sessions/{id}"));
    type Input = RevokeSessionInput;
    type Output = Success;
    type Error = AuthError;
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::NotFound];

    async fn call(ctx: Ctx<S>, input: RevokeSessionInput) -> Result<Success, AuthError> {
        let me = ctx.principal()?;
        validate::check(&input)?;
        let id = input.id.trim();
        let txn = ctx.service.auth().begin_event_txn().await?;
        let reason = RevokeReason::Revoked;
        let revoked = sessions::revoke(&txn, id, Some(&me.user_id), now_ms(), reason).await?;
        txn.commit().await?;
        if !revoked {
            return Err(AuthError::SessionNotFound);
        }
        tracing::info!(target: "audit", event = "session.revoked", user_id = me.user_id.as_str(),
            session_id = id, request_id = ctx.request.request_id.as_str());
        Ok(Success::default())
    }
}

/// Ends every session of the caller, the current one included.
#[derive(schemars::JsonSchema)]
pub struct LogoutAll;

impl<S: HasAuth> Procedure<S> for LogoutAll {
    const PATH: &'static str = "logoutAll";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Role(Role::Viewer);
    const REST: Option<Rest> = Some(Rest::post("/auth/logout-all"));
    type Input = NoInput;
    type Output = Success;
    type Error = AuthError;

    async fn call(ctx: Ctx<S>, _: NoInput) -> Result<Success, AuthError> {
        let me = ctx.principal()?;
        let svc = ctx.service.auth();
        let txn = svc.begin_event_txn().await?;
        let n = svc
            .revoke_sessions(&txn, &me.user_id, None, RevokeReason::LogoutAll)
            .await?;
        txn.commit().await?;
        tracing::info!(target: "audit", event = "logout.all", user_id = me.user_id.as_str(),
            sessions = n, request_id = ctx.request.request_id.as_str());
        Ok(Success { success: True })
    }
}
