//! The shapes the client sees (`User`, `UserDetails`, …), with their
//! TypeScript declarations.

use gatehouse::{Role, True};
use serde::{Deserialize, Deserializer, Serialize};
use ts_rs::TS;

use crate::db::rfc3339;
use crate::entities::user;

/// A user as embedded in tokens and auth answers.
#[derive(Debug, Clone, Serialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub role: Role,
}

/// A user with profile details and timestamps (`auth.me`, `users.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDetails {
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub role: Role,
    pub phone: Option<String>,
    // Lower-case; `null` when the user has none.
    pub username: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// What login, registration, refresh and password change return.
#[derive(Debug, Clone, Serialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthPayload {
    pub token: String,
    /// Seconds until `token` expires.
    pub expires_in: u32,
    pub user: User,
}

/// `{ success: true }`.
#[derive(Debug, Clone, Copy, Default, Serialize, TS, schemars::JsonSchema)]
pub struct Success {
    pub success: True,
}

/// `{ success: boolean }` (logout, which never fails).
#[derive(Debug, Clone, Copy, Serialize, TS, schemars::JsonSchema)]
pub struct LogoutResult {
    pub success: bool,
}

/// One of the caller's sessions (`auth.sessions`).
#[derive(Debug, Clone, Serialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub id: String,
    pub created_at: String,
    pub last_used_at: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub current: bool,
}

impl From<&user::Model> for User {
    fn from(m: &user::Model) -> Self {
        Self {
            id: m.id.clone(),
            email: m.email.clone(),
            first_name: m.first_name.clone(),
            last_name: m.last_name.clone(),
            role: m.role.into(),
        }
    }
}

impl From<&user::Model> for UserDetails {
    fn from(m: &user::Model) -> Self {
        Self {
            id: m.id.clone(),
            email: m.email.clone(),
            first_name: m.first_name.clone(),
            last_name: m.last_name.clone(),
            role: m.role.into(),
            phone: m.phone.clone(),
            username: m.username.clone(),
            created_at: rfc3339(m.created_at),
            updated_at: rfc3339(m.updated_at),
        }
    }
}

/// Distinguishes an absent field (`None`) from an explicit `null`
/// (`Some(None)`), for `updateProfile`'s `phone` and `username`.
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A required text field: `null` reads as empty, like a missing field
/// (`#[serde(default)]`), so it fails the `required` rule together with
/// every other field instead of stopping decoding at the first.
pub fn text<'de, D>(d: D) -> Result<String, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// For the OpenAPI document: the fields read with [`text`] are required
/// (an empty or missing one fails validation), though serde's `default`
/// makes them look optional to the schema generator. Marks every string
/// property whose default is `""` as required, without that default.
pub fn text_fields_required(schema: &mut schemars::Schema) {
    let Some(properties) = schema
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    let mut names = Vec::new();
    for (name, property) in properties.iter_mut() {
        if property.get("default").and_then(serde_json::Value::as_str) == Some("") {
            if let Some(property) = property.as_object_mut() {
                property.remove("default");
            }
            names.push(serde_json::Value::String(name.clone()));
        }
    }
    if names.is_empty() {
        return;
    }
    let required = schema
        .ensure_object()
        .entry("required")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    if let Some(list) = required.as_array_mut() {
        for name in names {
            if !list.contains(&name) {
                list.push(name);
            }
        }
    }
}
