//! HS256 access tokens: signing and the strict validation every guarded call
//! and `auth.refreshToken` rely on.

use gatehouse::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Clock skew tolerated on `exp` and `nbf`, in seconds: enough for instances
/// whose clocks are NTP-synchronised, small so an expired token is refused
/// promptly (jsonwebtoken's default of 60 s would keep it alive a minute).
pub const LEEWAY_SECS: u64 = 1;

/// The claims of every token, exactly as `api.md` lists them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub sub: String,
    pub jti: String,
    pub sid: String,
    pub id: String,
    pub email: String,
    pub role: Role,
    pub first_name: String,
    pub last_name: String,
}

/// The claims a guarded call checks against the session row: the rest of
/// [`Claims`] (profile fields) comes from the database anyway, so decoding
/// only these saves allocating them on every call. Validation is the same
/// as for [`Claims`]: `exp`, `nbf`, `iat`, `iss` and `sub` must be present
/// and are checked by [`TokenKeys::verify`].
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct SessionClaims {
    pub sub: String,
    pub jti: String,
    pub sid: String,
    pub role: Role,
}

/// The session generation a token id belongs to. Token ids are
/// `<generation>.<random>`: unique per token, while the session row only
/// records the current and previous generation, so the tokens handed to
/// parallel refreshes within the grace period all stay valid.
pub fn generation(jti: &str) -> &str {
    jti.split_once('.').map_or(jti, |(g, _)| g)
}

/// A fresh, unique token id in `generation`.
pub fn new_jti(generation: &str) -> String {
    format!("{generation}.{}", uuid::Uuid::new_v4().simple())
}

/// The signing secret and the two validations (access and refresh).
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    access: Validation,
    refresh: Validation,
    pub issuer: String,
    /// Access-token lifetime in seconds.
    pub ttl: u64,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("issuer", &self.issuer)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused; only logged, the client sees a generic 401.
#[derive(Debug, thiserror::Error)]
#[error("invalid token: {0}")]
pub struct TokenError(#[from] jsonwebtoken::errors::Error);

impl TokenKeys {
    pub fn new(secret: &[u8], issuer: &str, ttl: u64) -> Self {
        // Pinned to HS256: `alg: none` and every other algorithm are refused
        // before the signature is even looked at.
        let mut access = Validation::new(Algorithm::HS256);
        access.algorithms = vec![Algorithm::HS256];
        access.set_issuer(&[issuer]);
        access.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "sub"]);
        access.leeway = LEEWAY_SECS;
        access.validate_exp = true;
        access.validate_nbf = true;
        access.validate_aud = false;
        // Refresh accepts an expired token; the session's absolute refresh
        // window is checked against the database instead.
        let mut refresh = access.clone();
        refresh.validate_exp = false;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            access,
            refresh,
            issuer: issuer.to_owned(),
            ttl,
        }
    }

    /// Signs claims with HS256.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &self.encoding,
        )?)
    }

    /// Validates signature, algorithm, issuer, `nbf` and `exp`, and decodes
    /// the claims as `T`: [`Claims`] for all of them, [`SessionClaims`] for
    /// what a guarded call checks.
    pub fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<T, TokenError> {
        Ok(jsonwebtoken::decode::<T>(token, &self.decoding, &self.access)?.claims)
    }

    /// Like [`Self::verify`] for all of [`Claims`], but accepts an expired
    /// token (for refresh and logout, which check the session instead).
    pub fn verify_allow_expired(&self, token: &str) -> Result<Claims, TokenError> {
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.refresh)?.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: i64) -> Claims {
        Claims {
            iss: "gatehouse".into(),
            iat: now,
            nbf: now,
            exp: now + 60,
            sub: "u".into(),
            jti: "j".into(),
            sid: "s".into(),
            id: "u".into(),
            email: "a@b.c".into(),
            role: Role::Viewer,
            first_name: "A".into(),
            last_name: "B".into(),
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let keys = TokenKeys::new(&[7u8; 32], "gatehouse", 60);
        let now = chrono::Utc::now().timestamp();
        let t = keys.sign(&claims(now)).expect("sign");
        assert_eq!(keys.verify::<Claims>(&t).expect("valid").sub, "u");
        assert_eq!(
            keys.verify::<SessionClaims>(&t).expect("valid"),
            SessionClaims {
                sub: "u".into(),
                jti: "j".into(),
                sid: "s".into(),
                role: Role::Viewer,
            }
        );

        let other = TokenKeys::new(&[8u8; 32], "gatehouse", 60);
        assert!(other.verify::<Claims>(&t).is_err(), "wrong secret");
        assert!(other.verify::<SessionClaims>(&t).is_err(), "wrong secret");
        let wrong_iss = TokenKeys::new(&[7u8; 32], "other", 60);
        assert!(wrong_iss.verify::<Claims>(&t).is_err(), "wrong iss");
        assert!(wrong_iss.verify::<SessionClaims>(&t).is_err(), "wrong iss");

        let mut expired = claims(now - 1000);
        expired.exp = now - 100;
        let t = keys.sign(&expired).expect("sign");
        assert!(keys.verify::<Claims>(&t).is_err(), "expired");
        assert!(keys.verify::<SessionClaims>(&t).is_err(), "expired");
        assert!(
            keys.verify_allow_expired(&t).is_ok(),
            "refresh accepts expired"
        );

        let mut future = claims(now);
        future.nbf = now + 100;
        let t = keys.sign(&future).expect("sign");
        assert!(keys.verify::<Claims>(&t).is_err(), "future nbf");
        assert!(keys.verify::<SessionClaims>(&t).is_err(), "future nbf");
        assert!(
            keys.verify_allow_expired(&t).is_err(),
            "future nbf on refresh"
        );
    }
}
