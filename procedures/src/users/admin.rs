//! The `users.*` procedures (ADMIN only).

use gatehouse::{Ctx, ErrorCode, Guard, Kind, Procedure, Rest, Role};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::store;
use crate::entities::user::{self, StoredRole};
use crate::error::AuthError;
use crate::events::{self, AccountEvent, EventTxn, RevokeReason};
use crate::service::{AuthService, HasAuth};
use crate::sessions;
use crate::types::{Success, UserDetails};
use crate::validate;
use garde::Validate;

/// `users.list` input; every field optional, and the whole input may be
/// left out (`undefined`/`null` mean "all defaults").
#[derive(Debug, Default, Deserialize, TS, Validate, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", from = "Option<ListUsersFields>")]
pub struct ListUsersInput {
    #[ts(optional, type = "number")]
    #[garde(custom(validate::page))]
    pub page: Option<i64>,
    #[ts(optional, type = "number")]
    #[garde(custom(validate::page_size))]
    pub page_size: Option<i64>,
    #[ts(optional)]
    #[garde(skip)]
    pub role: Option<Role>,
    #[ts(optional)]
    #[garde(skip)]
    pub search: Option<String>,
}

/// The wire form of [`ListUsersInput`] when an object is sent.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ListUsersFields {
    #[schemars(range(min = 1))]
    page: Option<i64>,
    #[schemars(range(min = 1, max = 100))]
    page_size: Option<i64>,
    role: Option<Role>,
    search: Option<String>,
}

impl From<Option<ListUsersFields>> for ListUsersInput {
    fn from(f: Option<ListUsersFields>) -> Self {
        let f = f.unwrap_or_default();
        Self {
            page: f.page,
            page_size: f.page_size,
            role: f.role,
            search: f.search,
        }
    }
}

/// One page of users.
#[derive(Debug, Serialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListUsersOutput {
    pub items: Vec<UserDetails>,
    #[ts(type = "number")]
    pub total: u64,
    #[ts(type = "number")]
    pub page: u64,
    #[ts(type = "number")]
    pub page_size: u64,
}

/// Escapes `%`, `_` and the escape character itself for a LIKE pattern.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A search term in the form emails and usernames are stored in, so that
/// what finds an account at registration (a fullwidth letter, a Unicode
/// domain) finds it here too: a whole address as
/// [`validate::normalize_email`] stores it, anything else folded (NFKC)
/// and lower-cased.
fn search_form(search: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    validate::normalize_email(search)
        .ok()
        .filter(|email| validate::is_valid_email(email))
        .unwrap_or_else(|| search.nfkc().collect::<String>().to_lowercase())
}

/// Lists users, optionally filtered by role and a search over email, names
/// and username (case-insensitive), oldest first.
#[derive(schemars::JsonSchema)]
pub struct ListUsers;

impl<S: HasAuth> Procedure<S> for ListUsers {
    const PATH: &'static str = "list";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Role(Role::Admin);
    const REST: Option<Rest> = Some(Rest::get("/users"));
    type Input = ListUsersInput;
    type Output = ListUsersOutput;
    type Error = AuthError;

    async fn call(ctx: Ctx<S>, input: ListUsersInput) -> Result<ListUsersOutput, AuthError> {
        validate::check(&input)?;
        let page = u64::try_from(input.page.unwrap_or(1)).unwrap_or(1);
        let page_size = u64::try_from(input.page_size.unwrap_or(20)).unwrap_or(20);

        let mut query = user::Entity::find();
        if let Some(role) = input.role {
            query = query.filter(user::Column::Role.eq(StoredRole::from(role)));
        }
        if let Some(search) = input
            .search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let pattern = format!("%{}%", like_escape(&search_form(search)));
            let like = |col: user::Column| {
                Expr::expr(Func::lower(Expr::col(col)))
                    .like(LikeExpr::new(pattern.clone()).escape('\\'))
            };
            query = query.filter(
                Condition::any()
                    .add(like(user::Column::Email))
                    .add(like(user::Column::FirstName))
                    .add(like(user::Column::LastName))
                    .add(like(user::Column::Username)),
            );
        }
        let db = &ctx.service.auth().db;
        let paginator = query
            .order_by_asc(user::Column::CreatedAt)
            .order_by_asc(user::Column::Id)
            .paginate(db, page_size);
        let total = paginator.num_items().await?;
        // A page past the end is empty; deciding that here keeps a huge page
        // number from overflowing the offset the paginator computes.
        let past_end = (page - 1)
            .checked_mul(page_size)
            .is_none_or(|offset| offset >= total);
        let rows = if past_end {
            Vec::new()
        } else {
            paginator.fetch_page(page - 1).await?
        };
        let items = rows.iter().map(UserDetails::from).collect();
        Ok(ListUsersOutput {
            items,
            total,
            page,
            page_size,
        })
    }
}

