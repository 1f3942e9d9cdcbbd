//! Input validation: rules declared on the input types' fields with
//! `garde`, every failing field reported at once in one BAD_REQUEST whose
//! `data.issues` name the fields by their camelCase paths (see
//! `docs/api.md#errors`).
//!
//! Every rule here is a custom one that fails with a message *key*
//! (`required`, `email_invalid`, …); [`check`] turns the key into the
//! English message and [`crate::i18n`] into the Spanish one. garde's
//! built-in rules would write English sentences of their own, so they are
//! not used.
//!
//! Required text fields are plain `String`s with `#[serde(default)]`: a
//! missing field arrives empty and fails `required` together with every
//! other field, where serde would stop at the first missing one.

use gatehouse::{Issue, RpcError};
use serde::de::{DeserializeOwned, Visitor};

use crate::i18n;
use crate::password::{PasswordPolicyError, check_password_policy};

/// Longest first or last name, in characters.
pub(crate) const MAX_NAME_CHARS: usize = 100;
/// Longest phone number, in characters.
pub(crate) const MAX_PHONE_CHARS: usize = 32;

/// Runs `input`'s rules; `Err` is the BAD_REQUEST carrying one issue per
/// failing field (the first rule that failed for it), in the order the
/// fields are declared, as a schema validator on the client would list them.
pub fn check<T>(input: &T) -> Result<(), RpcError>
where
    T: garde::Validate<Context = ()> + DeserializeOwned,
{
    let Err(report) = input.validate() else {
        return Ok(());
    };
    let mut issues: Vec<Issue> = Vec::new();
    for (path, error) in report.iter() {
        let path: Vec<String> = path.to_string().split('.').map(camel_case).collect();
        if issues.iter().any(|issue| issue.path == path) {
            continue;
        }
        let (key, message) =
            i18n::known(error.message()).unwrap_or(("invalid_input", "Invalid input"));
        issues.push(Issue::new(path, message).with_key(key));
    }
    // garde reports fields alphabetically; serde knows the declared order.
    let order = declared_fields::<T>();
    issues.sort_by_key(|issue| {
        let field = issue.path.first().map_or("", String::as_str);
        order.iter().position(|f| *f == field).unwrap_or(usize::MAX)
    });
    Err(RpcError::validation(issues))
}

/// The wire names of `T`'s fields in declaration order: what its derived
/// `Deserialize` hands to `deserialize_struct` (after `rename_all`).
fn declared_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    /// A deserializer that only records the field list it is asked for.
    struct Probe;

    #[derive(Debug)]
    struct Fields(&'static [&'static str]);

    impl std::fmt::Display for Fields {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field probe")
        }
    }
    impl std::error::Error for Fields {}
    impl serde::de::Error for Fields {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Fields(&[])
        }
    }

    impl<'de> serde::Deserializer<'de> for Probe {
        type Error = Fields;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
            Err(Fields(&[]))
        }

        // `#[serde(from = "Option<…>")]` inputs: look inside the option.
        fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fields> {
            visitor.visit_some(self)
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Fields> {
            Err(Fields(fields))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    match T::deserialize(Probe) {
        Err(Fields(fields)) => fields,
        Ok(_) => &[],
    }
}

/// `first_name` → `firstName`, as the inputs are named on the wire.
fn camel_case(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn fail(key: &str) -> garde::Result {
    Err(garde::Error::new(key))
}

/// A field that must be sent and not be empty.
pub fn required(value: &str, _: &()) -> garde::Result {
    if value.is_empty() {
        return fail("required");
    }
    Ok(())
}

/// A required name: sent, not blank, at most 100 characters once trimmed.
pub fn name(value: &str, ctx: &()) -> garde::Result {
    required(value, ctx)?;
    sent_name(value)
}

/// A name that may be left out (`None`); when sent, as [`sent_name`].
pub fn optional_name(value: &Option<String>, _: &()) -> garde::Result {
    value.as_deref().map_or(Ok(()), sent_name)
}

/// A name that was sent: not blank and at most 100 characters once trimmed.
fn sent_name(value: &str) -> garde::Result {
    match value.trim() {
        "" => fail("blank"),
        v if v.chars().count() > MAX_NAME_CHARS => fail("too_long"),
        _ => Ok(()),
    }
}

/// A required token or id: sent and not blank.
pub fn not_blank(value: &str, ctx: &()) -> garde::Result {
    required(value, ctx)?;
    if value.trim().is_empty() {
        return fail("blank");
    }
    Ok(())
}

/// An email address: sent, normalisable, and plausible once normalised.
pub fn email(value: &str, ctx: &()) -> garde::Result {
    required(value, ctx)?;
    match normalize_email(value) {
        Err(e) => fail(e.key()),
        Ok(normalized) if !is_valid_email(&normalized) => fail("email_invalid"),
        Ok(_) => Ok(()),
    }
}

/// The normalised form of an email field that passed its rule ([`email`],
/// [`login_email`]). The rule already refused what has none, so `Err` (the
/// same BAD_REQUEST, on `field`) only comes from a caller that skipped it.
pub fn email_value(field: &str, raw: &str) -> Result<String, RpcError> {
    normalize_email(raw).map_err(|e| {
        let (key, message) =
            i18n::known(e.key()).unwrap_or(("email_invalid", "Invalid email address"));
        RpcError::validation(vec![Issue::new([field], message).with_key(key)])
    })
}

/// A new password: sent and within the password policy.
pub fn new_password(value: &str, ctx: &()) -> garde::Result {
    required(value, ctx)?;
    check_password_policy(value).or_else(|e| fail(policy_key(&e)))
}

/// The message key of a password-policy failure.
pub fn policy_key(e: &PasswordPolicyError) -> &'static str {
    match e {
        PasswordPolicyError::TooShort => "password_too_short",
        PasswordPolicyError::TooLong => "password_too_long",
        PasswordPolicyError::TooCommon => "password_too_common",
    }
}

/// The English message of a password-policy failure, for the command line.
pub fn policy_message(e: &PasswordPolicyError) -> &'static str {
    i18n::english(policy_key(e)).unwrap_or("Password is not allowed")
}

