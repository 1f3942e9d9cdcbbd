//! `GET /.well-known/jwks.json` and `GET /.well-known/openid-configuration`:
//! what another service needs to verify Gatehouse tokens offline. Served
//! only with an asymmetric `JWT_ALGORITHM`; under HS256 there is no public
//! key, and both answer 404.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::HasAuth;

/// Where the public keys are served (RFC 8414 / OpenID Connect Discovery
/// well-known locations).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// Five minutes: caches and verifiers may keep the key set that long, while
/// a rotated-in key is used for signing at once. A verifier refetches on an
/// unknown `kid` anyway, so this only bounds how stale a cached set is.
pub const JWKS_CACHE_CONTROL: &str = "public, max-age=300";

/// The two routes, for [`gatehouse::server::app_with_routes`]; none under
/// HS256. `public_url` is `GATEHOUSE_PUBLIC_URL`: the base of `jwks_uri`;
/// unset, it is taken from the request's `Host` (plain `http`), and the
/// discovery document is then not cacheable.
pub fn routes<S: HasAuth>(state: Arc<S>, public_url: Option<url::Url>) -> axum::Router {
    if !state.auth().keys.algorithm().is_asymmetric() {
        return axum::Router::new();
    }
    let jwks_state = state.clone();
    let base = public_url.map(|u| u.as_str().trim_end_matches('/').to_owned());
    axum::Router::new()
        .route(
            JWKS_PATH,
            get(move || {
                let state = jwks_state.clone();
                async move { jwks(state.auth()) }
            }),
        )
        .route(
            DISCOVERY_PATH,
            get(move |headers: HeaderMap| {
                let state = state.clone();
                let base = base.clone();
                async move { discovery(state.auth(), base.as_deref(), &headers) }
            }),
        )
}

fn json(body: String, cache_control: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(cache_control),
            ),
        ],
        body,
    )
        .into_response()
}

fn jwks(auth: &crate::AuthService) -> Response {
    match auth.keys.jwks() {
        Some(document) => json(document.to_string(), JWKS_CACHE_CONTROL),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn discovery(auth: &crate::AuthService, base: Option<&str>, headers: &HeaderMap) -> Response {
    let (base, cache_control) = match base {
        Some(base) => (base.to_owned(), JWKS_CACHE_CONTROL),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.parse::<http::uri::Authority>().ok());
            let Some(host) = host else {
                return (StatusCode::BAD_REQUEST, "a Host header is required").into_response();
            };
            // Depends on the request, so no cache may keep it for others.
            (format!("http://{host}"), "no-store")
        }
    };
    let document = serde_json::json!({
        "issuer": auth.keys.issuer,
        "jwks_uri": format!("{base}{JWKS_PATH}"),
        "id_token_signing_alg_values_supported": [auth.keys.algorithm().as_str()],
        "subject_types_supported": ["public"],
    });
    json(document.to_string(), cache_control)
}
