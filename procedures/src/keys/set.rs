//! The key set a service signs and verifies with, assembled from the
//! configuration: the JWT secret (HS256), PEM files, or the `signing_keys`
//! table. Kept apart from the key material (`keys/mod.rs`), which the token
//! code builds on, so that module does not depend back on the tokens.

use super::{KeyError, KeyPair, SigningAlg, store};

/// Where the key set of a running service comes from, for reloading it.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// HS256 with the JWT secret: nothing to reload.
    Secret,
    /// PEM files (`JWT_PRIVATE_KEY_FILE`, `JWT_KEYS_DIR`), read at start: a
    /// new key takes a restart of every instance.
    Files,
    /// The `signing_keys` table, shared by every instance and reloaded
    /// periodically; private keys sealed with `seal`.
    Database { seal: crate::outbox::MailKey },
}

/// Why the signing keys could not be set up at start.
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    #[error("could not read {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Pem {
        path: std::path::PathBuf,
        source: KeyError,
    },
    #[error("{path} holds an {found} key, but JWT_ALGORITHM is {expected}")]
    WrongAlgorithm {
        path: std::path::PathBuf,
        expected: SigningAlg,
        found: SigningAlg,
    },
    #[error("JWT_KEYS_DIR {0} holds no *.pem key")]
    EmptyDir(std::path::PathBuf),
    #[error("the key set in the database has no live {0} key")]
    NoActiveKey(SigningAlg),
    #[error(transparent)]
    Config(#[from] crate::ConfigError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// The token keys the `tokens` settings ask for: HS256 with `jwt_secret`; or the key
/// set from PEM files; or the key set in the database (a first key of
/// `JWT_ALGORITHM` generated when there is none).
pub async fn token_keys(
    tokens: &crate::config::TokenConfig,
    db: &sea_orm::DatabaseConnection,
    jwt_secret: &[u8],
) -> Result<(crate::token::TokenKeys, KeySource), KeySetError> {
    use crate::token::TokenKeys;
    let alg = tokens.jwt_algorithm;
    let (issuer, ttl) = (tokens.jwt_issuer.as_str(), tokens.jwt_ttl);
    let (keys, source) = if !alg.is_asymmetric() {
        (TokenKeys::new(jwt_secret, issuer, ttl), KeySource::Secret)
    } else if tokens.jwt_private_key_file.is_some() || tokens.jwt_keys_dir.is_some() {
        let (active, others) = read_files(tokens)?;
        (
            TokenKeys::asymmetric(&active, &others, issuer, ttl)?,
            KeySource::Files,
        )
    } else {
        let seal = crate::outbox::MailKey::signing_keys(&tokens.key_encryption_secret(jwt_secret)?);
        let now = crate::db::now_ms();
        store::ensure(db, &seal, alg, tokens.key_window_ms(), now).await?;
        let stored = store::load(db, &seal, now).await?;
        let (active, others) = pick(stored, alg).ok_or(KeySetError::NoActiveKey(alg))?;
        (
            TokenKeys::asymmetric(&active, &others, issuer, ttl)?,
            KeySource::Database { seal },
        )
    };
    Ok((keys.with_leeway(tokens.jwt_leeway), source))
}

/// The key that signs (the newest live key of `alg`; `stored` is newest
/// first) and every other key that still verifies.
pub fn pick(stored: Vec<store::StoredKey>, alg: SigningAlg) -> Option<(KeyPair, Vec<KeyPair>)> {
    let at = stored
        .iter()
        .position(|k| k.is_live() && k.pair.alg == alg)?;
    let mut pairs: Vec<KeyPair> = stored.into_iter().map(|k| k.pair).collect();
    let active = pairs.remove(at);
    Some((active, pairs))
}

/// `JWT_PRIVATE_KEY_FILE` and the `*.pem` files of `JWT_KEYS_DIR` (sorted
/// by name): the first, or else the last of the folder, signs.
fn read_files(tokens: &crate::config::TokenConfig) -> Result<(KeyPair, Vec<KeyPair>), KeySetError> {
    let read = |path: &std::path::Path| -> Result<KeyPair, KeySetError> {
        let pem = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            KeySetError::Io {
                path: path.to_owned(),
                source,
            }
        })?);
        KeyPair::from_pem(&pem).map_err(|source| KeySetError::Pem {
            path: path.to_owned(),
            source,
        })
    };
    let mut folder = Vec::new();
    if let Some(dir) = &tokens.jwt_keys_dir {
        let io = |source| KeySetError::Io {
            path: dir.clone(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_some_and(|e| e == "pem") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        for path in paths {
            folder.push((read(&path)?, path));
        }
    }
    let (active, path) = match &tokens.jwt_private_key_file {
        Some(path) => (read(path)?, path.clone()),
        None => folder.pop().ok_or_else(|| {
            KeySetError::EmptyDir(tokens.jwt_keys_dir.clone().unwrap_or_default())
        })?,
    };
    if active.alg != tokens.jwt_algorithm {
        return Err(KeySetError::WrongAlgorithm {
            path,
            expected: tokens.jwt_algorithm,
            found: active.alg,
        });
    }
    Ok((active, folder.into_iter().map(|(pair, _)| pair).collect()))
}
