//! Access tokens: signing (HS256, or EdDSA / ES256 / RS256 with a key set,
//! see [`crate::keys`]) and the strict validation every guarded call and
//! `auth.refreshToken` rely on.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use gatehouse::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::keys::{KeyError, KeyPair, SigningAlg};

mod compact;
use compact::{TokenHeader, TokenParts, base64url};

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
    /// Required, and a plain string (an array of issuers with ours among
    /// them is refused); checked against ours by [`TokenKeys::verify`].
    iss: String,
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
            iss: "gatehouse".into(),
            iat,
            exp,
            nbf,
        }
    }
}

/// The registered claims every decoded claim set carries (serde makes them
/// required), for the checks of [`TokenKeys::verify`]: the issuer, and
/// `exp` / `nbf` to the millisecond.
pub trait RegisteredClaims {
    /// `(nbf, exp)` in Unix seconds.
    fn window(&self) -> (i64, i64);
    /// The `iss` claim.
    fn issuer(&self) -> &str;
}

impl RegisteredClaims for Claims {
    fn window(&self) -> (i64, i64) {
        (self.nbf, self.exp)
    }
    fn issuer(&self) -> &str {
        &self.iss
    }
}

impl RegisteredClaims for SessionClaims {
    fn window(&self) -> (i64, i64) {
        (self.nbf, self.exp)
    }
    fn issuer(&self) -> &str {
        &self.iss
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

/// One key a token may be verified with, pinned to its algorithm alone.
struct VerifyKey {
    alg: Algorithm,
    check: SignatureCheck,
}

/// How a key checks a signature.
enum SignatureCheck {
    /// jsonwebtoken's own primitive for the key's algorithm.
    Jwt(DecodingKey),
    /// An Ed25519 key decompressed once. jsonwebtoken's EdDSA verifier
    /// rebuilds the curve point from the key's bytes on every call; the
    /// signature check itself is the same `ed25519-dalek` call either way.
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl VerifyKey {
    fn new(key: DecodingKey, alg: Algorithm) -> Result<Self, KeyError> {
        let check = match alg {
            Algorithm::EdDSA => {
                // Exactly 32 bytes: a longer row is damaged, not a key to cut.
                let bytes: &[u8; 32] = key
                    .try_get_as_bytes()?
                    .try_into()
                    .map_err(|_| KeyError::Encode("an Ed25519 key has 32 bytes".into()))?;
                SignatureCheck::Ed25519(
                    ed25519_dalek::VerifyingKey::from_bytes(bytes)
                        .map_err(|e| KeyError::Encode(e.to_string()))?,
                )
            }
            _ => SignatureCheck::Jwt(key),
        };
        Ok(Self { alg, check })
    }

    fn hs256(secret: &[u8]) -> Self {
        Self {
            alg: Algorithm::HS256,
            check: SignatureCheck::Jwt(DecodingKey::from_secret(secret)),
        }
    }

    /// Whether `signature` (base64url) signs `signed` under this key.
    fn signs(&self, signature: &str, signed: &[u8]) -> Result<bool, TokenError> {
        use ed25519_dalek::Verifier;
        match &self.check {
            SignatureCheck::Jwt(key) => {
                jsonwebtoken::crypto::verify(signature, signed, key, self.alg)
                    .map_err(TokenError::Jwt)
            }
            SignatureCheck::Ed25519(key) => {
                let signature = base64url(signature, "signature is not base64url")?;
                Ok(ed25519_dalek::Signature::from_slice(&signature)
                    .is_ok_and(|signature| key.verify(signed, &signature).is_ok()))
            }
        }
    }
}

/// The keys of one moment: the one that signs, every one that verifies (by
/// `kid`), and the JWKS document of the public ones. Replaced as a whole
/// when the key set changes, so a verification sees one consistent set.
struct KeySet {
    header: Header,
    signer: EncodingKey,
    by_kid: HashMap<String, VerifyKey>,
    /// The key for tokens without a `kid`: under HS256 those signed before
    /// tokens had one; none with a key set.
    without_kid: Option<VerifyKey>,
    /// `/.well-known/jwks.json`, serialised once (asymmetric keys only).
    jwks: Option<Arc<str>>,
}

impl KeySet {
    fn hs256(secret: &[u8]) -> Self {
        let kid = crate::keys::hs256_kid(secret);
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        Self {
            header,
            signer: EncodingKey::from_secret(secret),
            by_kid: HashMap::from([(kid, VerifyKey::hs256(secret))]),
            without_kid: Some(VerifyKey::hs256(secret)),
            jwks: None,
        }
    }

    fn asymmetric<'a>(
        active: &'a KeyPair,
        others: impl IntoIterator<Item = &'a KeyPair>,
    ) -> Result<Self, KeyError> {
        let mut by_kid = HashMap::new();
        let mut jwks = Vec::new();
        for pair in std::iter::once(active).chain(others) {
            if by_kid.contains_key(&pair.kid) {
                continue;
            }
            let key = DecodingKey::from_jwk(&pair.jwk)?;
            by_kid.insert(pair.kid.clone(), VerifyKey::new(key, pair.alg.jwt())?);
            jwks.push(&pair.jwk);
        }
        let document = serde_json::to_string(&serde_json::json!({ "keys": jwks }))
            .map_err(|e| KeyError::Encode(e.to_string()))?;
        let mut header = Header::new(active.alg.jwt());
        header.kid = Some(active.kid.clone());
        Ok(Self {
            header,
            signer: active.encoding_key().clone(),
            by_kid,
            without_kid: None,
            jwks: Some(document.into()),
        })
    }
}

/// The signing keys and the validation of access and refresh tokens.
pub struct TokenKeys {
    set: RwLock<Arc<KeySet>>,
    algorithm: SigningAlg,
    /// Clock skew tolerated on `exp` and `nbf`, in milliseconds.
    leeway_ms: i64,
    pub issuer: String,
    /// Access-token lifetime in seconds.
    pub ttl: u64,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("algorithm", &self.algorithm)
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
    /// Not a compact JWS, a part not base64url, or a header or claim set
    /// that is not the JSON we require (a claim missing or of the wrong
    /// type); the detail says which.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("token signature does not match")]
    BadSignature,
    #[error("token issued by another issuer")]
    WrongIssuer,
    #[error("token of {0} bytes is over the {MAX_TOKEN_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    /// Only the count: the names are the sender's, unchecked before the
    /// signature, and may be long.
    #[error("token header names {0} critical extension(s) we do not understand")]
    Critical(usize),
    /// No key of the set has this `kid` (or the token has none where one
    /// is required). It may be a key another instance just added, so the
    /// caller may reload the key set and try once more.
    #[error("token signed with an unknown key {0:?}")]
    UnknownKey(Option<String>),
    #[error("token alg {0:?} is not the algorithm of its key")]
    WrongAlgorithm(Algorithm),
    #[error("could not sign: {0}")]
    Key(#[from] KeyError),
}

impl TokenKeys {
    /// HS256 keys for `secret`, issuing and requiring `issuer`, with no
    /// clock leeway (see [`Self::with_leeway`]). Tokens carry a `kid`
    /// derived from the secret ([`crate::keys::hs256_kid`]); tokens without
    /// one (signed before tokens had it) are accepted too.
    pub fn new(secret: &[u8], issuer: &str, ttl: u64) -> Self {
        Self::with_set(KeySet::hs256(secret), SigningAlg::Hs256, issuer, ttl)
    }

    /// Keys of a key set: `active` signs, it and `others` verify.
    pub fn asymmetric(
        active: &KeyPair,
        others: &[KeyPair],
        issuer: &str,
        ttl: u64,
    ) -> Result<Self, KeyError> {
        let set = KeySet::asymmetric(active, others)?;
        Ok(Self::with_set(set, active.alg, issuer, ttl))
    }

    fn with_set(set: KeySet, algorithm: SigningAlg, issuer: &str, ttl: u64) -> Self {
        Self {
            set: RwLock::new(Arc::new(set)),
            algorithm,
            leeway_ms: 0,
            issuer: issuer.to_owned(),
            ttl,
        }
    }

    /// Replaces the key set (after a rotation, here or on another
    /// instance): `active` signs from now on, it and `others` verify.
    pub fn replace(&self, active: &KeyPair, others: &[KeyPair]) -> Result<(), KeyError> {
        let set = Arc::new(KeySet::asymmetric(active, others)?);
        *self.set.write().unwrap_or_else(PoisonError::into_inner) = set;
        Ok(())
    }

    fn current(&self) -> Arc<KeySet> {
        self.set
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The algorithm tokens are signed with (`JWT_ALGORITHM`).
    pub fn algorithm(&self) -> SigningAlg {
        self.algorithm
    }

    /// The `kid` new tokens carry.
    pub fn active_kid(&self) -> Option<String> {
        self.current().header.kid.clone()
    }

    /// Every `kid` a token may carry, sorted.
    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.current().by_kid.keys().cloned().collect();
        kids.sort();
        kids
    }

    /// The JWKS document (RFC 7517) of the verifying keys; `None` under
    /// HS256, whose key must stay secret.
    pub fn jwks(&self) -> Option<Arc<str>> {
        self.current().jwks.clone()
    }

    /// Tolerates `secs` of clock skew between instances on `exp` and `nbf`
    /// (`JWT_LEEWAY`; at most [`MAX_LEEWAY_SECS`]).
    #[must_use]
    pub fn with_leeway(mut self, secs: u64) -> Self {
        let secs = secs.min(MAX_LEEWAY_SECS);
        self.leeway_ms = i64::try_from(secs * 1000).unwrap_or(0);
        self
    }

    /// Signs claims with the active key, naming it in the `kid` header.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let set = self.current();
        Ok(jsonwebtoken::encode(&set.header, claims, &set.signer)?)
    }

    /// Validates size, key (`kid`), algorithm (that of the key),
    /// signature, issuer (a single string), `iat`, `nbf` and `exp`, refuses
    /// any `crit` header, and decodes the claims as `T`: [`Claims`] for all
    /// of them, [`SessionClaims`] for what a guarded call checks. A token is
    /// expired from the millisecond its `exp` is reached (plus the leeway).
    pub fn verify<T: DeserializeOwned + RegisteredClaims>(
        &self,
        token: &str,
    ) -> Result<T, TokenError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let claims = self.decode::<T>(token, now_ms)?;
        if now_ms >= self.refused_from_ms(&claims) {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// The first millisecond (Unix) at which [`Self::verify`] refuses a
    /// token with these claims as expired: its `exp` plus the leeway. Open
    /// `auth.events` streams end then too.
    pub fn refused_from_ms(&self, claims: &impl RegisteredClaims) -> i64 {
        let (_, exp) = claims.window();
        exp.saturating_mul(1000).saturating_add(self.leeway_ms)
    }

    /// Like [`Self::verify`] for all of [`Claims`], but accepts an expired
    /// token (for refresh and logout, which check the session instead).
    pub fn verify_allow_expired(&self, token: &str) -> Result<Claims, TokenError> {
        self.decode::<Claims>(token, chrono::Utc::now().timestamp_millis())
    }

    /// Every check but `exp`, decoding each part once: the header, to pick
    /// the key by `kid` and refuse any other algorithm than the key's
    /// before the signature is looked at; the signature, by jsonwebtoken's
    /// own primitive for the key's algorithm; then the claims, straight into
    /// `T`, whose required fields are the required claims. `nbf` is checked
    /// against `now_ms`, the caller's clock reading.
    fn decode<T: DeserializeOwned + RegisteredClaims>(
        &self,
        token: &str,
        now_ms: i64,
    ) -> Result<T, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge(token.len()));
        }
        let parts = TokenParts::split(token)?;
        let header = base64url(parts.header, "header is not base64url")?;
        let header: TokenHeader<'_> = serde_json::from_slice(&header)
            .map_err(|_| TokenError::Malformed("header is not a JWS header we accept"))?;
        // We implement no JWS extension, so any `crit` entry is one we do not
        // understand, and RFC 7515 (4.1.11) says to refuse the token.
        if let Some(crit) = header.crit {
            return Err(TokenError::Critical(crit.len()));
        }
        {
            let set = self.set.read().unwrap_or_else(PoisonError::into_inner);
            let key = match header.kid.as_deref() {
                Some(kid) => set.by_kid.get(kid),
                None => set.without_kid.as_ref(),
            };
            let Some(key) = key else {
                // Only logged; an attacker's kid may be long.
                let kid = header.kid.map(|kid| kid.chars().take(64).collect());
                return Err(TokenError::UnknownKey(kid));
            };
            // Alg confusion: a token must use its key's algorithm (an HS256
            // token "signed" with an RS256 key's public bytes is refused
            // here, before any signature check).
            if header.alg != key.alg {
                return Err(TokenError::WrongAlgorithm(header.alg));
            }
            if !key.signs(parts.signature, parts.signed.as_bytes())? {
                return Err(TokenError::BadSignature);
            }
        }
        let claims = base64url(parts.payload, "claims are not base64url")?;
        let claims: T = serde_json::from_slice(&claims)
            .map_err(|_| TokenError::Malformed("claims missing, of the wrong type or not JSON"))?;
        if claims.issuer() != self.issuer {
            return Err(TokenError::WrongIssuer);
        }
        let (nbf, exp) = claims.window();
        // jsonwebtoken read these as unsigned and refused a negative one;
        // we never sign one, so a token carrying one is not ours.
        if nbf < 0 || exp < 0 {
            return Err(TokenError::Malformed("exp and nbf must not be negative"));
        }
        if now_ms < nbf.saturating_mul(1000).saturating_sub(self.leeway_ms) {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

#[cfg(test)]
pub(crate) mod tests;
