//! Creating an account, by whichever door: `auth.register`, `gatehouse
//! users create`, the first-admin bootstrap (and imports). Every door checks
//! the same [`RegisterInput`] rules, normalises the values the same way and
//! inserts the same row; only the role differs.

use garde::Validate;
use gatehouse::{Role, RpcError};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr};
use serde::Deserialize;
use ts_rs::TS;
use uuid::Uuid;

use super::store;
use crate::db::{is_unique_violation, is_username_violation, now_ms};
use crate::entities::user;
use crate::error::AuthError;
use crate::password::{PasswordError, PasswordHasher, PasswordPolicyError};
use crate::types::text;
use crate::validate::{self, phone_value, username_value};

// Every new account meets these rules, whatever the door (see the module
// documentation); the doc comment below is the wire type's, shown to clients.
/// `auth.register` input. The email is normalised (NFKC, lower case, the
/// domain in ASCII: docs/api.md, Email addresses); every
/// failing field is reported at once in `error.data.issues`.
#[derive(Debug, Deserialize, TS, Validate, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::types::text_fields_required)]
pub struct RegisterInput {
    #[serde(default, deserialize_with = "text")]
    #[garde(custom(validate::email))]
    #[schemars(email)]
    pub email: String,
    #[serde(default, deserialize_with = "text")]
    #[garde(custom(validate::new_password))]
    #[schemars(length(min = crate::password::MIN_PASSWORD_CHARS, max = crate::password::MAX_PASSWORD_BYTES))]
    pub password: String,
    #[serde(default, deserialize_with = "text")]
    #[garde(custom(validate::name))]
    #[schemars(length(min = 1, max = crate::validate::MAX_NAME_CHARS))]
    pub first_name: String,
    #[serde(default, deserialize_with = "text")]
    #[garde(custom(validate::name))]
    #[schemars(length(min = 1, max = crate::validate::MAX_NAME_CHARS))]
    pub last_name: String,
    #[serde(default)]
    #[ts(optional)]
    #[garde(custom(validate::phone))]
    #[schemars(length(max = crate::validate::MAX_PHONE_CHARS))]
    pub phone: Option<String>,
    // Optional; trimmed and lower-cased, blank means none.
    #[serde(default)]
    #[ts(optional)]
    #[garde(custom(validate::username))]
    #[schemars(length(min = crate::validate::MIN_USERNAME_CHARS, max = crate::validate::MAX_USERNAME_CHARS), regex(pattern = crate::validate::USERNAME_PATTERN))]
    pub username: Option<String>,
}

/// Why an account could not be created. The API answers these as
/// [`crate::error::AuthError`]s; the command line prints them.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// A field broke a rule; the error lists every such field.
    #[error("{}", describe(.0))]
    Invalid(RpcError),
    #[error("a user with this email already exists")]
    Exists,
    #[error("the username is already taken")]
    UsernameTaken,
    /// `GATEHOUSE_ADMIN_EMAIL` names an account that is not an ADMIN and
    /// whose password is not `GATEHOUSE_ADMIN_PASSWORD` (see
    /// [`super::bootstrap`] for why it is not promoted).
    #[error(
        "{0} already belongs to an account that is not an ADMIN and whose password is not GATEHOUSE_ADMIN_PASSWORD; \
         refusing to make it the first ADMIN, since whoever registered it chose that password \
         (and a mistyped address would take over someone else's account). \
         Either set GATEHOUSE_ADMIN_EMAIL to another address; \
         or, if that account is yours, set GATEHOUSE_ADMIN_PASSWORD to its password; \
         or create an ADMIN with `gatehouse users create --role ADMIN --email <another address>` \
         (once an ADMIN exists these settings are ignored) and then delete that account (users.delete) \
         or let its owner keep it"
    )]
    AdminEmailTaken(String),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    #[error("password hashing failed: {0}")]
    Hash(#[from] PasswordError),
}

/// `email: Invalid email address; password: …` for the command line.
fn describe(error: &RpcError) -> String {
    match &error.issues {
        Some(issues) if !issues.is_empty() => issues
            .iter()
            .map(|issue| format!("{}: {}", issue.path.join("."), issue.message))
            .collect::<Vec<_>>()
            .join("; "),
        _ => error.message.clone(),
    }
}

impl CreateUserError {
    /// A failed insert or update of a user row: a clash on the username
    /// index is [`Self::UsernameTaken`], any other unique clash (the email)
    /// is [`Self::Exists`]. The indexes decide, so racing claims of the
    /// same name or address get exactly one winner.
    pub(crate) fn from_write(e: DbErr) -> Self {
        if is_username_violation(&e) {
            Self::UsernameTaken
        } else if is_unique_violation(&e) {
            Self::Exists
        } else {
            Self::Db(e)
        }
    }
}

