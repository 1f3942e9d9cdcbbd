//! sea-orm entities for the tables created in `gatehouse-migrations`.
//!
//! Timestamps are Unix milliseconds (`i64`), matching the migration, so SQL
//! comparisons behave the same on SQLite and PostgreSQL.

/// Accounts. `role` holds the upper-case role name (`ADMIN`, …), read and
/// written as a [`user::StoredRole`], so no caller parses it.
pub mod user {
    use sea_orm::entity::prelude::*;

    /// A user's role as the `role` column stores it. The framework's
    /// [`gatehouse::Role`] knows nothing of the database, so the column has
    /// this enum of its own, converted to and from it without fail.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
    #[sea_orm(rs_type = "String", db_type = "Text")]
    pub enum StoredRole {
        #[sea_orm(string_value = "ADMIN")]
        Admin,
        #[sea_orm(string_value = "OPERATOR")]
        Operator,
        #[sea_orm(string_value = "VIEWER")]
        Viewer,
    }

    impl From<gatehouse::Role> for StoredRole {
        fn from(role: gatehouse::Role) -> Self {
            match role {
                gatehouse::Role::Admin => Self::Admin,
                gatehouse::Role::Operator => Self::Operator,
                gatehouse::Role::Viewer => Self::Viewer,
            }
        }
    }

    impl From<StoredRole> for gatehouse::Role {
        fn from(role: StoredRole) -> Self {
            match role {
                StoredRole::Admin => Self::Admin,
                StoredRole::Operator => Self::Operator,
                StoredRole::Viewer => Self::Viewer,
            }
        }
    }

    /// The SQLite fast path (`sessions::read`) reads rows with rusqlite;
    /// a name it does not know is a conversion error, as through the ORM.
    impl rusqlite::types::FromSql for StoredRole {
        fn column_result(
            value: rusqlite::types::ValueRef<'_>,
        ) -> rusqlite::types::FromSqlResult<Self> {
            let name = value.as_str()?;
            <Self as ActiveEnum>::try_from_value(&name.to_owned())
                .map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
        }
    }

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        #[sea_orm(unique)]
        pub email: String,
        pub password_hash: String,
        pub first_name: String,
        pub last_name: String,
        pub phone: Option<String>,
        pub role: StoredRole,
        /// Lower-case, unique when set (`idx_users_username`).
        #[sea_orm(unique)]
        pub username: Option<String>,
        pub created_at: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Login sessions: one row per login/registration, naming the token
/// generation that is currently valid (`current_jti`, the part of a token's
/// `jti` before the dot) and the one it replaced (`previous_jti`, valid for a
/// short grace after `rotated_at`).
pub mod session {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sessions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: String,
        pub current_jti: String,
        pub previous_jti: Option<String>,
        pub rotated_at: Option<i64>,
        pub created_at: i64,
        pub last_used_at: i64,
        /// End of the absolute refresh window (session start + refresh TTL).
        pub expires_at: i64,
        pub revoked_at: Option<i64>,
        pub user_agent: Option<String>,
        pub ip: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::user::Entity",
            from = "Column::UserId",
            to = "super::user::Column::Id"
        )]
        User,
    }

    impl Related<super::user::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::User.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// Password-reset tokens, stored only as their SHA-256 hex digest.
pub mod password_reset {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "password_resets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: String,
        #[sea_orm(unique)]
        pub token_hash: String,
        pub created_at: i64,
        pub expires_at: i64,
        pub used_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Fixed-window counters shared by every instance (login failures per
/// account and per address, reset mails per address).
pub mod rate_counter {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "rate_counters")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub count: i32,
        pub window_start: i64,
        pub locked_until: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Token generations a refresh retired, kept for the grace period (see
/// `crate::sessions::generations`).
pub mod session_generation {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "session_generations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub session_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub generation: String,
        pub retired_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Mail waiting to be sent, and for a day the mail that was (see
/// `crate::outbox`). `body` is sealed and cleared once the mail is done.
pub mod mail_outbox {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "mail_outbox")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub recipient: String,
        pub subject: String,
        pub body: Option<String>,
        /// `pending`, `sent` or `failed`.
        pub state: String,
        pub attempts: i32,
        pub created_at: i64,
        /// When a worker may next take the row (retry time or lease end).
        pub due_at: i64,
        pub sent_at: Option<i64>,
        pub last_error: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// What happened to an account and its sessions, for `auth.events` (see
/// `crate::events`). `payload` is the event as clients receive it (JSON).
pub mod account_event {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "account_events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub user_id: String,
        /// Set for `session.revoked`: the session that ended.
        pub session_id: Option<String>,
        /// The event's `type`, e.g. `session.revoked`.
        pub kind: String,
        pub payload: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The shared key set of asymmetric token signing (see `crate::keys`).
/// `private_key` is sealed (AES-256-GCM), `public_jwk` an RFC 7517 JWK.
pub mod signing_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "signing_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub kid: String,
        /// `EdDSA`, `ES256` or `RS256`.
        pub alg: String,
        pub public_jwk: String,
        pub private_key: String,
        pub created_at: i64,
        /// Set when a newer key took over signing; the key still verifies.
        pub retired_at: Option<i64>,
        /// After this the key verifies nothing and is pruned.
        pub not_after: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
