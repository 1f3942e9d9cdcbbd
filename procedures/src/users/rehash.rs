//! Bringing a stored hash up to the configured bcrypt cost.

use sea_orm::ConnectionTrait;

use super::store;
use crate::entities::user;
use crate::password::PasswordHasher;

/// Re-hashes `password` (just proven to be `user`'s) at the hasher's cost
/// and stores it, unless another route changed the password meanwhile. A
/// failure is logged, not answered: the login it came with has succeeded,
/// and the next one tries again.
pub(crate) async fn upgrade_password(
    db: &impl ConnectionTrait,
    hasher: &PasswordHasher,
    user: &user::Model,
    password: &str,
) {
    let hash = match hasher.hash(password).await {
        Ok(hash) => hash,
        Err(e) => {
            tracing::warn!(error = %e, user_id = user.id.as_str(), "could not re-hash password");
            return;
        }
    };
    if let Err(e) = store::upgrade_password_hash(db, &user.id, &user.password_hash, hash).await {
        tracing::warn!(error = %e, user_id = user.id.as_str(), "could not store re-hashed password");
    }
}
