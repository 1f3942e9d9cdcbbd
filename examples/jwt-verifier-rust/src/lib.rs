//! Another service (`GET /api/1/trips/me`) that accepts the tokens Gatehouse
//! issues without sharing any secret with it: it verifies them offline
//! against the public keys Gatehouse publishes at `/.well-known/jwks.json`
//! (with `JWT_ALGORITHM` EdDSA, ES256 or RS256; see Gatehouse's
//! `docs/keys.md`), and fetches the key set again when a token names a `kid`
//! it does not know (after a `gatehouse keys rotate`).
//!
//! What it cannot know: whether a token was revoked before it expires
//! (logout, password change, role change). Where that matters, ask Gatehouse
//! by calling `auth.me` with the token ([`Verifier::check_with_gatehouse`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// The claims this service uses; Gatehouse's tokens carry more.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    pub email: String,
    pub iss: String,
    pub exp: i64,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("invalid token: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    #[error("the token names no key (kid)")]
    NoKid,
    #[error("no key {0:?} in the issuer's JWKS")]
    UnknownKid(String),
    #[error("alg {0:?} is not the algorithm of key")]
    WrongAlgorithm(Algorithm),
    #[error("could not fetch the JWKS: {0}")]
    Fetch(#[from] reqwest::Error),
}

struct Key {
    alg: Algorithm,
    key: DecodingKey,
}

/// Verifies Gatehouse tokens with the keys of its JWKS, cached, and fetched
/// again on an unknown `kid` (at most once per `cooldown`, so tokens with
/// made-up kids cannot make it hammer Gatehouse).
pub struct Verifier {
    gatehouse: String,
    issuer: String,
    algorithms: Vec<Algorithm>,
    cooldown: Duration,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, Arc<Key>>>,
    fetched: tokio::sync::Mutex<Option<Instant>>,
}

impl Verifier {
    /// Tokens of the Gatehouse at `gatehouse` (its base URL), with `iss`
    /// `issuer`, signed with one of `algorithms`.
    pub fn new(gatehouse: &str, issuer: &str, algorithms: Vec<Algorithm>) -> Self {
        Self {
            gatehouse: gatehouse.trim_end_matches('/').to_owned(),
            issuer: issuer.to_owned(),
            algorithms,
            cooldown: Duration::from_secs(1),
            http: reqwest::Client::new(),
            keys: RwLock::new(HashMap::new()),
            fetched: tokio::sync::Mutex::new(None),
        }
    }

    fn key(&self, kid: &str) -> Option<Arc<Key>> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(kid)
            .cloned()
    }

    /// Fetches the JWKS again, unless that was done less than `cooldown` ago.
    async fn refresh(&self) -> Result<(), VerifyError> {
        let mut fetched = self.fetched.lock().await;
        if fetched.is_some_and(|at| at.elapsed() < self.cooldown) {
            return Ok(());
        }
        let url = format!("{}/.well-known/jwks.json", self.gatehouse);
        let set: JwkSet = self
            .http
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Some(alg)) = (&jwk.common.key_id, jwk.common.key_algorithm) else {
                continue;
            };
            let Ok(alg) = alg.to_string().parse::<Algorithm>() else {
                continue;
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid.clone(), Arc::new(Key { alg, key }));
                }
                Err(e) => tracing::warn!(%kid, error = %e, "skipping a JWK"),
            }
        }
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
        *fetched = Some(Instant::now());
        Ok(())
    }

    /// The token's claims if Gatehouse signed it with a key of its JWKS, in
    /// that key's algorithm (one of ours), for our issuer, and it has not
    /// expired.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let header = jsonwebtoken::decode_header(token)?;
        let kid = header.kid.ok_or(VerifyError::NoKid)?;
        let key = match self.key(&kid) {
            Some(key) => key,
            None => {
                self.refresh().await?;
                self.key(&kid).ok_or(VerifyError::UnknownKid(kid))?
            }
        };
        if header.alg != key.alg || !self.algorithms.contains(&key.alg) {
            return Err(VerifyError::WrongAlgorithm(header.alg));
        }
        let mut validation = Validation::new(key.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 0;
        Ok(jsonwebtoken::decode::<Claims>(token, &key.key, &validation)?.claims)
    }

    /// Asks Gatehouse whether the token still works right now (revocation
    /// before expiry): `auth.me` through its REST route. `None` if not.
    pub async fn check_with_gatehouse(
        &self,
        token: &str,
    ) -> Result<Option<serde_json::Value>, VerifyError> {
        let res = self
            .http
            .get(format!("{}/api/user/profile", self.gatehouse))
            .bearer_auth(token)
            .send()
            .await?;
        if !res.status().is_success() {
            return Ok(None);
        }
        Ok(Some(res.json().await?))
    }
}

/// The service's routes: `GET /api/1/trips/me`.
pub fn router(verifier: Arc<Verifier>) -> axum::Router {
    axum::Router::new()
        .route("/api/1/trips/me", axum::routing::get(my_trips))
        .with_state(verifier)
}

async fn my_trips(State(verifier): State<Arc<Verifier>>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return (StatusCode::UNAUTHORIZED, "missing bearer token").into_response();
    };
    match verifier.verify(token).await {
        Ok(claims) => axum::Json(serde_json::json!({
            "userId": claims.sub,
            "role": claims.role,
            "trips": [],
        }))
        .into_response(),
        Err(e) => (StatusCode::UNAUTHORIZED, e.to_string()).into_response(),
    }
}