/// `users.list`'s page number, when given: at least 1.
pub fn page(value: &Option<i64>, _: &()) -> garde::Result {
    match value {
        Some(page) if *page < 1 => fail("page_too_small"),
        _ => Ok(()),
    }
}

/// `users.list`'s page size, when given: 1 to 100.
pub fn page_size(value: &Option<i64>, _: &()) -> garde::Result {
    match value {
        Some(size) if !(1..=100).contains(size) => fail("page_size_out_of_range"),
        _ => Ok(()),
    }
}

/// An optional phone number: blank means none; at most 32 characters.
pub fn phone(value: &Option<String>, _: &()) -> garde::Result {
    match value.as_deref().map(str::trim) {
        Some(v) if v.chars().count() > MAX_PHONE_CHARS => fail("too_long"),
        _ => Ok(()),
    }
}

/// A phone number change: absent leaves it, `null` or blank clears it.
pub fn phone_change(value: &Option<Option<String>>, ctx: &()) -> garde::Result {
    match value {
        Some(inner) => phone(inner, ctx),
        None => Ok(()),
    }
}

/// A phone number as stored: trimmed, `None` when blank.
pub fn phone_value(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Shortest and longest username, in characters (all ASCII).
pub(crate) const MIN_USERNAME_CHARS: usize = 3;
pub(crate) const MAX_USERNAME_CHARS: usize = 32;
/// What a username may contain, for the OpenAPI document (stricter than
/// [`username`], which also trims and lower-cases).
pub(crate) const USERNAME_PATTERN: &str = "^[A-Za-z0-9._-]+$";

/// An optional username (registration): blank means none; otherwise, once
/// normalised, 3 to 32 characters of `a-z 0-9 . _ -`.
pub fn username(value: &Option<String>, _: &()) -> garde::Result {
    match username_value(value.as_deref()) {
        None => Ok(()),
        Some(v) if v.chars().count() < MIN_USERNAME_CHARS => fail("username_too_short"),
        Some(v) if v.chars().count() > MAX_USERNAME_CHARS => fail("username_too_long"),
        Some(v) if !v.chars().all(is_username_char) => fail("username_invalid"),
        Some(_) => Ok(()),
    }
}

/// A username change: absent leaves it, `null` or blank clears it.
pub fn username_change(value: &Option<Option<String>>, ctx: &()) -> garde::Result {
    match value {
        Some(inner) => username(inner, ctx),
        None => Ok(()),
    }
}

fn is_username_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
}

/// A username as stored and looked up: trimmed, ASCII lower-cased, `None`
/// when blank. Non-ASCII letters are left as they are, so they fail
/// [`username`] rather than being folded into look-alikes.
pub fn username_value(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_ascii_lowercase)
}

/// `auth.login`'s `email`: required unless a `username` is sent instead,
/// and not together with one. Neither sent reads as a missing email, as
/// before usernames existed, unless the client sent a (blank) username.
pub fn login_email<'a>(
    username: &'a Option<String>,
) -> impl FnOnce(&Option<String>, &()) -> garde::Result + 'a {
    move |email, _| match email.as_deref() {
        // Its format is not checked (an unknown address is just unknown),
        // but one that has no normalised form can name no account.
        Some(e) if !e.is_empty() => normalize_email(e).map(drop).or_else(|e| fail(e.key())),
        _ if username.is_some() => Ok(()),
        _ => fail("required"),
    }
}

