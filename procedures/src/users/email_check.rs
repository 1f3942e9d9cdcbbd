//! `gatehouse users check-emails [--fix]`: the stored emails that are not
//! in the form [`normalize_email`] gives them (rows written before it
//! existed, or by hand), and those that are one address once normalised.
//!
//! Registration and lookups normalise since issue 22, so a row stored in
//! another form can no longer be found by its own address (its owner cannot
//! log in by email), and two rows that normalise alike are two accounts for
//! one mailbox. Rewriting the first kind is safe when no other row claims
//! the same form; the second kind needs a person to decide which account
//! stays, so it is only reported.

use std::collections::BTreeMap;

use sea_orm::QuerySelect;
use sea_orm::{DatabaseConnection, DbErr, EntityTrait, QueryOrder};

use crate::db::is_unique_violation;
use crate::entities::user;
use crate::validate::{is_valid_email, normalize_email};

/// A stored row: its id and email as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub email: String,
}

/// Something `check-emails` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Stored in another form than its normalised one, and no other row
    /// normalises to the same; `fixed` once `--fix` rewrote it.
    NotNormalized {
        row: Row,
        normalized: String,
        fixed: bool,
    },
    /// Several rows that are one address once normalised (oldest first).
    /// None is rewritten: which account stays is the operator's call.
    Collision { normalized: String, rows: Vec<Row> },
    /// A stored email that has no normalised form, or is no plausible
    /// address once normalised; it must be corrected by hand.
    Invalid { row: Row, why: String },
}

impl Finding {
    /// Whether it still needs someone's attention.
    pub fn unresolved(&self) -> bool {
        !matches!(self, Finding::NotNormalized { fixed: true, .. })
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `{:?}` so that invisible characters show as escapes.
        match self {
            Finding::NotNormalized {
                row,
                normalized,
                fixed,
            } => {
                let state = if *fixed {
                    "rewritten"
                } else {
                    "rewrite with --fix"
                };
                write!(
                    f,
                    "not normalised: {} {:?} -> {normalized:?} ({state})",
                    row.id, row.email
                )
            }
            Finding::Collision { normalized, rows } => {
                write!(
                    f,
                    "collision: {} rows are {normalized:?} once normalised:",
                    rows.len()
                )?;
                for row in rows {
                    write!(f, " {} {:?};", row.id, row.email)?;
                }
                write!(
                    f,
                    " keep one (delete the others with users.delete, or change their address in the database)"
                )
            }
            Finding::Invalid { row, why } => {
                write!(
                    f,
                    "invalid: {} {:?}: {why}; correct it by hand",
                    row.id, row.email
                )
            }
        }
    }
}

/// Checks every user's stored email; with `fix`, rewrites each row that is
/// not normalised and whose normalised form no other row has. Each rewrite
/// only applies if the row still holds the email that was read, and one the
/// unique index refuses (a registration took the address meanwhile) is
/// reported as not fixed.
pub async fn check_emails(db: &DatabaseConnection, fix: bool) -> Result<Vec<Finding>, DbErr> {
    let rows: Vec<(String, String)> = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .column(user::Column::Email)
        .order_by_asc(user::Column::CreatedAt)
        .order_by_asc(user::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    let mut findings = Vec::new();
    let mut by_form: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for (id, email) in rows {
        let row = Row { id, email };
        match normalize_email(&row.email) {
            Ok(normalized) if is_valid_email(&normalized) => {
                by_form.entry(normalized).or_default().push(row);
            }
            Ok(normalized) => findings.push(Finding::Invalid {
                why: format!("{normalized:?} is not a plausible address"),
                row,
            }),
            Err(e) => findings.push(Finding::Invalid {
                why: e.to_string(),
                row,
            }),
        }
    }
    for (normalized, mut rows) in by_form {
        if rows.len() > 1 {
            findings.push(Finding::Collision { normalized, rows });
            continue;
        }
        let Some(row) = rows.pop() else { continue };
        if row.email == normalized {
            continue;
        }
        let fixed = fix && rewrite(db, &row, &normalized).await?;
        findings.push(Finding::NotNormalized {
            row,
            normalized,
            fixed,
        });
    }
    Ok(findings)
}

/// Sets `row`'s email to `normalized` if it still holds the email read;
/// whether it did.
async fn rewrite(db: &DatabaseConnection, row: &Row, normalized: &str) -> Result<bool, DbErr> {
    match super::store::rewrite_email(db, &row.id, &row.email, normalized).await {
        Ok(true) => {
            tracing::info!(target: "audit", event = "user.email_normalized", user_id = row.id.as_str());
            Ok(true)
        }
        Ok(false) => Ok(false),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}
