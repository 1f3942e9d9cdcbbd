//! The API reference page over a real TCP socket: `GET /docs` answers HTML
//! with its Content-Security-Policy, and every file the page names answers
//! 200 from the same server with the right content type and caching. (The
//! page itself is driven in headless Chromium by `tests/docs-page`.)

mod common;

use std::sync::Arc;

use common::*;
use gatehouse::docs::{CONTENT_SECURITY_POLICY, SWAGGER_UI_VERSION};
use gatehouse::http::TrpcConfig;
use reqwest::{StatusCode, Url, header};
use tokio::net::TcpListener;

/// Serves the test registry on a free port until the returned sender drops.
async fn serve(config: TrpcConfig) -> (Url, tokio::sync::oneshot::Sender<()>) {
    let registry = router().build().unwrap_or_else(|e| panic!("{e}"));
    let app = gatehouse::server::app(registry, Arc::new(TestService::default()), config);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gatehouse::server::serve_with_shutdown(
        listener,
        app,
        async move {
            let _ = stopped.await;
        },
    ));
    (Url::parse(&format!("http://{addr}/")).expect("url"), stop)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn header_of(response: &reqwest::Response, name: header::HeaderName) -> &str {
    response
        .headers()
        .get(&name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("{} has no {name}", response.url()))
}

/// The values of every `src="…"`, `href="…"` and `data-*-url="…"` attribute.
fn referenced(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in [" src=\"", " href=\"", "-url=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attribute) {
            rest = &rest[i + attribute.len()..];
            let end = rest.find('"').expect("a closing quote");
            found.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    found
}

#[tokio::test]
async fn the_page_and_every_file_it_names_are_served() {
    let (base, _stop) = serve(TrpcConfig::default()).await;
    let client = client();
    let page_url = base.join("docs").expect("page url");
    let page = client
        .get(page_url.clone())
        .send()
        .await
        .expect("GET /docs");
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        header_of(&page, header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    let csp = header_of(&page, header::CONTENT_SECURITY_POLICY).to_owned();
    assert_eq!(csp, CONTENT_SECURITY_POLICY);
    for directive in [
        "default-src 'self'",
        "script-src 'self';",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "CSP without {directive:?}: {csp}");
    }
    assert!(!csp.contains("unsafe-"), "CSP allows inline or eval: {csp}");
    assert!(!csp.contains("http"), "CSP names another origin: {csp}");
    assert_eq!(header_of(&page, header::CACHE_CONTROL), "no-cache");
    assert_eq!(header_of(&page, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    let html = page.text().await.expect("page body");
    assert!(!html.contains("<script>"), "an inline script: {html}");

    let names: Vec<String> = referenced(&html)
        .into_iter()
        .filter(|name| !name.starts_with("data:"))
        .collect();
    assert!(names.len() >= 4, "too few files named: {names:?}");
    let mut vendored = 0;
    for name in &names {
        let url = page_url.join(name).expect("a URL relative to the page");
        assert_eq!(url.origin(), base.origin(), "{name} is on another origin");
        let response = client.get(url.clone()).send().await.expect("GET asset");
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let expected = match url.path().rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("json") => "application/json",
            _ => panic!("{url}: a file of unexpected type"),
        };
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            expected,
            "{url}"
        );
        if url
            .path()
            .starts_with(&format!("/docs/swagger-ui-{SWAGGER_UI_VERSION}/"))
        {
            vendored += 1;
            assert_eq!(
                header_of(&response, header::CACHE_CONTROL),
                "public, max-age=31536000, immutable",
                "{url}"
            );
            assert_eq!(
                header_of(&response, header::X_CONTENT_TYPE_OPTIONS),
                "nosniff"
            );
        }
        let body = response.bytes().await.expect("asset body");
        assert!(!body.is_empty(), "{url} is empty");
        if name.contains("swagger-ui-bundle.js") {
            // The 1.7 MB script travels compressed to browsers that accept it.
            let gzipped = client
                .get(url.clone())
                .header(header::ACCEPT_ENCODING, "gzip")
                .send()
                .await
                .expect("GET gzip");
            assert_eq!(header_of(&gzipped, header::CONTENT_ENCODING), "gzip");
            let compressed = gzipped.bytes().await.expect("gzip body");
            assert!(
                compressed.len() * 3 < body.len(),
                "{} bytes gzipped of {}",
                compressed.len(),
                body.len()
            );
        }
    }
    assert_eq!(
        vendored, 2,
        "the Swagger UI script and stylesheet: {names:?}"
    );

    // `/docs/` would break the page's relative links: it sends to `/docs`.
    let slash = client
        .get(base.join("docs/").expect("url"))
        .send()
        .await
        .expect("GET /docs/");
    assert_eq!(slash.status(), StatusCode::PERMANENT_REDIRECT);
    let location = header_of(&slash, header::LOCATION);
    assert_eq!(slash.url().join(location).expect("location"), page_url);
}

#[tokio::test]
async fn the_page_can_be_turned_off() {
    let (base, _stop) = serve(TrpcConfig {
        docs: false,
        ..TrpcConfig::default()
    })
    .await;
    let client = client();
    for path in [
        "docs".to_owned(),
        "docs/init.js".to_owned(),
        format!("docs/swagger-ui-{SWAGGER_UI_VERSION}/swagger-ui-bundle.js"),
    ] {
        let response = client
            .get(base.join(&path).expect("url"))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let document = client
        .get(base.join("openapi.json").expect("url"))
        .send()
        .await
        .expect("GET /openapi.json");
    assert_eq!(document.status(), StatusCode::OK, "the document stays");
}
