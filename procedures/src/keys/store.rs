//! The key set in the database (`signing_keys`), shared by every instance.
//!
//! A key without `retired_at` signs (the newest such key of the configured
//! algorithm) and verifies. Rotation inserts a new key and retires the
//! others: a retired key still verifies until `not_after`, which is set to
//! the longest time a token it signed can still be presented (its lifetime,
//! or the refresh window for `auth.refreshToken`, plus the leeway), so no
//! session is cut short by a rotation. Past `not_after` the key verifies
//! nothing and [`prune`] deletes it.
//!
//! Private keys are sealed with AES-256-GCM (the outbox's [`MailKey`]
//! construction under labels of their own), the `kid` bound in as
//! associated data, so a database dump or backup alone holds no usable key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, QueryOrder,
};

use super::{KeyError, KeyPair, SigningAlg};
use crate::entities::signing_key;
use crate::outbox::MailKey;

/// Why the key set could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(
        "no key of the key set can be opened: GATEHOUSE_KEY_ENCRYPTION_SECRET (or JWT_SECRET) differs from the one they were sealed with"
    )]
    Sealed,
}

/// A key of the set as stored.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub pair: KeyPair,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    pub not_after: Option<i64>,
}

impl StoredKey {
    /// Signs (the newest of these) and verifies.
    pub fn is_live(&self) -> bool {
        self.retired_at.is_none()
    }
}

/// The keys that still verify at `now` (live, or retired but within their
/// window), newest first. A row that cannot be opened (sealed under another
/// secret, altered) is skipped with a warning; if no row opens at all, that
/// is [`StoreError::Sealed`].
pub async fn load(
    db: &impl ConnectionTrait,
    seal: &MailKey,
    now: i64,
) -> Result<Vec<StoredKey>, StoreError> {
    let rows = signing_key::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(signing_key::Column::NotAfter.is_null())
                .add(signing_key::Column::NotAfter.gt(now)),
        )
        .order_by_desc(signing_key::Column::CreatedAt)
        .order_by_desc(signing_key::Column::Kid)
        .all(db)
        .await?;
    let total = rows.len();
    let mut keys = Vec::with_capacity(total);
    for row in rows {
        match open_row(seal, &row) {
            Ok(pair) => keys.push(StoredKey {
                pair,
                created_at: row.created_at,
                retired_at: row.retired_at,
                not_after: row.not_after,
            }),
            Err(e) => {
                tracing::warn!(kid = %row.kid, error = %e, "skipping a signing key that cannot be opened")
            }
        }
    }
    if total > 0 && keys.is_empty() {
        return Err(StoreError::Sealed);
    }
    Ok(keys)
}

fn open_row(seal: &MailKey, row: &signing_key::Model) -> Result<KeyPair, StoreError> {
    let alg = SigningAlg::asymmetric(&row.alg).ok_or(StoreError::Sealed)?;
    let b64 = zeroize::Zeroizing::new(
        seal.open(&row.kid, &row.private_key)
            .ok_or(StoreError::Sealed)?,
    );
    let der = STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| StoreError::Sealed)?;
    let pair = KeyPair::from_der(alg, der)?;
    if pair.kid != row.kid {
        return Err(StoreError::Sealed);
    }
    Ok(pair)
}

/// Every row, newest first, without opening the private keys (for
/// `gatehouse keys list`).
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<signing_key::Model>, DbErr> {
    signing_key::Entity::find()
        .order_by_desc(signing_key::Column::CreatedAt)
        .order_by_desc(signing_key::Column::Kid)
        .all(db)
        .await
}

/// Adds a new key of `alg` that signs from now on, and retires every other
/// live key: they keep verifying for `window_ms`. Returns the new key.
pub async fn rotate(
    db: &impl ConnectionTrait,
    seal: &MailKey,
    alg: SigningAlg,
    window_ms: i64,
    now: i64,
) -> Result<KeyPair, StoreError> {
    let pair = tokio::task::spawn_blocking(move || KeyPair::generate(alg))
        .await
        .map_err(|e| KeyError::Generate(e.to_string()))??;
    insert(db, seal, &pair, now).await?;
    retire_others(db, &pair.kid, now, window_ms).await?;
    Ok(pair)
}

