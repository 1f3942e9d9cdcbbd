//! `auth.register` and `auth.login`: the two ways a session begins.

use garde::Validate;
use gatehouse::{Ctx, ErrorCode, Guard, Kind, Procedure, Rest, Role};
use serde::Deserialize;
use ts_rs::TS;

use super::{ClientAddr, FailureCounters, MAX_PASSWORD_BYTES, slow_down};
use crate::db::begin_write;
use crate::entities::user;
use crate::error::AuthError;
use crate::service::HasAuth;
use crate::types::{AuthPayload, text};
use crate::users::{self, CreateUserError, NewAccount};
use crate::validate::{self, username_value};

pub use crate::users::RegisterInput;

/// Creates a VIEWER account and opens its first session.
#[derive(schemars::JsonSchema)]
pub struct Register;

impl<S: HasAuth> Procedure<S> for Register {
    const PATH: &'static str = "register";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Public;
    const REST: Option<Rest> = Some(Rest::post("/auth/register").created());
    type Input = RegisterInput;
    type Output = AuthPayload;
    type Error = AuthError;
    // FORBIDDEN: a cookie session asked for from an origin not allowed.
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::Conflict, ErrorCode::Forbidden];

    async fn call(ctx: Ctx<S>, input: RegisterInput) -> Result<AuthPayload, AuthError> {
        let account = NewAccount::checked(input, Role::Viewer)?;
        let cookie = ctx.service.auth().settings.cookies.wanted(&ctx.request)?;
        let svc = ctx.service.auth();
        svc.db_up()?;
        // The address the first ADMIN will be created with is not for anyone
        // to claim first (see `users::bootstrap_admin`); answered as if it
        // were registered, which it will be once the bootstrap runs.
        if svc.settings.admin_email.as_ref() == Some(&account.email)
            && !users::admin_exists(&svc.db).await?
        {
            tracing::warn!(target: "audit", event = "register.admin_email_refused",
                request_id = ctx.request.request_id.as_str());
            return Err(AuthError::EmailTaken);
        }
        let row = account.into_row(&svc.hasher).await?;
        let txn = begin_write(&svc.db).await?;
        let user = users::insert_row(&txn, row).await?;
        let client = svc.client_ip(&ctx.request);
        let (sid, generation) = svc
            .open_session(&txn, &user.id, &ctx.request, client)
            .await?;
        txn.commit().await.map_err(user_conflict)?;
        tracing::info!(target: "audit", event = "register", user_id = user.id.as_str(),
            session_id = sid.as_str(), request_id = ctx.request.request_id.as_str());
        let payload = svc.issue(&user, &sid, &generation)?;
        Ok(svc.deliver(&ctx.request, cookie, payload))
    }
}

/// A failed insert or update of a user row, as the API answers it: a
/// username clash is [`AuthError::UsernameTaken`], an email clash
/// [`AuthError::EmailTaken`] (see [`CreateUserError::from_write`]).
pub(crate) fn user_conflict(e: sea_orm::DbErr) -> AuthError {
    CreateUserError::from_write(e).into()
}

/// `auth.login` input: an email or a username (exactly one) and the
/// password. Typed in TypeScript as the union of the two forms.
#[derive(Debug, Deserialize, TS, Validate, schemars::JsonSchema)]
#[ts(as = "LoginForm")]
#[schemars(with = "LoginForm")]
pub struct LoginInput {
    #[serde(default)]
    #[garde(custom(validate::login_email(&self.username)))]
    pub email: Option<String>,
    #[serde(default)]
    #[garde(custom(validate::login_username(&self.email)))]
    pub username: Option<String>,
    #[serde(default, deserialize_with = "text")]
    #[garde(custom(validate::required))]
    pub password: String,
}

impl LoginInput {
    /// `{ email, password }`, for calls from Rust.
    pub fn by_email(email: &str, password: &str) -> Self {
        Self {
            email: Some(email.to_owned()),
            username: None,
            password: password.to_owned(),
        }
    }

    /// `{ username, password }`, for calls from Rust.
    pub fn by_username(username: &str, password: &str) -> Self {
        Self {
            email: None,
            username: Some(username.to_owned()),
            password: password.to_owned(),
        }
    }
}

/// The TypeScript shape of [`LoginInput`] (never built): one identifier or
/// the other, the absent one typed `never` so that sending both is a type
/// error too (a plain union would accept the extra key).
#[derive(TS, schemars::JsonSchema)]
#[ts(untagged)]
#[schemars(untagged)]
#[allow(dead_code)]
enum LoginForm {
    Email {
        #[schemars(email)]
        email: String,
        #[schemars(length(min = 1))]
        password: String,
        #[ts(optional, type = "never")]
        #[schemars(skip)]
        username: Option<String>,
    },
    Username {
        #[schemars(length(min = crate::validate::MIN_USERNAME_CHARS, max = crate::validate::MAX_USERNAME_CHARS), regex(pattern = crate::validate::USERNAME_PATTERN))]
        username: String,
        #[schemars(length(min = 1))]
        password: String,
        #[ts(optional, type = "never")]
        #[schemars(skip)]
        email: Option<String>,
    },
}

/// Which identifier a login names.
enum Identifier {
    Email(String),
    Username(String),
}

impl Identifier {
    /// The normalised email, else the normalised username, of a checked
    /// input.
    fn of(input: &LoginInput) -> Result<Self, AuthError> {
        Ok(match (input.email.as_deref(), input.username.as_deref()) {
            (Some(email), _) if !email.is_empty() => {
                Identifier::Email(validate::email_value("email", email)?)
            }
            (_, username) => Identifier::Username(username_value(username).unwrap_or_default()),
        })
    }
}

