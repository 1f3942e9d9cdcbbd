//! Signing keys: which algorithm signs tokens (`JWT_ALGORITHM`), the key
//! material of the asymmetric ones (EdDSA, ES256, RS256), and where the key
//! set comes from: the database, shared by every instance (generated on first
//! start, rotated with `gatehouse keys rotate`), or PEM files the operator
//! distributes (`JWT_PRIVATE_KEY_FILE`, `JWT_KEYS_DIR`). See `docs/keys.md`.
//!
//! All cryptography is the RustCrypto crates' (the ones jsonwebtoken's
//! `rust_crypto` backend signs with) and ring's; this module only converts
//! between their formats.

pub mod routes;
pub mod set;
pub mod store;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::KeypairBytes;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rand::RngCore;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};

/// Bits of the RSA keys Gatehouse generates (RFC 7518 asks for at least 2048).
pub const RSA_BITS: usize = 2048;

/// `JWT_ALGORITHM`: how tokens are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum SigningAlg {
    /// HMAC-SHA256 with `JWT_SECRET`: every verifier can also sign.
    #[value(name = "HS256")]
    Hs256,
    /// Ed25519: small keys and signatures, fast; the recommended choice.
    #[value(name = "EdDSA")]
    EdDsa,
    /// ECDSA on P-256 with SHA-256.
    #[value(name = "ES256")]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and 2048-bit keys: for verifiers
    /// that know nothing else.
    #[value(name = "RS256")]
    Rs256,
}

impl SigningAlg {
    /// The JOSE name (`alg` header, `signing_keys.alg`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }

    /// The algorithm of a JOSE name, asymmetric ones only (what the key
    /// set stores).
    pub fn asymmetric(name: &str) -> Option<Self> {
        match name {
            "EdDSA" => Some(Self::EdDsa),
            "ES256" => Some(Self::Es256),
            "RS256" => Some(Self::Rs256),
            _ => None,
        }
    }

    /// jsonwebtoken's name for it.
    pub fn jwt(self) -> Algorithm {
        match self {
            Self::Hs256 => Algorithm::HS256,
            Self::EdDsa => Algorithm::EdDSA,
            Self::Es256 => Algorithm::ES256,
            Self::Rs256 => Algorithm::RS256,
        }
    }

    pub fn is_asymmetric(self) -> bool {
        self != Self::Hs256
    }
}

impl std::fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a key could not be generated, read or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "not a PEM private key of a supported kind (PKCS#8 Ed25519, P-256 or RSA; SEC1 P-256; PKCS#1 RSA)"
    )]
    UnsupportedPem,
    #[error("RSA keys must have at least {RSA_BITS} bits (this one has {0})")]
    RsaTooSmall(usize),
    #[error("{0} has no key pair of its own")]
    NotAsymmetric(SigningAlg),
    #[error("key generation failed: {0}")]
    Generate(String),
    #[error("invalid key: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    #[error("could not encode the key: {0}")]
    Encode(String),
}