/// An account that passed the [`RegisterInput`] rules, its values
/// normalised, waiting to be hashed and inserted.
#[derive(Debug)]
pub struct NewAccount {
    pub(crate) email: String,
    password: String,
    first_name: String,
    last_name: String,
    phone: Option<String>,
    username: Option<String>,
    role: Role,
}

impl NewAccount {
    /// Checks `input` (every failing field at once, as `BAD_REQUEST`) and
    /// normalises it: trimmed names, the email's normal form, the phone and
    /// username as stored.
    pub fn checked(input: RegisterInput, role: Role) -> Result<Self, RpcError> {
        validate::check(&input)?;
        Self::normalised(input, role)
    }

    /// [`Self::checked`], except that a password on the common-passwords
    /// list passes: the first-admin bootstrap starts a demo setup with one,
    /// warning instead of refusing (it is still a usable password, unlike
    /// one bcrypt would truncate).
    pub(crate) fn checked_allowing_common_password(
        input: RegisterInput,
        role: Role,
    ) -> Result<Self, RpcError> {
        if let Err(error) = validate::check(&input) {
            let common = validate::policy_key(&PasswordPolicyError::TooCommon);
            let only_common = error
                .issues
                .as_ref()
                .is_some_and(|issues| issues.iter().all(|issue| issue.key == common));
            if !only_common {
                return Err(error);
            }
            tracing::warn!("GATEHOUSE_ADMIN_PASSWORD is a common password; change it soon");
        }
        Self::normalised(input, role)
    }

    fn normalised(input: RegisterInput, role: Role) -> Result<Self, RpcError> {
        Ok(Self {
            email: validate::email_value("email", &input.email)?,
            password: input.password,
            first_name: input.first_name.trim().to_owned(),
            last_name: input.last_name.trim().to_owned(),
            phone: phone_value(input.phone.as_deref()),
            username: username_value(input.username.as_deref()),
            role,
        })
    }

    /// Hashes the password (on the hasher's pool, so before any transaction
    /// that would otherwise wait for it) and makes the row.
    pub(crate) async fn into_row(
        self,
        hasher: &PasswordHasher,
    ) -> Result<user::ActiveModel, PasswordError> {
        let hash = hasher.hash(&self.password).await?;
        let now = now_ms();
        Ok(user::ActiveModel {
            id: Set(Uuid::now_v7().to_string()),
            email: Set(self.email),
            password_hash: Set(hash),
            first_name: Set(self.first_name),
            last_name: Set(self.last_name),
            phone: Set(self.phone),
            username: Set(self.username),
            role: Set(self.role.into()),
            created_at: Set(now),
            updated_at: Set(now),
        })
    }

    /// Hashes and inserts the account on `db` (a connection, or the
    /// transaction that also opens its first session).
    pub(crate) async fn insert(
        self,
        db: &impl ConnectionTrait,
        hasher: &PasswordHasher,
    ) -> Result<user::Model, CreateUserError> {
        insert_row(db, self.into_row(hasher).await?).await
    }
}

/// Inserts a row made by [`NewAccount::into_row`]; a clash is
/// [`CreateUserError::Exists`] or [`CreateUserError::UsernameTaken`].
pub(crate) async fn insert_row(
    db: &impl ConnectionTrait,
    row: user::ActiveModel,
) -> Result<user::Model, CreateUserError> {
    store::insert(db, row)
        .await
        .map_err(CreateUserError::from_write)
}

/// How the API answers a failed creation: a broken rule as the validation
/// error it is, a clash as CONFLICT.
impl From<CreateUserError> for AuthError {
    fn from(e: CreateUserError) -> Self {
        match e {
            CreateUserError::Invalid(rpc) => AuthError::Rpc(rpc),
            CreateUserError::Exists | CreateUserError::AdminEmailTaken(_) => AuthError::EmailTaken,
            CreateUserError::UsernameTaken => AuthError::UsernameTaken,
            CreateUserError::Db(e) => AuthError::Db(e),
            CreateUserError::Hash(e) => AuthError::Hash(e),
        }
    }
}

/// An account to create outside the API (command line, tests, an app's
/// seed data).
#[derive(Debug, Clone, Copy)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub role: Role,
    /// Optional; normalised and checked like a registration's.
    pub username: Option<&'a str>,
}

impl NewUser<'_> {
    /// The registration input this account would be sent as.
    pub(crate) fn input(&self) -> RegisterInput {
        RegisterInput {
            email: self.email.to_owned(),
            password: self.password.to_owned(),
            first_name: self.first_name.to_owned(),
            last_name: self.last_name.to_owned(),
            phone: None,
            username: self.username.map(str::to_owned),
        }
    }
}

/// Creates a user outside the API, with exactly the checks of
/// registration.
pub async fn create_user(
    db: &impl ConnectionTrait,
    hasher: &PasswordHasher,
    new: NewUser<'_>,
) -> Result<user::Model, CreateUserError> {
    NewAccount::checked(new.input(), new.role)
        .map_err(CreateUserError::Invalid)?
        .insert(db, hasher)
        .await
}