/// `auth.login`'s `username`: never together with an email; `Required`
/// when it is the identifier the client sent but it is blank.
pub fn login_username<'a>(
    email: &'a Option<String>,
) -> impl FnOnce(&Option<String>, &()) -> garde::Result + 'a {
    move |username, _| {
        let has_email = email.as_deref().is_some_and(|e| !e.is_empty());
        match username.as_deref() {
            None => Ok(()),
            Some(u) if !u.is_empty() && has_email => fail("email_or_username"),
            Some("") if !has_email => fail("required"),
            Some(_) => Ok(()),
        }
    }
}

/// Why an email address has no normalised form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// A default-ignorable code point: zero-width space, soft hyphen, word
    /// joiner, byte-order mark, variation selector, bidi control, …. It
    /// renders as nothing, so an address with one looks exactly like the
    /// address without it; silently dropping it would be no better, as the
    /// account would then be reachable under a string nobody can see.
    #[error("Email address contains an invisible character (U+{:04X})", u32::from(*.0))]
    Invisible(char),
    /// The domain is not a valid (internationalised) domain name under
    /// UTS #46 with the STD3 rules: e.g. it maps to a character no host
    /// name may hold.
    #[error("Email domain is not a valid domain name")]
    Domain,
}

impl EmailError {
    /// The message key of the validation issue (see [`crate::i18n`]).
    pub fn key(&self) -> &'static str {
        match self {
            EmailError::Invisible(_) => "email_invisible",
            EmailError::Domain => "email_domain_invalid",
        }
    }
}

/// The one form an email address is stored, compared and looked up in, so
/// that addresses that read the same are the same account (issue 22). Every
/// place that takes an email goes through here: registration, login, both
/// password-reset calls, `gatehouse users create`, the first-admin bootstrap
/// and `gatehouse users check-emails`.
///
/// - Surrounding white space is trimmed.
/// - Invisible (default-ignorable) code points are refused
///   ([`EmailError::Invisible`]).
/// - NFKC folds compatibility look-alikes (fullwidth `ｌ` is `l`, the
///   ligature `ﬁ` is `fi`) and composes accents one way; then everything is
///   lower-cased (full Unicode, as before) and NFKC applied again, since
///   lower-casing can leave a string that is not NFKC.
/// - The domain becomes its ASCII form (UTS #46 ToASCII, punycode for
///   internationalised labels: `bücher.de` is `xn--bcher-kva.de`), which is
///   what mail systems resolve, so both spellings are one mailbox and one
///   account. A non-ASCII domain that has no such form is refused
///   ([`EmailError::Domain`]); an ASCII one is left for [`is_valid_email`],
///   which words its complaint as it always did.
///
/// The local part keeps its (lower-cased, NFKC) letters: SMTPUTF8 allows
/// them, and other scripts are real addresses. Look-alikes across scripts
/// (Cyrillic `а` for Latin `a`) are not folded.
///
/// Whether the result is a plausible address at all is [`is_valid_email`]'s
/// business; this only says what an address is the same as.
pub fn normalize_email(email: &str) -> Result<String, EmailError> {
    use unicode_normalization::UnicodeNormalization;

    if let Some(c) = email.trim().chars().find(|&c| is_invisible(c)) {
        return Err(EmailError::Invisible(c));
    }
    let folded: String = email
        .trim()
        .nfkc()
        .collect::<String>()
        .to_lowercase()
        .nfkc()
        .collect();
    // NFKC can turn a character into a space plus a mark (U+00A8): trim
    // again so that normalising twice changes nothing.
    let folded = folded.trim();
    if let Some(c) = folded.chars().find(|&c| is_invisible(c)) {
        return Err(EmailError::Invisible(c));
    }
    let Some((local, domain)) = folded.rsplit_once('@').filter(|(_, d)| !d.is_empty()) else {
        return Ok(folded.to_owned());
    };
    let ascii = idna::uts46::Uts46::new().to_ascii(
        domain.as_bytes(),
        idna::uts46::AsciiDenyList::STD3,
        // Real domains have `--` in the third and fourth place (CDN hosts).
        idna::uts46::Hyphens::CheckFirstLast,
        idna::uts46::DnsLength::Verify,
    );
    match ascii {
        Ok(ascii) => Ok(format!("{local}@{ascii}")),
        Err(_) if domain.is_ascii() => Ok(folded.to_owned()),
        Err(_) => Err(EmailError::Domain),
    }
}