/// Makes sure a live key of `alg` exists, rotating to a new one if not (on
/// first start, or when `JWT_ALGORITHM` changed). Instances starting at the
/// same moment may both rotate; the newest key then signs and the other
/// verifies, which is harmless.
pub async fn ensure(
    db: &impl ConnectionTrait,
    seal: &MailKey,
    alg: SigningAlg,
    window_ms: i64,
    now: i64,
) -> Result<(), StoreError> {
    let keys = load(db, seal, now).await?;
    if !keys.iter().any(|k| k.is_live() && k.pair.alg == alg) {
        let pair = rotate(db, seal, alg, window_ms, now).await?;
        tracing::info!(kid = %pair.kid, %alg, "generated a new signing key");
    }
    Ok(())
}

async fn insert(
    db: &impl ConnectionTrait,
    seal: &MailKey,
    pair: &KeyPair,
    now: i64,
) -> Result<(), StoreError> {
    let b64 = zeroize::Zeroizing::new(STANDARD.encode(pair.der()));
    let jwk = serde_json::to_string(&pair.jwk).map_err(|e| KeyError::Encode(e.to_string()))?;
    signing_key::ActiveModel {
        kid: Set(pair.kid.clone()),
        alg: Set(pair.alg.as_str().to_owned()),
        public_jwk: Set(jwk),
        private_key: Set(seal.seal(&pair.kid, &b64)),
        created_at: Set(now),
        retired_at: Set(None),
        not_after: Set(None),
    }
    .insert(db)
    .await?;
    Ok(())
}

