//! `GATEHOUSE_URL=http://127.0.0.1:3000 PORT=4000 cargo run -p jwt-verifier-rust`
//! serves `GET /api/1/trips/me` for Gatehouse tokens (see the library).

use std::sync::Arc;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let gatehouse =
        std::env::var("GATEHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".into());
    let issuer = std::env::var("JWT_ISSUER").unwrap_or_else(|_| "gatehouse".into());
    let alg = std::env::var("JWT_ALGORITHM")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or(jsonwebtoken::Algorithm::EdDSA);
    let port = std::env::var("PORT").unwrap_or_else(|_| "4000".into());
    let verifier = Arc::new(jwt_verifier_rust::Verifier::new(
        &gatehouse,
        &issuer,
        vec![alg],
    ));
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!(
        "trips service on http://{}, trusting {gatehouse}",
        listener.local_addr()?
    );
    axum::serve(listener, jwt_verifier_rust::router(verifier)).await
}
