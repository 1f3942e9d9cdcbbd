//! Reads and writes of the `users` table, each written once. Callers pass
//! the connection or transaction to run on, so a change and what goes with
//! it (an event, revoked sessions) commit together.

use gatehouse::Role;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    DbBackend, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
};

use crate::db::{fetch_unique, now_ms};
use crate::entities::password_reset;
use crate::entities::user::{self, StoredRole};

/// The user with this id.
pub(crate) async fn find_by_id(
    db: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<user::Model>, DbErr> {
    fetch_unique(user::Entity::find_by_id(id.to_owned()), db).await
}

/// The user with this email (already normalised, see
/// [`crate::validate::normalize_email`]).
pub(crate) async fn find_by_email(
    db: &impl ConnectionTrait,
    email: &str,
) -> Result<Option<user::Model>, DbErr> {
    fetch_unique(
        user::Entity::find().filter(user::Column::Email.eq(email)),
        db,
    )
    .await
}

/// The user with this username (already normalised, lower case).
pub(crate) async fn find_by_username(
    db: &impl ConnectionTrait,
    username: &str,
) -> Result<Option<user::Model>, DbErr> {
    let select = user::Entity::find().filter(user::Column::Username.eq(username));
    fetch_unique(select, db).await
}

/// How many ADMINs there are.
pub(crate) async fn admin_count(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    user::Entity::find()
        .filter(user::Column::Role.eq(StoredRole::Admin))
        .count(db)
        .await
}

/// Whether any ADMIN exists.
pub(crate) async fn admin_exists(db: &impl ConnectionTrait) -> Result<bool, DbErr> {
    Ok(admin_count(db).await? > 0)
}

/// Serialises changes that could remove the last ADMIN: on PostgreSQL it
/// locks every ADMIN row, so two admins demoting each other cannot both see
/// "another admin remains". SQLite's `BEGIN IMMEDIATE` already serialises
/// all writers.
pub(crate) async fn lock_admins(txn: &DatabaseTransaction) -> Result<(), DbErr> {
    if txn.get_database_backend() == DbBackend::Postgres {
        user::Entity::find()
            .filter(user::Column::Role.eq(StoredRole::Admin))
            .lock_exclusive()
            .all(txn)
            .await?;
    }
    Ok(())
}

/// Inserts a new row. A unique violation (email or username) comes back
/// as the database's error; [`super::new`] tells which it was.
pub(crate) async fn insert(
    db: &impl ConnectionTrait,
    row: user::ActiveModel,
) -> Result<user::Model, DbErr> {
    row.insert(db).await
}

/// The profile fields a user may change themselves; `None` leaves a field
/// as it is (values already trimmed and normalised).
#[derive(Debug, Default)]
pub(crate) struct ProfileChanges {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<Option<String>>,
    pub username: Option<Option<String>>,
}

/// Applies `changes` to `user`. A username someone else has is the
/// database's unique violation.
pub(crate) async fn update_profile(
    txn: &impl ConnectionTrait,
    user: user::Model,
    changes: ProfileChanges,
) -> Result<user::Model, DbErr> {
    let mut model: user::ActiveModel = user.into();
    if let Some(v) = changes.first_name {
        model.first_name = Set(v);
    }
    if let Some(v) = changes.last_name {
        model.last_name = Set(v);
    }
    if let Some(v) = changes.phone {
        model.phone = Set(v);
    }
    if let Some(v) = changes.username {
        model.username = Set(v);
    }
    model.updated_at = Set(now_ms());
    model.update(txn).await
}

/// Gives `user` the role `role`.
pub(crate) async fn set_role(
    txn: &impl ConnectionTrait,
    user: user::Model,
    role: Role,
) -> Result<user::Model, DbErr> {
    let mut model: user::ActiveModel = user.into();
    model.role = Set(role.into());
    model.updated_at = Set(now_ms());
    model.update(txn).await
}

/// Makes user `id` an ADMIN only while its password hash is still `hash`
/// (the one its owner was just proven to know); whether it did.
pub(crate) async fn promote_if_hash_unchanged(
    db: &impl ConnectionTrait,
    id: &str,
    hash: &str,
) -> Result<bool, DbErr> {
    let promoted = user::Entity::update_many()
        .col_expr(user::Column::Role, Expr::value(StoredRole::Admin))
        .col_expr(user::Column::UpdatedAt, Expr::value(now_ms()))
        .filter(user::Column::Id.eq(id))
        .filter(user::Column::PasswordHash.eq(hash))
        .exec(db)
        .await?;
    Ok(promoted.rows_affected == 1)
}

/// Stores a new password hash for user `id` (a change or a reset).
pub(crate) async fn set_password_hash(
    db: &impl ConnectionTrait,
    id: &str,
    hash: String,
    now: i64,
) -> Result<(), DbErr> {
    user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(hash))
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Replaces user `id`'s hash `old` by `new` (the same password at the
/// current cost), unless it changed meanwhile; whether it did.
pub(crate) async fn upgrade_password_hash(
    db: &impl ConnectionTrait,
    id: &str,
    old: &str,
    new: String,
) -> Result<bool, DbErr> {
    let res = user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(new))
        .filter(user::Column::Id.eq(id))
        .filter(user::Column::PasswordHash.eq(old))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Rewrites user `id`'s email to `normalized` while it still holds
/// `stored`; whether it did. A clash with another row is the database's
/// unique violation.
pub(crate) async fn rewrite_email(
    db: &impl ConnectionTrait,
    id: &str,
    stored: &str,
    normalized: &str,
) -> Result<bool, DbErr> {
    let result = user::Entity::update_many()
        .col_expr(user::Column::Email, Expr::value(normalized))
        .col_expr(user::Column::UpdatedAt, Expr::value(now_ms()))
        .filter(user::Column::Id.eq(id))
        .filter(user::Column::Email.eq(stored))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Deletes user `id` and its password-reset tokens. Its sessions stay (a
/// token of a deleted user answers NOT_FOUND, not UNAUTHORIZED).
pub(crate) async fn delete(txn: &impl ConnectionTrait, id: &str) -> Result<(), DbErr> {
    password_reset::Entity::delete_many()
        .filter(password_reset::Column::UserId.eq(id))
        .exec(txn)
        .await?;
    user::Entity::delete_by_id(id.to_owned()).exec(txn).await?;
    Ok(())
}