/// The account of a login: by email it is read after the lock check (as
/// before usernames existed); by username it had to be read first, to know
/// which account's counter applies.
enum Lookup {
    Email(String),
    Done(Option<user::Model>),
}

/// One attempt to prove a password: which counters it counts against, and
/// how its account is found.
struct Attempt {
    counters: FailureCounters,
    lookup: Lookup,
}

impl Attempt {
    /// Resolves the counters and refuses at once while the account or the
    /// address is locked (before the password is looked at, so that a lock
    /// refuses the right password too).
    ///
    /// Failures count per account: a username that names an account counts
    /// against that account's email, so alternating identifiers gains
    /// nothing; an unknown username counts under its own key, as an
    /// unknown email does. Resolving the username costs one indexed read
    /// whether or not it exists.
    async fn start<S: HasAuth>(
        ctx: &Ctx<S>,
        client: &ClientAddr,
        identifier: Identifier,
    ) -> Result<Self, AuthError> {
        let svc = ctx.service.auth();
        let (counters, lookup) = match identifier {
            Identifier::Email(email) => (
                FailureCounters::of_email(client, &email),
                Lookup::Email(email),
            ),
            Identifier::Username(name) => match users::find_by_username(&svc.db, &name).await? {
                Some(u) => (
                    FailureCounters::of_email(client, &u.email),
                    Lookup::Done(Some(u)),
                ),
                None => (
                    FailureCounters::new(client, format!("login:username:{name}")),
                    Lookup::Done(None),
                ),
            },
        };
        if let Some(retry_after) = counters.locked_for(svc).await? {
            tracing::warn!(target: "audit", event = "login.throttled", ip = client.as_str(),
                request_id = ctx.request.request_id.as_str());
            return Err(AuthError::Throttled { retry_after });
        }
        Ok(Self { counters, lookup })
    }

    /// The account, if `password` is its password. An unknown account and a
    /// wrong password cost the same work and get the same answer, and both
    /// count as a failure; the right one clears the account's counter and
    /// brings an old hash up to the configured cost.
    async fn prove<S: HasAuth>(
        self,
        ctx: &Ctx<S>,
        client: &ClientAddr,
        password: &str,
    ) -> Result<user::Model, AuthError> {
        let svc = ctx.service.auth();
        let Attempt { counters, lookup } = self;
        let user = match lookup {
            Lookup::Email(email) => users::find_by_email(&svc.db, &email).await?,
            Lookup::Done(user) => user,
        };
        let Some(user) = user.filter(|_| password.len() <= MAX_PASSWORD_BYTES) else {
            svc.hasher.verify_dummy(password).await;
            return Err(failed(&counters, ctx, client, None).await);
        };
        let verdict = svc.hasher.verify(password, &user.password_hash).await?;
        if !verdict.matches {
            return Err(failed(&counters, ctx, client, Some(&user.id)).await);
        }
        counters.succeeded(svc).await?;
        if verdict.needs_rehash {
            users::upgrade_password(&svc.db, &svc.hasher, &user, password).await;
        }
        Ok(user)
    }
}

/// Counts a failure against the account and the address, logs it and slows
/// the answer down a little once failures pile up: the error to answer with.
async fn failed<S: HasAuth>(
    counters: &FailureCounters,
    ctx: &Ctx<S>,
    client: &ClientAddr,
    user_id: Option<&str>,
) -> AuthError {
    let account = match counters.count_failure(ctx.service.auth()).await {
        Ok(account) => account,
        Err(e) => return e,
    };
    tracing::warn!(target: "audit", event = "login.failure", user_id = user_id.unwrap_or(""),
        failures = account.count, ip = client.as_str(), request_id = ctx.request.request_id.as_str());
    slow_down(account.count).await;
    AuthError::InvalidCredentials
}

/// Checks a password, with per-account and per-address throttling.
#[derive(schemars::JsonSchema)]
pub struct Login;

impl<S: HasAuth> Procedure<S> for Login {
    const PATH: &'static str = "login";
    const KIND: Kind = Kind::Mutation;
    const GUARD: Guard = Guard::Public;
    const REST: Option<Rest> = Some(Rest::post("/auth/login"));
    type Input = LoginInput;
    type Output = AuthPayload;
    type Error = AuthError;
    // FORBIDDEN: a cookie session asked for from an origin not allowed.
    const ERRORS: &'static [ErrorCode] = &[
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::TooManyRequests,
    ];

    async fn call(ctx: Ctx<S>, input: LoginInput) -> Result<AuthPayload, AuthError> {
        validate::check(&input)?;
        let cookie = ctx.service.auth().settings.cookies.wanted(&ctx.request)?;
        let identifier = Identifier::of(&input)?;
        let svc = ctx.service.auth();
        svc.db_up()?;
        let client = ClientAddr::of(&ctx);
        let attempt = Attempt::start(&ctx, &client, identifier).await?;
        let user = attempt.prove(&ctx, &client, &input.password).await?;
        let (sid, generation) = svc
            .open_session(&svc.db, &user.id, &ctx.request, client.ip())
            .await?;
        tracing::info!(target: "audit", event = "login.success", user_id = user.id.as_str(),
            session_id = sid.as_str(), ip = client.as_str(), request_id = ctx.request.request_id.as_str());
        let payload = svc.issue(&user, &sid, &generation)?;
        Ok(svc.deliver(&ctx.request, cookie, payload))
    }
}
