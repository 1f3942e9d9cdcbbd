//! `auth.events`: the caller's account events as they happen, over
//! server-sent events (see `docs/api.md#authevents`).

use gatehouse::{Ctx, ErrorCode, EventStream, Guard, Role, Subscription};
use serde::Deserialize;
use ts_rs::TS;

use crate::error::AuthError;
use crate::events::AccountEvent;
use crate::events::latest_id;
use crate::events::stream::{Subscriber, account_events};
use crate::service::HasAuth;

/// `auth.events` input; may be left out. `lastEventId` is filled in by the
/// client (and from `Last-Event-ID`) when it reconnects.
#[derive(Debug, Default, Deserialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", from = "Option<EventsFields>")]
pub struct EventsInput {
    #[ts(optional)]
    pub last_event_id: Option<String>,
}

/// The wire form of [`EventsInput`] when an object is sent.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct EventsFields {
    last_event_id: Option<String>,
}

impl From<Option<EventsFields>> for EventsInput {
    fn from(fields: Option<EventsFields>) -> Self {
        Self {
            last_event_id: fields.unwrap_or_default().last_event_id,
        }
    }
}

/// The caller's session and account events: its own session revoked
/// (then the stream ends with UNAUTHORIZED), its role changed, its profile
/// updated. Each carries an id; reconnecting with the last one resumes.
/// The stream also ends with UNAUTHORIZED when the token expires: refresh
/// it, then subscribe again from the last id.
// (The framework ends it, at `Principal::expires_at` of `AuthUser`.)
#[derive(schemars::JsonSchema)]
pub struct Events;

impl<S: HasAuth> Subscription<S> for Events {
    const PATH: &'static str = "events";
    const GUARD: Guard = Guard::Role(Role::Viewer);
    const TRACKED: bool = true;
    type Input = EventsInput;
    type Output = AccountEvent;
    type Error = AuthError;
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::BadRequest];

    async fn subscribe(
        ctx: Ctx<S>,
        input: EventsInput,
    ) -> Result<EventStream<AccountEvent, AuthError>, AuthError> {
        let me = ctx.principal()?.clone();
        let svc = ctx.service.auth();
        svc.db_up()?;
        // Listen first, then decide where to start, so nothing committed
        // in between is missed.
        let wake = svc.events().subscribe();
        let after = match input.last_event_id.as_deref() {
            Some(id) => id
                .trim()
                .parse::<i64>()
                .map_err(|_| AuthError::InvalidEventId)?,
            None => latest_id(&svc.db, Some(&me.user_id)).await?,
        };
        // The session may have ended after the guard read it; its event
        // would then be before `after`.
        if !svc.session_is_live(&me.session_id).await? {
            return Err(AuthError::SessionRevoked);
        }
        Ok(account_events(
            svc.db.clone(),
            wake,
            Subscriber {
                user_id: me.user_id,
                session_id: me.session_id,
                after,
            },
        ))
    }
}
