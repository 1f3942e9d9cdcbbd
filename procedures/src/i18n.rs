//! English and Spanish messages, chosen by `Accept-Language`.
//!
//! Every message has a stable key (see `docs/api.md#errors`): the error or
//! issue carries it beside its English text, written where it is raised (so
//! logs read one language), and [`localize`] swaps in the Spanish for that
//! key just before the error is sent. No translation depends on another
//! module's English wording.

use gatehouse::RpcError;

/// The languages we have messages for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Es,
}

/// Picks the best supported language of an `Accept-Language` header by its
/// q-values; English when nothing supported is asked for.
pub fn negotiate(header: Option<&str>) -> Lang {
    let Some(header) = header else {
        return Lang::En;
    };
    let mut best: Option<(f32, Lang)> = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0_f32;
        for param in parts {
            if let Some(v) = param.trim().strip_prefix("q=") {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        if q <= 0.0 {
            continue;
        }
        let primary = tag.split('-').next().unwrap_or("");
        let lang = match primary {
            "es" => Lang::Es,
            "en" => Lang::En,
            _ => continue,
        };
        if best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, lang));
        }
    }
    best.map_or(Lang::En, |(_, l)| l)
}

/// Every message the service sends that has a key: `(key, English,
/// Spanish)`. `{name}` in a translation repeats the error's param `name`
/// (see [`RpcError::params`]). Keys are stable; English lives here for the
/// service's own messages and, for the framework's, is the text it wrote.
const MESSAGES: &[(&str, &str, &str)] = &[
    // The service's errors (crate::error::AuthError).
    (
        "invalid_credentials",
        "Invalid email or password",
        "Correo electrónico o contraseña incorrectos",
    ),
    (
        "invalid_token",
        "Invalid or expired token",
        "Token no válido o caducado",
    ),
    (
        "session_revoked",
        "Session expired or revoked",
        "La sesión ha caducado o ha sido revocada",
    ),
    ("user_not_found", "User not found", "Usuario no encontrado"),
    (
        "unavailable",
        "The service is temporarily unavailable, try again shortly",
        "El servicio no está disponible temporalmente; inténtalo de nuevo en breve",
    ),
    (
        "email_taken",
        "Email is already registered",
        "El correo electrónico ya está registrado",
    ),
    (
        "username_taken",
        "Username is already taken",
        "El nombre de usuario ya está en uso",
    ),
    (
        "throttled",
        "Too many failed login attempts, try again later",
        "Demasiados intentos fallidos de inicio de sesión; inténtalo más tarde",
    ),
    (
        "invalid_reset_token",
        "Invalid or expired reset token",
        "Token de restablecimiento no válido o caducado",
    ),
    (
        "wrong_current_password",
        "Current password is incorrect",
        "La contraseña actual es incorrecta",
    ),
    (
        "session_not_found",
        "Session not found",
        "Sesión no encontrada",
    ),
    (
        "invalid_event_id",
        "lastEventId must be the id of an earlier event",
        "lastEventId debe ser el id de un evento anterior",
    ),
    (
        "last_admin",
        "The last administrator cannot be demoted or deleted",
        "No se puede degradar ni eliminar al último administrador",
    ),
    (
        "csrf_rejected",
        "Refused: a request that changes something with the session cookie must come from an allowed origin and be sent by script (content-type: application/json or the x-gatehouse-session header)",
        "Rechazado: una petición que cambia algo con la cookie de sesión debe venir de un origen permitido y enviarse por script (content-type: application/json o la cabecera x-gatehouse-session)",
    ),
    // Validation issues (crate::validate).
    ("required", "Required", "Obligatorio"),
    ("blank", "Must not be empty", "No puede estar vacío"),
    ("too_long", "Too long", "Demasiado largo"),
    (
        "email_invalid",
        "Invalid email address",
        "Dirección de correo electrónico no válida",
    ),
    (
        "email_invisible",
        "Email address contains an invisible character",
        "La dirección de correo electrónico contiene un carácter invisible",
    ),
    (
        "email_domain_invalid",
        "Email domain is not a valid domain name",
        "El dominio del correo electrónico no es un nombre de dominio válido",
    ),
    (
        "password_too_short",
        "Password must be at least 8 characters",
        "La contraseña debe tener al menos 8 caracteres",
    ),
    (
        "password_too_long",
        "Password must be at most 72 bytes",
        "La contraseña debe tener como máximo 72 bytes",
    ),
    (
        "password_too_common",
        "Password is too common",
        "La contraseña es demasiado común",
    ),
    (
        "username_too_short",
        "Username must be at least 3 characters",
        "El nombre de usuario debe tener al menos 3 caracteres",
    ),
    (
        "username_too_long",
        "Username must be at most 32 characters",
        "El nombre de usuario debe tener como máximo 32 caracteres",
    ),
    (
        "username_invalid",
        "Username may only contain a-z, 0-9, '.', '_' and '-'",
        "El nombre de usuario solo puede contener a-z, 0-9, '.', '_' y '-'",
    ),
    (
        "email_or_username",
        "Send either email or username, not both",
        "Envía el correo electrónico o el nombre de usuario, no ambos",
    ),
    (
        "page_too_small",
        "Must be at least 1",
        "Debe ser al menos 1",
    ),
    (
        "page_size_out_of_range",
        "Must be between 1 and 100",
        "Debe estar entre 1 y 100",
    ),
    ("invalid_input", "Invalid input", "Entrada no válida"),
    // The framework's (gatehouse), keyed where it raises them.
    (
        "authentication_required",
        "Authentication required",
        "Se requiere autenticación",
    ),
    (
        "credentials_expired",
        "Credentials expired",
        "Las credenciales han caducado",
    ),
    (
        "role_required",
        "This procedure requires the {role} role",
        "Este procedimiento requiere el rol {role}",
    ),
    (
        "procedure_not_found",
        "No procedure found on path \"{path}\"",
        "No se encontró ningún procedimiento en la ruta \"{path}\"",
    ),
    (
        "method_not_supported",
        "Unsupported {method}-request to {kind} procedure at path \"{path}\"",
        "Solicitud {method} no admitida para {kind} en la ruta \"{path}\"",
    ),
    (
        "internal",
        "Internal server error",
        "Error interno del servidor",
    ),
    ("timeout", "Request timed out", "La solicitud ha caducado"),
    (
        "body_unreadable",
        "Could not read the request body",
        "No se pudo leer el cuerpo de la solicitud",
    ),
    (
        "PAYLOAD_TOO_LARGE",
        "PAYLOAD_TOO_LARGE",
        "La solicitud es demasiado grande",
    ),
    (
        "batching_disabled",
        "Batching is not enabled on the server",
        "El procesamiento por lotes no está habilitado en el servidor",
    ),
    (
        "batch_too_large",
        "Batch call exceeds maximum size",
        "El lote supera el tamaño máximo",
    ),
    // serde's complaints about an input's shape; `{detail}` is serde's own.
    (
        "missing_field",
        "missing field {detail}",
        "falta el campo {detail}",
    ),
    (
        "unknown_variant",
        "unknown variant {detail}",
        "valor desconocido {detail}",
    ),
    (
        "invalid_type",
        "invalid type: {detail}",
        "tipo no válido: {detail}",
    ),
];