/// One asymmetric key pair: its private key in the DER form jsonwebtoken
/// signs with (PKCS#8 for Ed25519 and P-256, PKCS#1 for RSA), its public
/// JWK and its `kid` (the RFC 7638 thumbprint of the public key, so the same
/// key has the same id wherever it is loaded). `Debug` shows no secret.
#[derive(Clone)]
pub struct KeyPair {
    pub alg: SigningAlg,
    pub kid: String,
    /// The public key: `kty`, `crv`/`x`/`y` or `n`/`e`, `kid`, `alg`, `use: sig`.
    pub jwk: Jwk,
    der: zeroize::Zeroizing<Vec<u8>>,
    encoding: EncodingKey,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// A new random key pair.
    pub fn generate(alg: SigningAlg) -> Result<Self, KeyError> {
        let der = match alg {
            SigningAlg::Hs256 => return Err(KeyError::NotAsymmetric(alg)),
            SigningAlg::EdDsa => {
                let mut seed = zeroize::Zeroizing::new([0u8; 32]);
                rand::rng().fill_bytes(seed.as_mut());
                ed25519_pkcs8(&ed25519_dalek::SigningKey::from_bytes(&seed))?
            }
            SigningAlg::Es256 => {
                let rng = ring::rand::SystemRandom::new();
                let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
                    &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &rng,
                )
                .map_err(|e| KeyError::Generate(e.to_string()))?;
                // Re-encoded by p256 so every P-256 key is stored in one form.
                p256_pkcs8(
                    &p256::SecretKey::from_pkcs8_der(pkcs8.as_ref())
                        .map_err(|e| KeyError::Generate(e.to_string()))?,
                )?
            }
            SigningAlg::Rs256 => {
                let key = rsa::RsaPrivateKey::new(&mut rand08::rngs::OsRng, RSA_BITS)
                    .map_err(|e| KeyError::Generate(e.to_string()))?;
                rsa_pkcs1(&key)?
            }
        };
        Self::from_der(alg, der)
    }

    /// A private key from PEM: PKCS#8 (`BEGIN PRIVATE KEY`, Ed25519, P-256
    /// or RSA), SEC1 (`BEGIN EC PRIVATE KEY`, P-256) or PKCS#1 (`BEGIN RSA
    /// PRIVATE KEY`). The algorithm follows from the key.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            return Self::from_der(SigningAlg::EdDsa, ed25519_pkcs8(&key)?);
        }
        let p256 = p256::SecretKey::from_pkcs8_pem(pem)
            .ok()
            .or_else(|| p256::SecretKey::from_sec1_pem(pem).ok());
        if let Some(key) = p256 {
            return Self::from_der(SigningAlg::Es256, p256_pkcs8(&key)?);
        }
        let rsa = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
            .ok()
            .or_else(|| rsa::RsaPrivateKey::from_pkcs1_pem(pem).ok());
        if let Some(key) = rsa {
            let bits = rsa::traits::PublicKeyParts::size(&key) * 8;
            if bits < RSA_BITS {
                return Err(KeyError::RsaTooSmall(bits));
            }
            return Self::from_der(SigningAlg::Rs256, rsa_pkcs1(&key)?);
        }
        Err(KeyError::UnsupportedPem)
    }

    /// The private key as PKCS#8 PEM (RSA too), e.g. to hand it to a file.
    pub fn to_pem(&self) -> Result<zeroize::Zeroizing<String>, KeyError> {
        use pkcs8::LineEnding::LF;
        let encode = |e: &dyn std::fmt::Display| KeyError::Encode(e.to_string());
        Ok(match self.alg {
            SigningAlg::Hs256 => return Err(KeyError::NotAsymmetric(self.alg)),
            SigningAlg::EdDsa => ed25519_dalek::SigningKey::from_pkcs8_der(&self.der)
                .map_err(|e| encode(&e))?
                .to_pkcs8_pem(LF)
                .map_err(|e| encode(&e))?,
            SigningAlg::Es256 => p256::SecretKey::from_pkcs8_der(&self.der)
                .map_err(|e| encode(&e))?
                .to_pkcs8_pem(LF)
                .map_err(|e| encode(&e))?,
            SigningAlg::Rs256 => rsa::RsaPrivateKey::from_pkcs1_der(&self.der)
                .map_err(|e| encode(&e))?
                .to_pkcs8_pem(LF)
                .map_err(|e| encode(&e))?,
        })
    }

    /// A key pair from the DER form [`Self::der`] returns (what the
    /// database stores, sealed).
    pub fn from_der(alg: SigningAlg, der: impl Into<Vec<u8>>) -> Result<Self, KeyError> {
        let der = zeroize::Zeroizing::new(der.into());
        let encoding = match alg {
            SigningAlg::Hs256 => return Err(KeyError::NotAsymmetric(alg)),
            SigningAlg::EdDsa => EncodingKey::from_ed_der(&der),
            SigningAlg::Es256 => EncodingKey::from_ec_der(&der),
            SigningAlg::Rs256 => EncodingKey::from_rsa_der(&der),
        };
        let mut jwk = Jwk::from_encoding_key(&encoding, alg.jwt())?;
        let kid = jwk.thumbprint(ThumbprintHash::SHA256)?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        // Proves the key signs and its public half verifies, so a corrupt or
        // mismatched key stops the start rather than every login.
        let probe = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(alg.jwt()),
            &serde_json::json!({"probe": true}),
            &encoding,
        )?;
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk)?;
        let mut validation = jsonwebtoken::Validation::new(alg.jwt());
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        jsonwebtoken::decode::<serde_json::Value>(&probe, &decoding, &validation)?;
        Ok(Self {
            alg,
            kid,
            jwk,
            der,
            encoding,
        })
    }

    /// The private key in the DER form jsonwebtoken signs with.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }
}

/// The 48-byte PKCS#8 v1 form (no public key inside) that jsonwebtoken's
/// EdDSA signer and its JWK conversion expect.
fn ed25519_pkcs8(key: &ed25519_dalek::SigningKey) -> Result<Vec<u8>, KeyError> {
    let bytes = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    Ok(bytes
        .to_pkcs8_der()
        .map_err(|e| KeyError::Encode(e.to_string()))?
        .as_bytes()
        .to_vec())
}

fn p256_pkcs8(key: &p256::SecretKey) -> Result<Vec<u8>, KeyError> {
    Ok(key
        .to_pkcs8_der()
        .map_err(|e| KeyError::Encode(e.to_string()))?
        .as_bytes()
        .to_vec())
}

fn rsa_pkcs1(key: &rsa::RsaPrivateKey) -> Result<Vec<u8>, KeyError> {
    Ok(key
        .to_pkcs1_der()
        .map_err(|e| KeyError::Encode(e.to_string()))?
        .as_bytes()
        .to_vec())
}

/// The `kid` of the HS256 key: a keyed hash of the secret (HMAC-SHA256 of a
/// fixed label), so it names the secret without revealing anything about it,
/// and changes when `JWT_SECRET` does.
pub fn hs256_kid(secret: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, b"gatehouse token key id v1");
    format!("hs256-{}", URL_SAFE_NO_PAD.encode(&tag.as_ref()[..12]))
}
