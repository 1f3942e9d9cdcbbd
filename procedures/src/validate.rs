//! Input checks that collect every failing field into one BAD_REQUEST.

use gatehouse::{Issue, RpcError};

use crate::password::{PasswordPolicyError, check_password_policy};

/// Accumulates field issues; [`Issues::finish`] turns them into an error.
#[derive(Debug, Default)]
pub struct Issues(Vec<Issue>);

impl Issues {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: &str, message: &str) {
        self.0.push(Issue::new([field], message));
    }

    /// `Ok` when nothing failed; otherwise a validation error whose message is
    /// the first issue's (as Standard Schema validators report it).
    pub fn finish(self) -> Result<(), RpcError> {
        match self.0.first() {
            None => Ok(()),
            Some(first) => {
                let message = first.message.clone();
                Err(RpcError::validation(message, self.0))
            }
        }
    }

    /// A required text field: present and not blank. Returns it trimmed.
    pub fn required_name(&mut self, field: &str, value: Option<&str>) -> String {
        match value.map(str::trim) {
            None => {
                self.add(field, "Required");
                String::new()
            }
            Some("") => {
                self.add(field, "Must not be empty");
                String::new()
            }
            Some(v) if v.chars().count() > 100 => {
                self.add(field, "Too long");
                String::new()
            }
            Some(v) => v.to_owned(),
        }
    }

    /// An email: trimmed, lower-cased and checked for a plausible shape.
    pub fn email(&mut self, field: &str, value: Option<&str>) -> String {
        match value {
            None => {
                self.add(field, "Required");
                String::new()
            }
            Some(v) => {
                let email = normalize_email(v);
                if !is_valid_email(&email) {
                    self.add(field, "Invalid email address");
                }
                email
            }
        }
    }

    /// A new password: the policy of the password module (length in
    /// characters and bytes, common-password list).
    pub fn new_password(&mut self, field: &str, value: Option<&str>) -> String {
        match value {
            None => {
                self.add(field, "Required");
                String::new()
            }
            Some(v) => {
                if let Err(e) = check_password_policy(v) {
                    self.add(field, policy_message(&e));
                }
                v.to_owned()
            }
        }
    }
}

/// The English message for a policy failure (translated later if needed).
pub fn policy_message(e: &PasswordPolicyError) -> &'static str {
    match e {
        PasswordPolicyError::TooShort => "Password must be at least 8 characters",
        PasswordPolicyError::TooLong => "Password must be at most 72 bytes",
        PasswordPolicyError::TooCommon => "Password is too common",
    }
}

/// Emails are compared trimmed and lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
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
        assert_eq!(normalize_email("  Bob@Example.COM "), "bob@example.com");
    }
}
