//! HS256 access tokens: signing and the strict validation every guarded call
//! and `auth.refreshToken` rely on.

use gatehouse::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Longest token accepted in `Authorization`, in bytes. Ours are well under
/// 1 KiB; anything this large is refused before it is decoded, so a client
/// cannot make every guarded call base64-decode and parse megabytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Largest clock skew `JWT_LEEWAY` may allow, in seconds.
pub const MAX_LEEWAY_SECS: u64 = 60;

/// The claims of every token, exactly as `docs/api.md#access-token` lists them.
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
    /// Required, and a plain string (jsonwebtoken alone would also accept an
    /// array of issuers with ours among them); its value is checked by
    /// jsonwebtoken.
    iss: StringOnly,
    /// Required; its value matters to no check.
    iat: i64,
    exp: i64,
    nbf: i64,
}

impl SessionClaims {
    #[cfg(test)]
    fn new(sub: &str, jti: &str, sid: &str, role: Role, times: (i64, i64, i64)) -> Self {
        let (iat, nbf, exp) = times;
        Self {
            sub: sub.into(),
            jti: jti.into(),
            sid: sid.into(),
            role,
            iss: StringOnly,
            iat,
            exp,
            nbf,
        }
    }
}

/// A claim that must be a JSON string, without keeping (allocating) it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StringOnly;

impl<'de> Deserialize<'de> for StringOnly {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = StringOnly;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<StringOnly, E> {
                Ok(StringOnly)
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// The registered time claims every decoded claim set carries, for the
/// millisecond-precise `exp` / `nbf` check in [`TokenKeys::verify`].
pub trait TimeClaims {
    /// `(nbf, exp)` in Unix seconds.
    fn window(&self) -> (i64, i64);
}

impl TimeClaims for Claims {
    fn window(&self) -> (i64, i64) {
        (self.nbf, self.exp)
    }
}

impl TimeClaims for SessionClaims {
    fn window(&self) -> (i64, i64) {
        (self.nbf, self.exp)
    }
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
    /// Clock skew tolerated on `exp` and `nbf`, in milliseconds.
    leeway_ms: i64,
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
pub enum TokenError {
    #[error("invalid token: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    #[error("token of {0} bytes is over the {MAX_TOKEN_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    #[error("token header names critical extensions we do not understand: {0:?}")]
    Critical(Vec<String>),
}

impl TokenKeys {
    /// Keys for `secret`, issuing and requiring `issuer`, with no clock
    /// leeway (see [`Self::with_leeway`]).
    pub fn new(secret: &[u8], issuer: &str, ttl: u64) -> Self {
        // Pinned to HS256: `alg: none` and every other algorithm are refused
        // before the signature is even looked at.
        let mut access = Validation::new(Algorithm::HS256);
        access.algorithms = vec![Algorithm::HS256];
        access.set_issuer(&[issuer]);
        access.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
        // `exp` and `nbf` are checked in `verify`, to the millisecond
        // (jsonwebtoken compares whole seconds, so a token would live on for
        // up to a second after its `exp`).
        access.leeway = 0;
        access.validate_exp = false;
        access.validate_nbf = false;
        access.validate_aud = false;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            access,
            leeway_ms: 0,
            issuer: issuer.to_owned(),
            ttl,
        }
    }

    /// Tolerates `secs` of clock skew between instances on `exp` and `nbf`
    /// (`JWT_LEEWAY`; at most [`MAX_LEEWAY_SECS`]).
    #[must_use]
    pub fn with_leeway(mut self, secs: u64) -> Self {
        let secs = secs.min(MAX_LEEWAY_SECS);
        self.leeway_ms = i64::try_from(secs * 1000).unwrap_or(0);
        self
    }

    /// Signs claims with HS256.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &self.encoding,
        )?)
    }

    /// Validates size, signature, algorithm, issuer (a single string),
    /// `iat`, `nbf` and `exp`, refuses any `crit` header, and decodes the
    /// claims as `T`: [`Claims`] for all of them, [`SessionClaims`] for what
    /// a guarded call checks. A token is expired from the millisecond its
    /// `exp` is reached (plus the leeway).
    pub fn verify<T: DeserializeOwned + TimeClaims>(&self, token: &str) -> Result<T, TokenError> {
        let claims = self.decode::<T>(token)?;
        let (_, exp) = claims.window();
        if chrono::Utc::now().timestamp_millis()
            >= exp.saturating_mul(1000).saturating_add(self.leeway_ms)
        {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// Like [`Self::verify`] for all of [`Claims`], but accepts an expired
    /// token (for refresh and logout, which check the session instead).
    pub fn verify_allow_expired(&self, token: &str) -> Result<Claims, TokenError> {
        self.decode::<Claims>(token)
    }

    /// Every check but `exp`.
    fn decode<T: DeserializeOwned + TimeClaims>(&self, token: &str) -> Result<T, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge(token.len()));
        }
        let data = jsonwebtoken::decode::<T>(token, &self.decoding, &self.access)?;
        // We implement no JWS extension, so any `crit` entry is one we do not
        // understand, and RFC 7515 (4.1.11) says to refuse the token.
        if let Some(crit) = data.header.crit {
            return Err(TokenError::Critical(crit));
        }
        let (nbf, _) = data.claims.window();
        if chrono::Utc::now().timestamp_millis()
            < nbf.saturating_mul(1000).saturating_sub(self.leeway_ms)
        {
            return Err(TokenError::NotYetValid);
        }
        Ok(data.claims)
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
            SessionClaims::new("u", "j", "s", Role::Viewer, (now, now, now + 60))
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
