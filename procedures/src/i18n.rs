//! English and Spanish messages, chosen by `Accept-Language`.
//!
//! Every message is written in English at the place the error is raised (so
//! logs and tests read one language); [`localize`] translates the final
//! error, including the framework's generic ones, just before it is sent.

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

/// Exact English → Spanish pairs.
const ES: &[(&str, &str)] = &[
    (
        "Invalid email or password",
        "Correo electrónico o contraseña incorrectos",
    ),
    ("Authentication required", "Se requiere autenticación"),
    ("Invalid or expired token", "Token no válido o caducado"),
    (
        "Session expired or revoked",
        "La sesión ha caducado o ha sido revocada",
    ),
    ("User not found", "Usuario no encontrado"),
    (
        "The service is temporarily unavailable, try again shortly",
        "El servicio no está disponible temporalmente; inténtalo de nuevo en breve",
    ),
    (
        "Email is already registered",
        "El correo electrónico ya está registrado",
    ),
    (
        "Too many failed login attempts, try again later",
        "Demasiados intentos fallidos de inicio de sesión; inténtalo más tarde",
    ),
    (
        "Invalid email address",
        "Dirección de correo electrónico no válida",
    ),
    (
        "Password must be at least 8 characters",
        "La contraseña debe tener al menos 8 caracteres",
    ),
    (
        "Password must be at most 72 bytes",
        "La contraseña debe tener como máximo 72 bytes",
    ),
    ("Password is too common", "La contraseña es demasiado común"),
    ("Required", "Obligatorio"),
    ("Must not be empty", "No puede estar vacío"),
    ("Too long", "Demasiado largo"),
    (
        "Invalid or expired reset token",
        "Token de restablecimiento no válido o caducado",
    ),
    (
        "Current password is incorrect",
        "La contraseña actual es incorrecta",
    ),
    ("Session not found", "Sesión no encontrada"),
    (
        "The last administrator cannot be demoted or deleted",
        "No se puede degradar ni eliminar al último administrador",
    ),
    ("Must be at least 1", "Debe ser al menos 1"),
    ("Must be between 1 and 100", "Debe estar entre 1 y 100"),
    ("Internal server error", "Error interno del servidor"),
    ("Invalid input", "Entrada no válida"),
    ("Request timed out", "La solicitud ha caducado"),
    (
        "Could not read the request body",
        "No se pudo leer el cuerpo de la solicitud",
    ),
    ("PAYLOAD_TOO_LARGE", "La solicitud es demasiado grande"),
    (
        "Batching is not enabled on the server",
        "El procesamiento por lotes no está habilitado en el servidor",
    ),
    (
        "Batch call exceeds maximum size",
        "El lote supera el tamaño máximo",
    ),
];

/// English prefixes whose remainder (a path, a role) is kept as is.
const ES_PREFIX: &[(&str, &str)] = &[
    (
        "This procedure requires the ",
        "Este procedimiento requiere el rol ",
    ),
    (
        "No procedure found on path ",
        "No se encontró ningún procedimiento en la ruta ",
    ),
    (
        "Unsupported GET-request to mutation procedure at path ",
        "Solicitud GET no admitida para la mutación en la ruta ",
    ),
    (
        "Unsupported POST-request to query procedure at path ",
        "Solicitud POST no admitida para la consulta en la ruta ",
    ),
    // Input decoding failures reported by the framework (serde's wording).
    ("missing field ", "falta el campo "),
    ("unknown variant ", "valor desconocido "),
    ("invalid type: ", "tipo no válido: "),
];

/// Translates one message; unknown messages are returned unchanged.
pub fn translate(message: &str, lang: Lang) -> String {
    if lang == Lang::En {
        return message.to_owned();
    }
    if let Some((_, es)) = ES.iter().find(|(en, _)| *en == message) {
        return (*es).to_owned();
    }
    for (en, es) in ES_PREFIX {
        if let Some(rest) = message.strip_prefix(en) {
            // "…requires the ADMIN role" → "…requiere el rol ADMIN".
            let rest = rest.strip_suffix(" role").unwrap_or(rest);
            return format!("{es}{rest}");
        }
    }
    message.to_owned()
}

/// Translates an error's message and issue messages in place.
pub fn localize(error: &mut RpcError, lang: Lang) {
    if lang == Lang::En {
        return;
    }
    error.message = translate(&error.message, lang);
    if let Some(issues) = error.issues.as_mut() {
        for issue in issues {
            issue.message = translate(&issue.message, lang);
        }
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
    fn translation() {
        assert_eq!(
            translate("Invalid email or password", Lang::Es),
            "Correo electrónico o contraseña incorrectos"
        );
        assert_eq!(
            translate("This procedure requires the ADMIN role", Lang::Es),
            "Este procedimiento requiere el rol ADMIN"
        );
        assert_eq!(
            translate("Invalid email or password", Lang::En),
            "Invalid email or password"
        );
        assert_eq!(
            translate("missing field `id`", Lang::Es),
            "falta el campo `id`"
        );
    }
}
