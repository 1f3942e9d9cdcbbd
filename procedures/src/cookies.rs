//! httpOnly cookie sessions for browsers (see `docs/cookies.md`): when a
//! client asks (or the deployment makes it the default), `auth.login`,
//! `auth.register` and `auth.refreshToken` put the token into an httpOnly
//! cookie instead of the JSON answer, the authenticator accepts that cookie
//! when no `authorization` header is sent, and `auth.logout` clears it.
//!
//! A browser sends cookies with requests other sites make, so a request
//! that changes something and is authenticated by the cookie must prove it
//! comes from one of our pages, sent by script (CSRF defence): its `Origin`
//! (else `Referer`) is an allowed origin, and it carries a header an HTML
//! form cannot send (`content-type: application/json`, or
//! [`SESSION_HEADER`], which also forces a CORS preflight).

use std::time::Duration;

use cookie::{Cookie, SameSite};
use gatehouse::RequestMeta;
use http::{HeaderName, HeaderValue, Method, header};

use crate::error::AuthError;

/// The request header that chooses how tokens are delivered: `cookie` or
/// `bearer` (the JSON answer, as without cookie sessions).
pub const SESSION_HEADER: &str = "x-gatehouse-session";

/// `GATEHOUSE_COOKIE_MODE`: whether cookie sessions exist and who chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CookieMode {
    /// No cookies at all: neither set nor read.
    Off,
    /// Cookies for the requests that send `x-gatehouse-session: cookie`;
    /// everyone else gets the token in the JSON answer, as before.
    #[default]
    OptIn,
    /// Cookies unless a request sends `x-gatehouse-session: bearer`.
    Always,
}

/// `GATEHOUSE_COOKIE_SAMESITE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CookieSameSite {
    Strict,
    #[default]
    Lax,
    /// Also sent by other sites' requests; needs `Secure`, and leans
    /// entirely on the CSRF checks.
    None,
}

/// How the session cookie is named, scoped and checked.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    pub mode: CookieMode,
    /// The cookie's name (`gatehouse_session`).
    pub name: String,
    /// `Domain` attribute; `None` scopes the cookie to the API's host only.
    pub domain: Option<String>,
    pub same_site: CookieSameSite,
    /// How long the browser keeps the cookie: the session's refresh window,
    /// so an expired token is still there for `auth.refreshToken`.
    pub max_age: Duration,
    /// Origins whose requests may change something with the cookie (the
    /// CORS list); the API's own origin (its `Host`) always may.
    pub allowed_origins: Vec<String>,
}

impl CookieSettings {
    /// Off: no cookie is ever set or read.
    pub fn off() -> Self {
        Self {
            mode: CookieMode::Off,
            name: "gatehouse_session".to_owned(),
            domain: None,
            same_site: CookieSameSite::Lax,
            max_age: Duration::from_secs(0),
            allowed_origins: Vec::new(),
        }
    }

