//! The role hierarchy guards compare against: ADMIN ⊇ OPERATOR ⊇ VIEWER.

use serde::{Deserialize, Serialize};

/// A caller's role. The derive order is the hierarchy: a guard requiring
/// `r` admits every role `>= r`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    ts_rs::TS,
    schemars::JsonSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// Whether a caller holding `self` may call a procedure requiring `required`.
    pub fn satisfies(self, required: Role) -> bool {
        self >= required
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "VIEWER",
            Role::Operator => "OPERATOR",
            Role::Admin => "ADMIN",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?} (expected ADMIN, OPERATOR or VIEWER)")]
pub struct UnknownRole(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchy() {
        assert!(Role::Admin.satisfies(Role::Viewer));
        assert!(Role::Admin.satisfies(Role::Operator));
        assert!(Role::Operator.satisfies(Role::Viewer));
        assert!(!Role::Viewer.satisfies(Role::Operator));
        assert!(!Role::Operator.satisfies(Role::Admin));
        assert_eq!("admin".parse::<Role>().ok(), Some(Role::Admin));
        assert!("root".parse::<Role>().is_err());
    }
}