/// Unicode's Default_Ignorable_Code_Point: characters that display as
/// nothing unless a font supports them (U+00AD, U+200B–U+200F, U+2060–U+206F,
/// U+FEFF, variation selectors, tags, Hangul fillers, …). ICU4X's data, kept
/// current with Unicode, rather than a hand-written list.
fn is_invisible(c: char) -> bool {
    use icu_properties::{CodePointSetData, props::DefaultIgnorableCodePoint};
    CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
}

/// A deliberately simple shape check (`local@domain.tld`, no spaces, sane
/// length); deliverability is proven by the reset mail, not by a regex.
pub fn is_valid_email(email: &str) -> bool {
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !local.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(is_valid_email("a@b.co"));
        assert!(is_valid_email("first.last+tag@sub.example.com"));
        assert!(!is_valid_email("nope"));
        assert!(!is_valid_email("a@b"));
        assert!(!is_valid_email("a b@c.de"));
        assert!(!is_valid_email("@c.de"));
        assert!(!is_valid_email("a@.de"));
        assert_eq!(
            normalize_email("  Bob@Example.COM ").as_deref(),
            Ok("bob@example.com")
        );
    }

    #[test]
    fn look_alike_emails_normalise_to_one_form_or_are_refused() {
        for same in [
            "look@example.com",
            "\u{ff4c}ook@example.com",
            "look@\u{ff45}xample.com",
            "LOOK@EXAMPLE.\u{ff23}OM",
            "look\u{ff20}example.com",
            "look@example\u{3002}com",
        ] {
            assert_eq!(
                normalize_email(same).as_deref(),
                Ok("look@example.com"),
                "{same:?}"
            );
        }
        for (invisible, c) in [
            ("look\u{200b}@example.com", '\u{200b}'),
            ("lo\u{ad}ok@example.com", '\u{ad}'),
            ("look@exam\u{2060}ple.com", '\u{2060}'),
            ("\u{feff}look@example.com", '\u{feff}'),
            ("look\u{fe0f}@example.com", '\u{fe0f}'),
            ("look\u{e0100}@example.com", '\u{e0100}'),
            ("lo\u{202e}ok@example.com", '\u{202e}'),
            ("lo\u{200d}ok@example.com", '\u{200d}'),
            ("lo\u{3164}ok@example.com", '\u{3164}'),
        ] {
            assert_eq!(normalize_email(invisible), Err(EmailError::Invisible(c)));
        }
        // Internationalised domains are stored in their ASCII form.
        assert_eq!(
            normalize_email("Jürgen@Bücher.DE").as_deref(),
            Ok("jürgen@xn--bcher-kva.de")
        );
        assert_eq!(
            normalize_email("j\u{fc}rgen@xn--bcher-kva.de"),
            normalize_email("ju\u{308}rgen@bu\u{308}cher.de"),
        );
        assert_eq!(
            normalize_email("a@b\u{e000}c.example"),
            Err(EmailError::Domain)
        );
        // ASCII mistakes are left for the shape check.
        assert_eq!(normalize_email("a@b..c").as_deref(), Ok("a@b..c"));
        assert_eq!(normalize_email("nope").as_deref(), Ok("nope"));
        // A second pass changes nothing.
        for raw in ["\u{a8}a@b.co", "Jürgen@Bücher.DE", "x@ＥＸ.com"] {
            let once = normalize_email(raw).expect("normalises");
            assert_eq!(
                normalize_email(&once).as_deref(),
                Ok(once.as_str()),
                "{raw:?}"
            );
        }
    }

    #[derive(garde::Validate, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Form {
        #[garde(custom(super::email))]
        email: String,
        #[garde(custom(super::name))]
        first_name: String,
        #[garde(custom(super::phone))]
        phone: Option<String>,
        #[garde(custom(super::new_password))]
        password: String,
    }

    #[test]
    fn every_failing_field_once_in_field_order_with_keys() {
        let form = Form {
            email: "nope".into(),
            first_name: "  ".into(),
            phone: Some("1".repeat(33)),
            password: String::new(),
        };
        let error = check(&form).expect_err("invalid");
        let issues = error.issues.expect("issues");
        let got: Vec<(String, &str, &str)> = issues
            .iter()
            .map(|i| (i.path.join("."), &*i.key, i.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("email".into(), "email_invalid", "Invalid email address"),
                ("firstName".into(), "blank", "Must not be empty"),
                ("phone".into(), "too_long", "Too long"),
                ("password".into(), "required", "Required"),
            ]
        );
        assert_eq!(error.message, "Invalid email address");
        assert_eq!(error.key, Some("email_invalid"));
    }

    #[test]
    fn a_valid_form_passes() {
        let form = Form {
            email: " Bob@Example.com".into(),
            first_name: "Bob".into(),
            phone: None,
            password: "kT9#vq2!xx".into(),
        };
        assert!(check(&form).is_ok());
    }
}
