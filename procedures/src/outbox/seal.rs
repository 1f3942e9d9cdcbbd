//! Sealing queued mail bodies: AES-256-GCM under a key derived from the
//! JWT secret, the row id bound in as associated data (see the outbox's
//! module docs for why).

use std::sync::Arc;

use rand::RngCore;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;

/// The key queued mail bodies are encrypted with (see the module docs).
/// Its `Debug` shows nothing of the key.
#[derive(Clone)]
pub struct MailKey(Arc<LessSafeKey>);

impl std::fmt::Debug for MailKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MailKey(..)")
    }
}

/// Prefix of a stored body: the format, so it can change later.
const SEALED_PREFIX: &str = "v1:";

impl MailKey {
    /// The key of a JWT signing secret (HKDF-SHA256, a label of its own, so
    /// it is independent of the signing key).
    pub fn derive(secret: &[u8]) -> Self {
        Self::derive_labelled(secret, b"gatehouse mail outbox", b"mail body v1")
    }

    /// The key sealing the private signing keys in the database
    /// (`crate::keys::store`): the same construction under labels of its
    /// own, so it is independent of the mail key even from the same secret.
    pub fn signing_keys(secret: &[u8]) -> Self {
        Self::derive_labelled(secret, b"gatehouse signing keys", b"private key v1")
    }

    fn derive_labelled(secret: &[u8], salt: &[u8], info: &[u8]) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(secret);
        let info = [info];
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 output length"));
        Self(Arc::new(LessSafeKey::new(UnboundKey::from(okm))))
    }

    /// A key of its own for this process (when no secret is given): its
    /// mail can be sent only by this process.
    pub fn random() -> Self {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        Self::derive(&secret)
    }

    /// `text` encrypted for the row `id`: `v1:` and the hex of nonce,
    /// ciphertext and tag.
    pub(crate) fn seal(&self, id: &str, text: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut data = text.as_bytes().to_vec();
        // Sealing fails only for messages of gigabytes.
        if self
            .0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(id.as_bytes()),
                &mut data,
            )
            .is_err()
        {
            data.clear();
        }
        let mut out = Vec::with_capacity(NONCE_LEN + data.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        format!("{SEALED_PREFIX}{}", hex::encode(out))
    }

    /// The text sealed for row `id`, or `None` if it was sealed with another
    /// key (the JWT secret changed), for another row, or altered.
    pub(crate) fn open(&self, id: &str, stored: &str) -> Option<String> {
        let raw = hex::decode(stored.strip_prefix(SEALED_PREFIX)?).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(id.as_bytes()), &mut sealed)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_sealed_per_key_and_row() {
        let key = MailKey::derive(b"a secret a secret a secret a secret!");
        let sealed = key.seal("row-1", "Token: abc\n");
        assert!(sealed.starts_with("v1:"), "{sealed}");
        // The plaintext with its space (never in base64): "abc" alone can
        // turn up in the random-looking text by chance.
        assert!(!sealed.contains("Token: abc"));
        assert_eq!(key.open("row-1", &sealed).as_deref(), Some("Token: abc\n"));
        // The same key from the same secret (another instance) opens it.
        let again = MailKey::derive(b"a secret a secret a secret a secret!");
        assert_eq!(
            again.open("row-1", &sealed).as_deref(),
            Some("Token: abc\n")
        );
        // Another secret, another row, or an altered body: nothing.
        assert_eq!(MailKey::random().open("row-1", &sealed), None);
        assert_eq!(key.open("row-2", &sealed), None);
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'0' { b'1' } else { b'0' };
        let altered = String::from_utf8(altered).expect("hex");
        assert_eq!(key.open("row-1", &altered), None);
        assert_eq!(key.open("row-1", "Token: abc"), None);
        assert!(!format!("{key:?}").contains('['));
    }
}
