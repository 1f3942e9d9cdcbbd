//! `auth.me` and `auth.updateProfile`: the caller's own account.

use garde::Validate;
use gatehouse::{Ctx, ErrorCode, Guard, Kind, NoInput, Procedure, Rest, Role};
use serde::Deserialize;
use ts_rs::TS;

use super::signin::user_conflict;
use crate::error::AuthError;
use crate::events::{self, AccountEvent};
use crate::service::HasAuth;
use crate::types::{UserDetails, double_option};
use crate::users;
use crate::validate::{self, phone_value, username_value};

/// The caller's own account.
#[derive(schemars::JsonSchema)]
pub struct Me;

impl<S: HasAuth> Procedure<S> for Me {
    const PATH: &'static str = "me";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Role(Role::Viewer);
    const REST: Option<Rest> = Some(Rest::get("/user/profile"));
    type Input = NoInput;
    type Output = UserDetails;
    type Error = AuthError;

    async fn call(ctx: Ctx<S>, _: NoInput) -> Result<UserDetails, AuthError> {
        // Read in the same query that authenticated the call.
        Ok(UserDetails::from(&ctx.principal()?.user))
    }
}

/// `auth.updateProfile` input: absent fields are left alone; `phone: null`
/// clears the phone number, `username: null` the username.
#[derive(Debug, Deserialize, TS, Validate, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateProfileInput {
    #[serde(default)]
    #[ts(optional)]
    #[garde(custom(validate::optional_name))]
    #[schemars(length(min = 1, max = crate::validate::MAX_NAME_CHARS))]
    pub first_name: Option<String>,
    #[serde(default)]
    #[ts(optional)]
    #[garde(custom(validate::optional_name))]
    #[schemars(length(min = 1, max = crate::validate::MAX_NAME_CHARS))]
    pub last_name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[ts(optional)]
    #[garde(custom(validate::phone_change))]
    #[schemars(length(max = crate::validate::MAX_PHONE_CHARS))]
    pub phone: Option<Option<String>>,
    // Absent leaves it; `null` or blank clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[ts(optional)]
    #[garde(custom(validate::username_change))]
    #[schemars(length(min = crate::validate::MIN_USERNAME_CHARS, max = crate::validate::MAX_USERNAME_CHARS), regex(pattern = crate::validate::USERNAME_PATTERN))]
    pub username: Option<Option<String>>,
}

/// Updates the caller's names, phone number and username.
#[derive(schemars::JsonSchema)]
pub struct UpdateProfile;

impl<S: HasAuth> Procedure<S> for UpdateProfile {
    const PATH: &'static str = "updateProfile";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Role(Role::Viewer);
    const REST: Option<Rest> = Some(Rest::put("/user/profile"));
    type Input = UpdateProfileInput;
    type Output = UserDetails;
    type Error = AuthError;
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::Conflict];

    async fn call(ctx: Ctx<S>, input: UpdateProfileInput) -> Result<UserDetails, AuthError> {
        let me = ctx.principal()?.clone();
        validate::check(&input)?;
        let first_name = input.first_name.as_deref().map(|v| v.trim().to_owned());
        let last_name = input.last_name.as_deref().map(|v| v.trim().to_owned());
        let phone = input.phone.as_ref().map(|p| phone_value(p.as_deref()));
        let username = input
            .username
            .as_ref()
            .map(|u| username_value(u.as_deref()));

        let svc = ctx.service.auth();
        let changes = users::ProfileChanges {
            first_name,
            last_name,
            phone,
            username,
        };
        let txn = svc.begin_event_txn().await?;
        let user = users::update_profile(&txn, me.user.clone(), changes)
            .await
            .map_err(user_conflict)?;
        let details = UserDetails::from(&user);
        let event = AccountEvent::ProfileUpdated {
            user: details.clone(),
        };
        events::record(&txn, &user.id, &event).await?;
        txn.commit().await?;
        Ok(details)
    }
}