/// Spanish words for a procedure kind inside [`MESSAGES`].
fn kind_es(kind: &str) -> &str {
    match kind {
        "query" => "la consulta",
        "mutation" => "la mutación",
        "subscription" => "la suscripción",
        other => other,
    }
}

/// The listed `(key, English, Spanish)` entry of `key`.
fn entry(key: &str) -> Option<&'static (&'static str, &'static str, &'static str)> {
    MESSAGES.iter().find(|(k, _, _)| *k == key)
}

/// The listed key equal to `key` as a `&'static str` (keys that come from
/// a validation rule arrive as owned strings) and its English message with
/// no params filled in. `None` for an unknown key.
pub fn known(key: &str) -> Option<(&'static str, &'static str)> {
    entry(key).map(|(k, en, _)| (*k, *en))
}

/// The English message of a key with no params (validation issues and the
/// service's own errors). `None` for an unknown key.
pub fn english(key: &str) -> Option<&'static str> {
    known(key).map(|(_, en)| en)
}

/// The message of `key` in `lang` with `params` filled in; `None` when the
/// key has no message (the caller keeps the original text).
pub fn message(key: &str, lang: Lang, params: &[(&'static str, String)]) -> Option<String> {
    let (_, en, es) = entry(key)?;
    let mut text = match lang {
        Lang::En => (*en).to_owned(),
        Lang::Es => (*es).to_owned(),
    };
    for (name, value) in params {
        let value = if lang == Lang::Es && *name == "kind" {
            kind_es(value)
        } else {
            value
        };
        text = text.replace(&format!("{{{name}}}"), value);
    }
    Some(text)
}

/// Translates an error's message and issue messages in place, by key;
/// messages without a known key are left as they are.
pub fn localize(error: &mut RpcError, lang: Lang) {
    if lang == Lang::En {
        return;
    }
    let params = &error.params;
    if let Some(issues) = error.issues.as_mut() {
        for issue in issues.iter_mut() {
            if let Some(text) = message(&issue.key, lang, params) {
                issue.message = text;
            }
        }
    }
    if let Some(text) = error.key.and_then(|key| message(key, lang, &error.params)) {
        error.message = text;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_q_values() {
        assert_eq!(negotiate(None), Lang::En);
        assert_eq!(negotiate(Some("es")), Lang::Es);
        assert_eq!(negotiate(Some("es-ES,es;q=0.9")), Lang::Es);
        assert_eq!(negotiate(Some("en;q=0.5, es;q=0.8")), Lang::Es);
        assert_eq!(negotiate(Some("es;q=0.5, en;q=0.8")), Lang::En);
        assert_eq!(negotiate(Some("fr, es;q=0.1")), Lang::Es);
        assert_eq!(negotiate(Some("de")), Lang::En);
        assert_eq!(negotiate(Some("es;q=0")), Lang::En);
    }

    #[test]
    fn translation_by_key_fills_params() {
        let lang = Lang::Es;
        assert_eq!(
            message("invalid_credentials", lang, &[]).as_deref(),
            Some("Correo electrónico o contraseña incorrectos")
        );
        let role = [("role", "ADMIN".to_owned())];
        assert_eq!(
            message("role_required", lang, &role).as_deref(),
            Some("Este procedimiento requiere el rol ADMIN")
        );
        assert_eq!(
            message("role_required", Lang::En, &role).as_deref(),
            Some("This procedure requires the ADMIN role")
        );
        let call = [
            ("method", "GET".to_owned()),
            ("kind", "mutation".to_owned()),
            ("path", "auth.login".to_owned()),
        ];
        assert_eq!(
            message("method_not_supported", lang, &call).as_deref(),
            Some("Solicitud GET no admitida para la mutación en la ruta \"auth.login\"")
        );
        assert_eq!(message("no_such_key", lang, &[]), None);
    }

    #[test]
    fn localize_translates_issues_and_the_message_by_key() {
        let mut error = RpcError::validation(vec![
            gatehouse::Issue::new(["email"], "Invalid email address").with_key("email_invalid"),
            gatehouse::Issue::new(["password"], "Required").with_key("required"),
        ]);
        localize(&mut error, Lang::Es);
        assert_eq!(error.message, "Dirección de correo electrónico no válida");
        let issues = error.issues.expect("issues");
        assert_eq!(issues[1].message, "Obligatorio");

        // An unkeyed message stays as written.
        let mut free = RpcError::bad_request("Sensor offline");
        localize(&mut free, Lang::Es);
        assert_eq!(free.message, "Sensor offline");
    }

    #[test]
    fn every_key_is_listed_once() {
        let mut keys: Vec<&str> = MESSAGES.iter().map(|m| m.0).collect();
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "a key is listed twice");
    }
}
