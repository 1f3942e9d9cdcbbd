//! The compact JWS form (RFC 7515, section 7.1) taken apart once per
//! verification: the three parts, each base64url-decoded at most once, and
//! the header parsed into the only fields [`super::TokenKeys`] looks at.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::TokenError;

/// The header fields verification looks at. Others are ignored, as
/// jsonwebtoken's own `Header` ignores them; `kid` is borrowed from the
/// decoded header, so the common case allocates nothing for it.
#[derive(Deserialize)]
pub(super) struct TokenHeader<'a> {
    /// Only the algorithms jsonwebtoken knows parse (`none` does not).
    pub alg: Algorithm,
    #[serde(borrow, default)]
    pub kid: Option<Cow<'a, str>>,
    #[serde(default)]
    pub crit: Option<Vec<String>>,
}

/// A compact JWS split at its two dots: `header.payload.signature`, with
/// `signed` the `header.payload` the signature covers.
pub(super) struct TokenParts<'a> {
    pub header: &'a str,
    pub payload: &'a str,
    pub signature: &'a str,
    pub signed: &'a str,
}

impl<'a> TokenParts<'a> {
    pub fn split(token: &'a str) -> Result<Self, TokenError> {
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
pub(super) fn base64url(part: &str, what: &'static str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed(what))
}
