//! Access tokens: signing (HS256, or EdDSA / ES256 / RS256 with a key set,
//! see [`crate::keys`]) and the strict validation every guarded call and
//! `auth.refreshToken` rely on.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::keys::{KeyError, KeyPair, SigningAlg};

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
pub trait TimeClaims {
    /// `(nbf, exp)` in Unix seconds.
    fn window(&self) -> (i64, i64);
    /// The `iss` claim.
    fn issuer(&self) -> &str;
}

impl TimeClaims for Claims {
    fn window(&self) -> (i64, i64) {
        (self.nbf, self.exp)
    }
    fn issuer(&self) -> &str {
        &self.iss
    }
}

impl TimeClaims for SessionClaims {
    fn window(&self) -> (i64, i64) {
        (self.nbf, self.exp)
    }
    fn issuer(&self) -> &str {
        &self.iss
    }
}

/// The header fields verification looks at. Others are ignored, as
/// jsonwebtoken's own `Header` ignores them; `kid` is borrowed from the
/// decoded header, so the common case allocates nothing for it.
#[derive(Deserialize)]
struct TokenHeader<'a> {
    /// Only the algorithms jsonwebtoken knows parse (`none` does not).
    alg: Algorithm,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Option<Vec<String>>,
}

/// A compact JWS split at its two dots: `header.payload.signature`, with
/// `signed` the `header.payload` the signature covers.
struct TokenParts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    signed: &'a str,
}

impl<'a> TokenParts<'a> {
    fn split(token: &'a str) -> Result<Self, TokenError> {
        let (signed, signature) = token
            .rsplit_once('.')
            .ok_or(TokenError::Malformed("not three dot-separated parts"))?;
        let (header, payload) = signed
            .split_once('.')
            .filter(|(_, payload)| !payload.contains('.'))
            .ok_or(TokenError::Malformed("not three dot-separated parts"))?;
        Ok(Self {
            header,
            payload,
            signature,
            signed,
        })
    }
}

/// Base64url without padding, as RFC 7515 encodes every part.
fn base64url(part: &str, what: &'static str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed(what))
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
    key: DecodingKey,
    alg: Algorithm,
    /// An Ed25519 key decompressed once. jsonwebtoken's EdDSA verifier
    /// rebuilds the curve point from the key's bytes on every call; the
    /// signature check itself is the same `ed25519-dalek` call either way.
    ed25519: Option<ed25519_dalek::VerifyingKey>,
}

impl VerifyKey {
    fn new(key: DecodingKey, alg: Algorithm) -> Result<Self, KeyError> {
        let ed25519 = match alg {
            Algorithm::EdDSA => {
                let bytes: &[u8; 32] = key
                    .try_get_as_bytes()?
                    .get(..32)
                    .and_then(|b| b.try_into().ok())
                    .ok_or(KeyError::Encode("an Ed25519 key has 32 bytes".into()))?;
                Some(
                    ed25519_dalek::VerifyingKey::from_bytes(bytes)
                        .map_err(|e| KeyError::Encode(e.to_string()))?,
                )
            }
            _ => None,
        };
        Ok(Self { key, alg, ed25519 })
    }

