//! The API reference page: `GET /docs` renders the server's own
//! `/openapi.json` with Swagger UI, whose "Try it out" sends requests to the
//! same server. Every file the page loads is compiled into the binary and
//! served from here (no CDN), so the page works offline and behind the strict
//! Content-Security-Policy it is sent with: no inline script, no `eval`, no
//! other origin. The framework serves it for any application; it knows
//! nothing of what the procedures do.
//!
//! The Swagger UI files are `swagger-ui-dist` from npm, copied byte for byte
//! by `tests/vendor-docs-assets.sh` (see `src/docs/README.md`).

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use tower_http::compression::CompressionLayer;

/// The `swagger-ui-dist` version in `src/docs/swagger-ui/`. It is part of the
/// assets' URLs, so a new version is a new URL and the old files may be
/// cached forever.
pub const SWAGGER_UI_VERSION: &str = "5.35.0";

/// Where the page is served.
pub const PATH: &str = "/docs";

/// The page's Content-Security-Policy. Everything comes from this server
/// (`'self'`); the exceptions, each needed by Swagger UI as shipped:
/// - `img-src data:`: its stylesheet draws icons as `data:` SVG images;
/// - `connect-src 'self'` (already in `default-src`, spelled out because it
///   is what lets "Try it out" reach this server and nothing else).
///
/// No `'unsafe-inline'` and no `'unsafe-eval'`: the page starts Swagger UI
/// from a same-origin script (`init.js`) that reads its settings from the
/// page's `data-` attributes.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Versioned files never change under their URL.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The page and its start script change with the binary: revalidate.
const REVALIDATE: &str = "no-cache";

const INDEX_HTML: &str = include_str!("index.html");
const INIT_JS: &[u8] = include_bytes!("init.js");
const BUNDLE_JS: &[u8] = include_bytes!("swagger-ui/swagger-ui-bundle.js");
const BUNDLE_CSS: &[u8] = include_bytes!("swagger-ui/swagger-ui.css");

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The routes of the page and its files: `/docs`, `/docs/init.js` and
/// `/docs/swagger-ui-<version>/…`. [`crate::server::app`] adds them unless
/// `TrpcConfig::docs` is off; an application with its own assembly can
/// merge them into its router. Answers are gzip-compressed for clients that
/// accept it (the script is 1.7 MB, 0.46 MB compressed).
pub fn router() -> Router {
    let page = INDEX_HTML.replace(
        "{{swagger_ui}}",
        &format!("swagger-ui-{SWAGGER_UI_VERSION}"),
    );
    let vendored = format!("{PATH}/swagger-ui-{SWAGGER_UI_VERSION}");
    Router::new()
        .route(
            PATH,
            get(move || {
                let page = page.clone();
                async move { page_response(page) }
            }),
        )
        // The page's links are relative to `/docs`; from `/docs/` they would
        // miss, so send the browser to the page itself.
        .route(&format!("{PATH}/"), get(redirect_to_page))
        .route(
            &format!("{PATH}/init.js"),
            get(|| async { asset(INIT_JS, JAVASCRIPT, REVALIDATE) }),
        )
        .route(
            &format!("{vendored}/swagger-ui-bundle.js"),
            get(|| async { asset(BUNDLE_JS, JAVASCRIPT, IMMUTABLE) }),
        )
        .route(
            &format!("{vendored}/swagger-ui.css"),
            get(|| async { asset(BUNDLE_CSS, CSS, IMMUTABLE) }),
        )
        .layer(CompressionLayer::new().gzip(true))
}

fn page_response(page: String) -> Response {
    let mut response = asset(page, HTML, REVALIDATE);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    // The page has nothing to tell other sites about where it was opened.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn redirect_to_page() -> Response {
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, HeaderValue::from_static("../docs"))],
    )
        .into_response()
}

fn asset(body: impl Into<Body>, content_type: &'static str, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            // Browsers must take the declared type, not guess one.
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body.into(),
    )
        .into_response()
}
