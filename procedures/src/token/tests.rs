//! Token signing and verification: claims, refusals of hand-made tokens,
//! and (below) the asymmetric key set and its rotation.

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
    for (claim, value) in [("exp", -5), ("nbf", -5), ("exp", i64::MIN)] {
        let mut c: serde_json::Value =
            serde_json::from_str(&claims(r#""gatehouse""#, "")).expect("json");
        c[claim] = value.into();
        refused(
            &signed(&header, &c.to_string()),
            &format!("{claim} {value}"),
        );
    }
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

/// The asymmetric algorithms, the key set and its rotation.
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