    /// The session cookie's token, when cookie sessions are on and the
    /// request carries a non-empty one.
    pub fn token<'a>(&self, meta: &'a RequestMeta) -> Option<&'a str> {
        if self.mode == CookieMode::Off {
            return None;
        }
        meta.headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.name)
            .map(|(_, value)| value.trim().trim_matches('"'))
            .filter(|value| !value.is_empty())
    }

    /// Whether this request's tokens go into a cookie. An explicit
    /// `x-gatehouse-session: cookie` that fails the CSRF checks is refused
    /// (the client asked for something it cannot have); under `always`, a
    /// request that fails them (a non-browser client without `Origin`)
    /// simply gets the token in the answer.
    pub fn wanted(&self, meta: &RequestMeta) -> Result<bool, AuthError> {
        let asked = meta.header(SESSION_HEADER).map(str::trim);
        let wanted = match self.mode {
            CookieMode::Off => false,
            CookieMode::OptIn => asked.is_some_and(|v| v.eq_ignore_ascii_case("cookie")),
            CookieMode::Always => !asked.is_some_and(|v| v.eq_ignore_ascii_case("bearer")),
        };
        if !wanted {
            return Ok(false);
        }
        match self.check_csrf(meta) {
            Ok(()) => Ok(true),
            Err(_) if self.mode == CookieMode::Always && asked.is_none() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The CSRF checks for a request that uses (or asks for) the cookie: a
    /// GET (or HEAD) changes nothing and passes; anything else needs an
    /// allowed origin and a header a cross-site form cannot send.
    pub fn check_csrf(&self, meta: &RequestMeta) -> Result<(), AuthError> {
        if meta.method == Method::GET || meta.method == Method::HEAD {
            return Ok(());
        }
        let Some(origin) = request_origin(meta) else {
            tracing::info!(
                request_id = meta.request_id.as_str(),
                "cookie request refused: no Origin or Referer"
            );
            return Err(AuthError::CsrfRejected);
        };
        let same_origin = meta
            .header("host")
            .is_some_and(|host| origin_host(&origin) == Some(host));
        if !same_origin && !self.allowed_origins.contains(&origin) {
            tracing::info!(
                request_id = meta.request_id.as_str(),
                origin = origin.as_str(),
                "cookie request refused: origin not allowed"
            );
            return Err(AuthError::CsrfRejected);
        }
        let json = meta
            .header("content-type")
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
        if !json && meta.header(SESSION_HEADER).is_none() {
            tracing::info!(
                request_id = meta.request_id.as_str(),
                "cookie request refused: neither JSON nor x-gatehouse-session"
            );
            return Err(AuthError::CsrfRejected);
        }
        Ok(())
    }

    /// Puts `token` into the session cookie of the answer.
    pub fn set(&self, meta: &RequestMeta, token: &str) {
        let max_age = i64::try_from(self.max_age.as_secs()).unwrap_or(i64::MAX / 4);
        self.append(meta, token, cookie::time::Duration::seconds(max_age));
    }

    /// Clears the session cookie (an expired empty one replaces it).
    pub fn clear(&self, meta: &RequestMeta) {
        self.append(meta, "", cookie::time::Duration::ZERO);
    }

    fn append(&self, meta: &RequestMeta, value: &str, max_age: cookie::time::Duration) {
        let mut builder = Cookie::build((self.name.clone(), value.to_owned()))
            .http_only(true)
            .secure(!from_local_http(meta))
            .same_site(match self.same_site {
                CookieSameSite::Strict => SameSite::Strict,
                CookieSameSite::Lax => SameSite::Lax,
                CookieSameSite::None => SameSite::None,
            })
            .path("/")
            .max_age(max_age);
        if let Some(domain) = &self.domain {
            builder = builder.domain(domain.clone());
        }
        match HeaderValue::from_str(&builder.build().to_string()) {
            Ok(value) => meta.response_headers.append(header::SET_COOKIE, value),
            Err(error) => tracing::error!(%error, "session cookie is not a valid header value"),
        }
    }
}

/// The request's `Origin`, else the origin of its `Referer`; `null` (an
/// opaque origin: sandboxed frames, some redirects) counts as none.
fn request_origin(meta: &RequestMeta) -> Option<String> {
    if let Some(origin) = meta.header("origin").map(str::trim) {
        return (origin != "null").then(|| origin.trim_end_matches('/').to_owned());
    }
    let referer = url::Url::parse(meta.header("referer")?).ok()?;
    let origin = referer.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// `host[:port]` of an origin like `https://host:port`.
fn origin_host(origin: &str) -> Option<&str> {
    origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
}

/// Whether the request comes from a page on `http://localhost` or
/// `http://127.0.0.1` (any port): a developer's machine, where the cookie
/// must do without `Secure` because there is no TLS. Nothing else drops it.
fn from_local_http(meta: &RequestMeta) -> bool {
    let Some(origin) = request_origin(meta) else {
        return false;
    };
    let Some(rest) = origin.strip_prefix("http://") else {
        return false;
    };
    let host = match rest.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => rest,
    };
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

/// The header browsers must be allowed to send cross-origin (CORS) for a
/// page to choose cookie sessions.
pub fn session_header() -> HeaderName {
    HeaderName::from_static(SESSION_HEADER)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(method: Method, headers: &[(&'static str, &str)]) -> RequestMeta {
        let mut map = http::HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_str(value).expect("header"));
        }
        RequestMeta {
            method,
            headers: map,
            peer: None,
            request_id: "t".into(),
            connection_params: Vec::new(),
            response_headers: Default::default(),
        }
    }

    fn settings() -> CookieSettings {
        CookieSettings {
            mode: CookieMode::OptIn,
            allowed_origins: vec!["https://app.example".to_owned()],
            ..CookieSettings::off()
        }
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let m = meta(
            Method::GET,
            &[("cookie", "a=1; gatehouse_session=tok; b=2")],
        );
        assert_eq!(settings().token(&m), Some("tok"));
        assert_eq!(CookieSettings::off().token(&m), None);
    }

    #[test]
    fn secure_is_dropped_for_local_http_origins_only() {
        for (origin, local) in [
            ("http://localhost:5173", true),
            ("http://127.0.0.1", true),
            ("https://localhost:5173", false),
            ("http://localhost.evil.example", false),
            ("http://app.example", false),
        ] {
            let m = meta(Method::POST, &[("origin", origin)]);
            assert_eq!(from_local_http(&m), local, "{origin}");
        }
        assert!(!from_local_http(&meta(Method::POST, &[])));
    }

    #[test]
    fn referer_stands_in_for_a_missing_origin() {
        let m = meta(
            Method::POST,
            &[
                ("referer", "https://app.example/page?x=1"),
                ("content-type", "application/json"),
            ],
        );
        assert!(settings().check_csrf(&m).is_ok());
    }
}