async fn retire_others(
    db: &impl ConnectionTrait,
    kid: &str,
    now: i64,
    window_ms: i64,
) -> Result<u64, DbErr> {
    Ok(signing_key::Entity::update_many()
        .col_expr(
            signing_key::Column::RetiredAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .col_expr(
            signing_key::Column::NotAfter,
            sea_orm::sea_query::Expr::value(now.saturating_add(window_ms)),
        )
        .filter(signing_key::Column::RetiredAt.is_null())
        .filter(signing_key::Column::Kid.ne(kid))
        .exec(db)
        .await?
        .rows_affected)
}

/// Deletes the keys whose verifying window is over. Safe on every instance
/// at once.
pub async fn prune(db: &impl ConnectionTrait, now: i64) -> Result<u64, DbErr> {
    Ok(signing_key::Entity::delete_many()
        .filter(signing_key::Column::NotAfter.lte(now))
        .exec(db)
        .await?
        .rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{Claims, TokenError, TokenKeys};

    async fn database(dir: &std::path::Path) -> sea_orm::DatabaseConnection {
        let url = format!("sqlite://{}", dir.join("keys.db").display());
        let db = crate::db::connect_with(&url, std::time::Duration::from_secs(5))
            .await
            .expect("connect");
        crate::db::migrate(&db).await.expect("migrate");
        db
    }

    fn claims(now_ms: i64) -> Claims {
        crate::token::tests::claims(now_ms / 1000)
    }

    fn keys_at(stored: Vec<StoredKey>, alg: SigningAlg) -> TokenKeys {
        let (active, others) = super::super::set::pick(stored, alg).expect("a live key");
        TokenKeys::asymmetric(&active, &others, "gatehouse", 3600).expect("keys")
    }

    #[tokio::test]
    async fn rotation_keeps_old_tokens_until_the_window_then_prune_ends_them() {
        let seal = MailKey::signing_keys(b"key encryption secret of 32 bytes or more");
        let window = 60_000;
        for alg in [SigningAlg::EdDsa, SigningAlg::Es256, SigningAlg::Rs256] {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = database(dir.path()).await;
            let t0 = crate::db::now_ms();
            ensure(&db, &seal, alg, window, t0).await.expect("ensure");
            // A second start finds the key and adds none.
            ensure(&db, &seal, alg, window, t0 + 1)
                .await
                .expect("ensure");
            assert_eq!(list(&db).await.expect("list").len(), 1, "{alg}");
            let keys = keys_at(load(&db, &seal, t0).await.expect("load"), alg);
            let first_kid = keys.active_kid().expect("kid");
            let old = keys.sign(&claims(t0)).expect("sign");

            let new = rotate(&db, &seal, alg, window, t0 + 10)
                .await
                .expect("rotate");
            assert_ne!(new.kid, first_kid);
            let stored = load(&db, &seal, t0 + 20).await.expect("load");
            let (active, others) = super::super::set::pick(stored, alg).expect("live key");
            keys.replace(&active, &others).expect("replace");
            assert_eq!(
                keys.active_kid().as_deref(),
                Some(new.kid.as_str()),
                "{alg}"
            );
            let fresh = keys.sign(&claims(t0)).expect("sign");
            assert!(
                keys.verify::<Claims>(&old).is_ok(),
                "{alg}: old token after rotation"
            );
            assert!(keys.verify::<Claims>(&fresh).is_ok(), "{alg}: new token");
            assert_eq!(keys.kids().len(), 2);

            // Still within the window: nothing to prune.
            assert_eq!(prune(&db, t0 + 10 + window - 1).await.expect("prune"), 0);
            // Past it, the old key is no longer loaded, and pruned.
            let later = t0 + 10 + window;
            let stored = load(&db, &seal, later).await.expect("load");
            assert_eq!(stored.len(), 1, "{alg}");
            let (active, others) = super::super::set::pick(stored, alg).expect("live key");
            keys.replace(&active, &others).expect("replace");
            assert!(
                matches!(
                    keys.verify::<Claims>(&old),
                    Err(TokenError::UnknownKey(Some(_)))
                ),
                "{alg}: old token after the window"
            );
            assert!(keys.verify::<Claims>(&fresh).is_ok());
            assert_eq!(prune(&db, later).await.expect("prune"), 1);
            let rows = list(&db).await.expect("list");
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].kid, new.kid);

            // Changing JWT_ALGORITHM rotates to a key of the new algorithm.
            let next = if alg == SigningAlg::EdDsa {
                SigningAlg::Es256
            } else {
                SigningAlg::EdDsa
            };
            ensure(&db, &seal, next, window, later + 1)
                .await
                .expect("ensure");
            let stored = load(&db, &seal, later + 2).await.expect("load");
            assert!(
                super::super::set::pick(stored, next).is_some(),
                "{alg} -> {next}"
            );
        }
    }

    #[tokio::test]
    async fn private_keys_are_sealed_under_the_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = database(dir.path()).await;
        let seal = MailKey::signing_keys(b"key encryption secret of 32 bytes or more");
        let now = crate::db::now_ms();
        let pair = rotate(&db, &seal, SigningAlg::EdDsa, 1000, now)
            .await
            .expect("rotate");
        let row = &list(&db).await.expect("list")[0];
        assert!(row.private_key.starts_with("v1:"));
        assert!(!row.private_key.contains(&STANDARD.encode(pair.der())));
        // The public key is stored in the clear, as its JWK.
        let jwk: serde_json::Value = serde_json::from_str(&row.public_jwk).expect("jwk");
        assert_eq!(jwk["kid"], pair.kid.as_str());
        assert!(jwk.get("d").is_none());
        // Another secret opens nothing; the right one does.
        let other = MailKey::signing_keys(b"another secret, also of 32 bytes or more");
        assert!(matches!(
            load(&db, &other, now).await,
            Err(StoreError::Sealed)
        ));
        assert_eq!(
            load(&db, &seal, now).await.expect("load")[0].pair.kid,
            pair.kid
        );
    }
}
