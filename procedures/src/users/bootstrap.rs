//! The first administrator, from `GATEHOUSE_ADMIN_EMAIL` and
//! `GATEHOUSE_ADMIN_PASSWORD`, created at start when no ADMIN exists.

use gatehouse::Role;

use super::new::{CreateUserError, NewAccount, NewUser};
use super::store;
use crate::entities::user::{self, StoredRole};
use crate::service::AuthService;

/// Creates the first ADMIN from `GATEHOUSE_ADMIN_EMAIL`/`_PASSWORD` when no
/// ADMIN exists yet.
///
/// An account that already has that email is promoted only if its password
/// is `GATEHOUSE_ADMIN_PASSWORD`. Anyone else's account is never taken over:
/// with open registration, whoever registered the address before the
/// operator's first start chose its password, and promoting it would make
/// them ADMIN; and a mistyped address would hand the operator a real user's
/// account. The start is refused instead
/// ([`CreateUserError::AdminEmailTaken`]), naming the way out.
pub(crate) async fn bootstrap_admin(
    service: &AuthService,
    email: &str,
    password: &str,
) -> Result<(), CreateUserError> {
    let db = service.db();
    if store::admin_exists(db).await? {
        return Ok(());
    }
    let admin = NewUser {
        email,
        password,
        first_name: "Admin",
        last_name: "User",
        role: Role::Admin,
        username: None,
    };
    let account = NewAccount::checked_allowing_common_password(admin.input(), Role::Admin)
        .map_err(CreateUserError::Invalid)?;
    let normalized = account.email.clone();
    if let Some(existing) = store::find_by_email(db, &normalized).await? {
        return promote_own_account(service, existing, password).await;
    }
    let u = match account.insert(db, &service.hasher).await {
        // Another instance starting at the same time created it first, or
        // a registration took the address a moment ago: judged as above.
        Err(CreateUserError::Exists) => {
            return match store::find_by_email(db, &normalized).await? {
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
    if existing.role == StoredRole::Admin {
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
    if !store::promote_if_hash_unchanged(service.db(), &existing.id, &existing.password_hash)
        .await?
    {
        return Err(taken());
    }
    tracing::warn!(target: "audit", event = "admin.bootstrap_promoted", user_id = existing.id.as_str(),
        "no ADMIN existed; promoted the existing GATEHOUSE_ADMIN_EMAIL account, whose password is GATEHOUSE_ADMIN_PASSWORD");
    Ok(())
}