    /// Whether `signature` (base64url) signs `signed` under this key.
    fn signs(&self, signature: &str, signed: &[u8]) -> Result<bool, TokenError> {
        use ed25519_dalek::Verifier;
        let Some(ed25519) = &self.ed25519 else {
            return jsonwebtoken::crypto::verify(signature, signed, &self.key, self.alg)
                .map_err(TokenError::Jwt);
        };
        let signature = base64url(signature, "signature is not base64url")?;
        Ok(ed25519_dalek::Signature::from_slice(&signature)
            .is_ok_and(|signature| ed25519.verify(signed, &signature).is_ok()))
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
        let verify = || VerifyKey {
            key: DecodingKey::from_secret(secret),
            alg: Algorithm::HS256,
            ed25519: None,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        Self {
            header,
            signer: EncodingKey::from_secret(secret),
            by_kid: HashMap::from([(kid, verify())]),
            without_kid: Some(verify()),
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
    #[error("token header names critical extensions we do not understand: {0:?}")]
    Critical(Vec<String>),
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

    /// Every check but `exp`, decoding each part once: the header, to pick
    /// the key by `kid` and refuse any other algorithm than the key's
    /// before the signature is looked at; the signature, by jsonwebtoken's
    /// own primitive for the key's algorithm; then the claims, straight into
    /// `T`, whose required fields are the required claims.
    fn decode<T: DeserializeOwned + TimeClaims>(&self, token: &str) -> Result<T, TokenError> {
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
            return Err(TokenError::Critical(crit));
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
        let (nbf, _) = claims.window();
        if chrono::Utc::now().timestamp_millis()
            < nbf.saturating_mul(1000).saturating_sub(self.leeway_ms)
        {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Claims of a token valid for a minute from `now` (Unix seconds).
    pub(crate) fn claims(now: i64) -> Claims {
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

    /// Tokens built by hand, each correctly signed with the right key, so
    /// only the check named beside it can refuse them.
    #[test]
    fn hand_made_tokens_are_refused() {
        use base64::Engine;
        use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
        use jsonwebtoken::crypto::sign;

        let secret = [7u8; 32];
        let keys = TokenKeys::new(&secret, "gatehouse", 60);
        let key = EncodingKey::from_secret(&secret);
        let kid = crate::keys::hs256_kid(&secret);
        let b64 = |json: &str| URL_SAFE_NO_PAD.encode(json);
        let signed = |header: &str, claims: &str| {
            let message = format!("{}.{}", b64(header), b64(claims));
            let signature = sign(message.as_bytes(), &key, Algorithm::HS256).expect("sign");
            format!("{message}.{signature}")
        };
        let now = chrono::Utc::now().timestamp();
        let header = format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}"}}"#);
        let claims = |iss: &str, drop: &str| {
            let mut c = serde_json::to_value(super::tests::claims(now)).expect("json");
            c["iss"] = serde_json::from_str(iss).expect("iss");
            c.as_object_mut().expect("object").remove(drop);
            c.to_string()
        };
        let good = signed(&header, &claims(r#""gatehouse""#, ""));
        assert_eq!(keys.verify::<Claims>(&good).expect("valid").sub, "u");
        assert_eq!(keys.verify::<SessionClaims>(&good).expect("valid").sid, "s");
        // An escaped kid is the same kid.
        let escaped = kid.replacen('-', "\\u002d", 1);
        let t = signed(
            &format!(r#"{{"alg":"HS256","kid":"{escaped}"}}"#),
            &claims(r#""gatehouse""#, ""),
        );
        assert!(keys.verify::<SessionClaims>(&t).is_ok(), "escaped kid");

        let refused = |token: &str, why: &str| {
            assert!(keys.verify::<Claims>(token).is_err(), "Claims: {why}");
            assert!(
                keys.verify::<SessionClaims>(token).is_err(),
                "SessionClaims: {why}"
            );
            assert!(keys.verify_allow_expired(token).is_err(), "refresh: {why}");
        };
        for iss in [
            r#"["gatehouse"]"#,
            r#"["gatehouse","x"]"#,
            "null",
            "1",
            r#""Gatehouse""#,
        ] {
            refused(&signed(&header, &claims(iss, "")), &format!("iss {iss}"));
        }
        for claim in ["iss", "sub", "exp", "nbf", "iat", "jti", "sid", "role"] {
            refused(
                &signed(&header, &claims(r#""gatehouse""#, claim)),
                &format!("no {claim}"),
            );
        }
        refused(
            &signed(
                &format!(r#"{{"alg":"HS256","kid":"{kid}","crit":["exp"]}}"#),
                &claims(r#""gatehouse""#, ""),
            ),
            "crit",
        );
        refused(
            &signed(r#"{"alg":"none"}"#, &claims(r#""gatehouse""#, "")),
            "alg none",
        );
        refused(
            &signed(r#"{"kid":"x"}"#, &claims(r#""gatehouse""#, "")),
            "no alg",
        );
        refused(
            &signed("[]", &claims(r#""gatehouse""#, "")),
            "header not an object",
        );
        refused(&signed(&header, "[]"), "claims not an object");
        refused(&signed(&header, "{"), "claims not JSON");

        // The same good token, damaged in transit.
        let (message, signature) = good.rsplit_once('.').expect("parts");
        let (head, payload) = message.split_once('.').expect("parts");
        let other = b64(&claims(r#""gatehouse""#, "").replace(r#""sub":"u""#, r#""sub":"admin""#));
        refused(&format!("{head}.{other}.{signature}"), "payload swapped");
        refused(&format!("{message}.{}", &signature[1..]), "signature cut");
        refused(&format!("{message}."), "no signature");
        refused(message, "two parts");
        refused(&format!("{good}.x"), "four parts");
        refused(
            &format!("{head}.{payload}.{signature}="),
            "padded signature",
        );
        let padded = URL_SAFE.encode(claims(r#""gatehouse""#, "") + " ");
        refused(&format!("{head}.{padded}.{signature}"), "padded claims");
        refused(&format!("{head}.{payload}+.{signature}"), "not base64url");
        refused("", "empty");
        refused("..", "empty parts");
    }
}

/// The asymmetric algorithms, the key set and its rotation.
#[cfg(test)]
mod key_set_tests {
    use super::*;
    use crate::keys::{KeyPair, SigningAlg};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const ASYMMETRIC: [SigningAlg; 3] = [SigningAlg::EdDsa, SigningAlg::Es256, SigningAlg::Rs256];

    fn claims() -> Claims {
        super::tests::claims(chrono::Utc::now().timestamp())
    }

    fn header_of(token: &str) -> Header {
        jsonwebtoken::decode_header(token).expect("header")
    }

    /// A token with `header` and our claims, signed by `key`.
    fn forge(header: &Header, key: &EncodingKey) -> String {
        jsonwebtoken::encode(header, &claims(), key).expect("sign")
    }

    #[test]
    fn every_algorithm_signs_and_verifies_with_its_kid() {
        for alg in ASYMMETRIC {
            let pair = KeyPair::generate(alg).expect("generate");
            let keys = TokenKeys::asymmetric(&pair, &[], "gatehouse", 60).expect("keys");
            let token = keys.sign(&claims()).expect("sign");
            let header = header_of(&token);
            assert_eq!(header.alg, alg.jwt(), "{alg}");
            assert_eq!(header.kid.as_deref(), Some(pair.kid.as_str()), "{alg}");
            assert_eq!(keys.verify::<Claims>(&token).expect("valid").sub, "u");
            assert_eq!(
                keys.verify::<SessionClaims>(&token).expect("valid").sid,
                "s"
            );

            // Same kid, another key: the signature does not match.
            let other = KeyPair::generate(alg).expect("generate");
            let forged = forge(&header, other.encoding_key());
            assert!(
                matches!(
                    keys.verify::<Claims>(&forged),
                    Err(TokenError::BadSignature)
                ),
                "{alg}"
            );
            // The right key, a damaged signature: cut short, one byte
            // changed, or not base64url.
            let (message, signature) = token.rsplit_once('.').expect("three parts");
            let mut flipped = URL_SAFE_NO_PAD.decode(signature).expect("b64");
            flipped[0] ^= 1;
            for bad in [
                &signature[..signature.len() - 4],
                &URL_SAFE_NO_PAD.encode(&flipped),
                "!!!!",
                "",
            ] {
                assert!(
                    keys.verify::<Claims>(&format!("{message}.{bad}")).is_err(),
                    "{alg}: signature {bad:?}"
                );
            }
            // A key the set does not have, and no kid at all: unknown key.
            let elsewhere = TokenKeys::asymmetric(&other, &[], "gatehouse", 60).expect("keys");
            assert!(
                matches!(
                    elsewhere.verify::<Claims>(&token),
                    Err(TokenError::UnknownKey(Some(_)))
                ),
                "{alg}"
            );
            let mut no_kid = header.clone();
            no_kid.kid = None;
            let token = forge(&no_kid, pair.encoding_key());
            assert!(
                matches!(
                    keys.verify::<Claims>(&token),
                    Err(TokenError::UnknownKey(None))
                ),
                "{alg}"
            );
            let mut made_up = header.clone();
            made_up.kid = Some("made-up".into());
            let token = forge(&made_up, pair.encoding_key());
            assert!(
                matches!(
                    keys.verify::<SessionClaims>(&token),
                    Err(TokenError::UnknownKey(_))
                ),
                "{alg}"
            );
            // The other checks still hold: another issuer is refused.
            let wrong_iss = TokenKeys::asymmetric(&pair, &[], "other", 60).expect("keys");
            assert!(
                wrong_iss
                    .verify::<Claims>(&keys.sign(&claims()).expect("sign"))
                    .is_err()
            );
        }
    }

    #[test]
    fn the_jwks_lists_the_public_keys_only() {
        for alg in ASYMMETRIC {
            let pair = KeyPair::generate(alg).expect("generate");
            let older = KeyPair::generate(alg).expect("generate");
            let keys = TokenKeys::asymmetric(&pair, std::slice::from_ref(&older), "gatehouse", 60)
                .expect("keys");
            let jwks: serde_json::Value =
                serde_json::from_str(&keys.jwks().expect("a JWKS")).expect("json");
            let listed = jwks["keys"].as_array().expect("keys");
            assert_eq!(listed.len(), 2, "{alg}");
            assert_eq!(listed[0]["kid"], pair.kid.as_str());
            assert_eq!(listed[1]["kid"], older.kid.as_str());
            for key in listed {
                assert_eq!(key["alg"], alg.as_str());
                assert_eq!(key["use"], "sig");
                // No private parameter of RFC 7518 (d, p, q, dp, dq, qi).
                for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                    assert!(key.get(private).is_none(), "{alg} JWK has {private}");
                }
            }
        }
        assert!(TokenKeys::new(&[7u8; 32], "gatehouse", 60).jwks().is_none());
    }

    #[test]
    fn alg_confusion_is_refused() {
        for alg in ASYMMETRIC {
            let pair = KeyPair::generate(alg).expect("generate");
            let keys = TokenKeys::asymmetric(&pair, &[], "gatehouse", 60).expect("keys");
            let jwks = keys.jwks().expect("jwks");
            let jwk: serde_json::Value = serde_json::from_str(&jwks).expect("json");
            let jwk = &jwk["keys"][0];
            // The public key in every form a verifier might hand an HMAC.
            let mut publics: Vec<Vec<u8>> =
                vec![jwks.as_bytes().to_vec(), jwk.to_string().into_bytes()];
            for part in ["x", "y", "n"] {
                if let Some(b64) = jwk[part].as_str() {
                    publics.push(b64.as_bytes().to_vec());
                    publics.push(URL_SAFE_NO_PAD.decode(b64).expect("b64"));
                }
            }
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some(pair.kid.clone());
            for public in &publics {
                let token = forge(&header, &EncodingKey::from_secret(public));
                assert!(
                    matches!(
                        keys.verify::<Claims>(&token),
                        Err(TokenError::WrongAlgorithm(Algorithm::HS256))
                    ),
                    "{alg}: HS256 with the public key as secret"
                );
                assert!(keys.verify_allow_expired(&token).is_err());
            }
            // Another asymmetric algorithm under this key's kid.
            for other in ASYMMETRIC.into_iter().filter(|a| *a != alg) {
                let foreign = KeyPair::generate(other).expect("generate");
                let mut header = Header::new(other.jwt());
                header.kid = Some(pair.kid.clone());
                let token = forge(&header, foreign.encoding_key());
                assert!(
                    matches!(
                        keys.verify::<Claims>(&token),
                        Err(TokenError::WrongAlgorithm(_))
                    ),
                    "{alg} key, {other} token"
                );
            }
            // `alg: none` under the right kid.
            let signed = keys.sign(&claims()).expect("sign");
            let (_, rest) = signed.split_once('.').expect("three parts");
            let (payload, _) = rest.split_once('.').expect("three parts");
            let none = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","kid":"{}"}}"#, pair.kid));
            assert!(
                keys.verify::<Claims>(&format!("{none}.{payload}."))
                    .is_err(),
                "{alg}: none"
            );
        }
    }

    #[test]
    fn hs256_tokens_carry_a_kid_and_old_ones_without_still_verify() {
        let secret = [7u8; 32];
        let keys = TokenKeys::new(&secret, "gatehouse", 60);
        let token = keys.sign(&claims()).expect("sign");
        let header = header_of(&token);
        assert_eq!(header.alg, Algorithm::HS256);
        let kid = header.kid.clone().expect("a kid");
        assert_eq!(kid, crate::keys::hs256_kid(&secret));
        assert_ne!(kid, crate::keys::hs256_kid(&[8u8; 32]));
        assert!(keys.verify::<Claims>(&token).is_ok());
        // Signed before tokens had a kid.
        let before = forge(
            &Header::new(Algorithm::HS256),
            &EncodingKey::from_secret(&secret),
        );
        assert!(keys.verify::<Claims>(&before).is_ok());
        let mut other = header;
        other.kid = Some("hs256-other".into());
        let token = forge(&other, &EncodingKey::from_secret(&secret));
        assert!(matches!(
            keys.verify::<Claims>(&token),
            Err(TokenError::UnknownKey(_))
        ));
    }

    #[test]
    fn pem_keys_round_trip_in_every_common_encoding() {
        use pkcs8::LineEnding::LF;
        for alg in ASYMMETRIC {
            let pair = KeyPair::generate(alg).expect("generate");
            let pem = pair.to_pem().expect("pem");
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{alg}");
            let again = KeyPair::from_pem(&pem).expect("parse");
            assert_eq!((again.alg, &again.kid), (alg, &pair.kid));
        }
        // OpenSSL's traditional forms: SEC1 for P-256, PKCS#1 for RSA.
        let ec = KeyPair::generate(SigningAlg::Es256).expect("generate");
        let sec1 = p256::SecretKey::from_pkcs8_pem(&ec.to_pem().expect("pem"))
            .expect("p256")
            .to_sec1_pem(LF)
            .expect("sec1");
        assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        assert_eq!(KeyPair::from_pem(&sec1).expect("sec1").kid, ec.kid);
        let rsa = KeyPair::generate(SigningAlg::Rs256).expect("generate");
        let pkcs1 = {
            use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
            rsa::RsaPrivateKey::from_pkcs1_der(rsa.der())
                .expect("rsa")
                .to_pkcs1_pem(LF)
                .expect("pkcs1")
        };
        assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        assert_eq!(KeyPair::from_pem(&pkcs1).expect("pkcs1").kid, rsa.kid);
        assert!(
            KeyPair::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .is_err()
        );
        // Too small an RSA key is refused.
        let small = {
            use pkcs8::EncodePrivateKey;
            rsa::RsaPrivateKey::new(&mut rand08::rngs::OsRng, 1024)
                .expect("rsa")
                .to_pkcs8_pem(LF)
                .expect("pem")
        };
        assert!(matches!(
            KeyPair::from_pem(&small),
            Err(crate::keys::KeyError::RsaTooSmall(1024))
        ));
    }

    use pkcs8::DecodePrivateKey;
}
