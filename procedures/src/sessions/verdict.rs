//! Whether a token still works in its session: the verdicts every use of a
//! token shares, in one place, so that a guarded call's authenticator and
//! `auth.refreshToken` cannot drift apart on what ends a session.
//!
//! The two uses differ only where their nature makes them: a guarded call
//! needs a token whose generation still works (see the module docs of
//! [`super`]), while a refresh accepts an expired token within the
//! session's absolute refresh window and leaves the generation to
//! [`super::refresh`], which acts on it (rotates, or revokes on reuse).

use gatehouse::Role;
use sea_orm::ConnectionTrait;

use super::read::{SessionRow, SessionUser};
use crate::entities::user;
use crate::error::AuthError;

/// What a token says about itself, as far as its session is concerned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Presented<'a> {
    /// The token's `sub`.
    pub subject: &'a str,
    /// The token's `role`, which must still be the user's.
    pub role: Role,
    /// The token's generation ([`crate::token::generation`] of its `jti`).
    pub generation: &'a str,
}

impl<'a> Presented<'a> {
    /// A token's `sub`, `role` and `jti`.
    pub(crate) fn new(subject: &'a str, role: Role, jti: &'a str) -> Self {
        Self {
            subject,
            role,
            generation: crate::token::generation(jti),
        }
    }
}

/// What a token is presented for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A guarded call: the token's generation must be the session's
    /// current one, or one rotated away at most `grace_ms` ago.
    Call { grace_ms: i64 },
    /// `auth.refreshToken`: the session's refresh window must not be over;
    /// the generation is [`super::refresh`]'s to judge.
    Refresh,
}

/// A token that works: its session and user as read, and the user's role.
#[derive(Debug)]
pub(crate) struct Valid {
    pub session: SessionRow,
    pub user: user::Model,
    pub role: Role,
}

/// Why a token does not work, in the order [`validate`] looks.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("no such session")]
    NoSession,
    #[error("the session is revoked")]
    Revoked,
    #[error("the session belongs to another user")]
    OtherSubject,
    #[error("the session's refresh window is over")]
    WindowOver,
    #[error("the token's generation no longer works")]
    StaleGeneration,
    #[error("the user no longer exists")]
    UserGone,
    #[error("the user's role changed since the token was issued")]
    RoleChanged,
    /// Not a verdict: the database failed, or holds a role we cannot read.
    #[error(transparent)]
    Failed(#[from] AuthError),
}

impl Refusal {
    /// What the client is told: that its session ended (log in again) for
    /// every verdict, except a deleted user on a guarded call, which is
    /// `UserNotFound` (the authenticator's declared `NOT_FOUND`); a refresh
    /// does not tell a deleted account apart from an ended session.
    pub(crate) fn into_error(self, purpose: Purpose) -> AuthError {
        match self {
            Self::Failed(error) => error,
            Self::UserGone if matches!(purpose, Purpose::Call { .. }) => AuthError::UserNotFound,
            _ => AuthError::SessionRevoked,
        }
    }
}