/// Starts a transaction that changes user `id` and may remove an ADMIN:
/// the admin rows are locked first (see [`lock_admins`]), then the target
/// is loaded; an unknown id is NOT_FOUND.
async fn begin_admin_change<'a>(
    svc: &'a AuthService,
    id: &str,
) -> Result<(EventTxn<'a>, user::Model), AuthError> {
    let txn = svc.begin_event_txn().await?;
    store::lock_admins(&txn).await?;
    let target = store::find_by_id(&txn, id)
        .await?
        .ok_or(AuthError::UserNotFound)?;
    Ok((txn, target))
}

/// `users.setRole` input.
#[derive(Debug, Deserialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetRoleInput {
    pub id: String,
    pub role: Role,
}

/// Changes a user's role; the user's sessions end so the new role takes
/// effect at once.
#[derive(schemars::JsonSchema)]
pub struct SetRole;

impl<S: HasAuth> Procedure<S> for SetRole {
    const PATH: &'static str = "setRole";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Role(Role::Admin);
    const REST: Option<Rest> = Some(Rest::put("/users/{id}/role"));
    type Input = SetRoleInput;
    type Output = UserDetails;
    type Error = AuthError;
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::NotFound, ErrorCode::PreconditionFailed];

    async fn call(ctx: Ctx<S>, input: SetRoleInput) -> Result<UserDetails, AuthError> {
        let me = ctx.principal()?.clone();
        let svc = ctx.service.auth();
        let (txn, target) = begin_admin_change(svc, &input.id).await?;
        let old_role = Role::from(target.role);
        if old_role == input.role {
            txn.commit().await?;
            return Ok(UserDetails::from(&target));
        }
        if old_role == Role::Admin && store::admin_count(&txn).await? <= 1 {
            return Err(AuthError::LastAdmin);
        }
        let updated = store::set_role(&txn, target, input.role).await?;
        let changed = AccountEvent::RoleChanged { role: input.role };
        events::record(&txn, &updated.id, &changed).await?;
        svc.revoke_sessions(&txn, &updated.id, None, RevokeReason::RoleChanged)
            .await?;
        txn.commit().await?;
        tracing::info!(target: "audit", event = "user.role_changed", user_id = updated.id.as_str(),
            actor_id = me.user_id.as_str(), from = old_role.as_str(), to = input.role.as_str(),
            request_id = ctx.request.request_id.as_str());
        Ok(UserDetails::from(&updated))
    }
}

/// `users.delete` input.
#[derive(Debug, Deserialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteUserInput {
    pub id: String,
}

/// Deletes a user; its tokens stop working at once.
#[derive(schemars::JsonSchema)]
pub struct DeleteUser;

impl<S: HasAuth> Procedure<S> for DeleteUser {
    const PATH: &'static str = "delete";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Role(Role::Admin);
    const REST: Option<Rest> = Some(Rest::delete("/users/{id}"));
    type Input = DeleteUserInput;
    type Output = Success;
    type Error = AuthError;
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::NotFound, ErrorCode::PreconditionFailed];

    async fn call(ctx: Ctx<S>, input: DeleteUserInput) -> Result<Success, AuthError> {
        let me = ctx.principal()?.clone();
        let svc = ctx.service.auth();
        let (txn, target) = begin_admin_change(svc, &input.id).await?;
        if target.role == StoredRole::Admin && store::admin_count(&txn).await? <= 1 {
            return Err(AuthError::LastAdmin);
        }
        // The sessions stay as they are (a token of a deleted user answers
        // NOT_FOUND, not UNAUTHORIZED); their subscribers hear they ended.
        sessions::announce_end(&txn, &target.id, RevokeReason::Deleted).await?;
        store::delete(&txn, &target.id).await?;
        txn.commit().await?;
        tracing::info!(target: "audit", event = "user.deleted", user_id = target.id.as_str(),
            actor_id = me.user_id.as_str(), request_id = ctx.request.request_id.as_str());
        Ok(Success::default())
    }
}