/// Judges a token `presented` for `purpose` against its session and user
/// as read (`found`, `None` when there is no such session) at `now`.
///
/// The order is part of the contract, since a token can fail several ways
/// at once and the first decides the answer: the session (missing, revoked,
/// another subject's, past its refresh window on a refresh), then, on a
/// guarded call, the generation (which may cost a query, so only for a
/// live session), then the user (gone, role changed).
pub(crate) async fn validate(
    db: &impl ConnectionTrait,
    found: Option<SessionUser>,
    presented: Presented<'_>,
    now: i64,
    purpose: Purpose,
) -> Result<Valid, Refusal> {
    let Some((session, user)) = found else {
        return Err(Refusal::NoSession);
    };
    if session.revoked_at.is_some() {
        return Err(Refusal::Revoked);
    }
    if session.user_id != presented.subject {
        return Err(Refusal::OtherSubject);
    }
    match purpose {
        Purpose::Call { grace_ms } => {
            let works = super::generation_works(db, grace_ms, &session, presented.generation, now)
                .await
                .map_err(AuthError::from)?;
            if !works {
                return Err(Refusal::StaleGeneration);
            }
        }
        Purpose::Refresh => {
            if now > session.expires_at {
                return Err(Refusal::WindowOver);
            }
        }
    }
    let Some(user) = user else {
        return Err(Refusal::UserGone);
    };
    let role = Role::from(user.role);
    if role != presented.role {
        return Err(Refusal::RoleChanged);
    }
    Ok(Valid {
        session,
        user,
        role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live session `s1` of `u1` in generation `g1`, whose refresh window
    /// ends at 1000, and its viewer.
    fn found() -> SessionUser {
        let session = SessionRow {
            id: "s1".into(),
            user_id: "u1".into(),
            current_jti: "g1".into(),
            previous_jti: None,
            rotated_at: None,
            last_used_at: 0,
            revoked_at: None,
            expires_at: 1000,
        };
        let user = user::Model {
            id: "u1".into(),
            email: "a@example.com".into(),
            password_hash: "h".into(),
            first_name: "A".into(),
            last_name: "B".into(),
            phone: None,
            role: user::StoredRole::Viewer,
            created_at: 0,
            updated_at: 0,
            username: None,
        };
        (session, Some(user))
    }

    /// Each case breaks more than one rule, so that it also pins which
    /// verdict comes first; a zero grace decides generations without a
    /// query.
    #[tokio::test]
    async fn verdicts_come_in_their_order_and_reach_the_client_as_before() {
        let db = crate::db::connect("sqlite::memory:").await.expect("db");
        const CALL: Purpose = Purpose::Call { grace_ms: 0 };
        const REFRESH: Purpose = Purpose::Refresh;
        let token = Presented::new("u1", Role::Viewer, "g1.x");
        let stale = Presented::new("u1", Role::Viewer, "g0.x");
        let admin = Presented::new("u1", Role::Admin, "g1.x");
        let other = Presented::new("u2", Role::Admin, "g0.x");
        let revoked = || {
            let (mut s, u) = found();
            s.revoked_at = Some(1);
            Some((s, u))
        };
        let no_user = || Some((found().0, None));
        let cases: Vec<(Option<SessionUser>, Presented<'_>, i64, Purpose, &str)> = vec![
            (None, token, 0, CALL, "no such session"),
            (revoked(), other, 2000, REFRESH, "the session is revoked"),
            (Some(found()), other, 2000, REFRESH, "the session belongs"),
            (Some(found()), stale, 2000, REFRESH, "the session's refresh"),
            (no_user(), stale, 2000, CALL, "the token's generation"),
            (no_user(), stale, 0, REFRESH, "the user no longer"),
            (Some(found()), admin, 0, CALL, "the user's role changed"),
        ];
        for (found, presented, now, purpose, why) in cases {
            let refusal = validate(&db, found, presented, now, purpose)
                .await
                .expect_err(why);
            assert!(refusal.to_string().contains(why), "{refusal} is not {why}");
        }
        // A window past its end does not stop a guarded call: the token's
        // own expiry does.
        let valid = validate(&db, Some(found()), token, 2000, CALL)
            .await
            .expect("valid");
        assert_eq!(
            (valid.session.id.as_str(), valid.role),
            ("s1", Role::Viewer)
        );

        let told = |refusal: Refusal, purpose| refusal.into_error(purpose).to_string();
        assert_eq!(told(Refusal::UserGone, CALL), "User not found");
        assert_eq!(
            told(Refusal::UserGone, REFRESH),
            "Session expired or revoked"
        );
        assert_eq!(
            told(Refusal::StaleGeneration, CALL),
            "Session expired or revoked"
        );
        assert_eq!(
            told(Refusal::RoleChanged, REFRESH),
            "Session expired or revoked"
        );
    }
}
