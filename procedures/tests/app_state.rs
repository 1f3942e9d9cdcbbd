//! An app with a state of its own around the auth service: every `auth.*`
//! procedure runs on that state through `HasAuth`, beside the app's own
//! procedures, and the auth service still authenticates callers and
//! translates errors. On SQLite and (when `GATEHOUSE_TEST_POSTGRES_URL` is
//! set) PostgreSQL.

mod common;

use std::sync::Arc;

use gatehouse::{
    Ctx, ErrorCode, Guard, Kind, NoInput, Procedure, RequestMeta, Role, RpcError, Service,
};
use gatehouse_auth::{AuthService, AuthUser, HasAuth};
use serde_json::{Value, json};

use common::{Backend, Client, PASSWORD, register};

/// The app's state: the auth service and something of the app's own.
struct App {
    auth: AuthService,
    greeting: &'static str,
}

impl Service for App {
    type Principal = AuthUser;
    const AUTHENTICATE_ERRORS: &'static [ErrorCode] = AuthService::AUTHENTICATE_ERRORS;

    async fn authenticate(&self, request: &RequestMeta) -> Result<Option<AuthUser>, RpcError> {
        self.auth.authenticate(request).await
    }

    async fn ready(&self) -> bool {
        self.auth.ready().await
    }

    fn finalize_error(&self, request: &RequestMeta, error: &mut RpcError) {
        self.auth.finalize_error(request, error);
    }
}

impl HasAuth for App {
    fn auth(&self) -> &AuthService {
        &self.auth
    }
}

/// `app.hello`: the app's greeting and the caller's email.
#[derive(schemars::JsonSchema)]
struct Hello;

impl Procedure<App> for Hello {
    const PATH: &'static str = "hello";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Role(Role::Viewer);
    type Input = NoInput;
    type Output = String;
    type Error = RpcError;

    async fn call(ctx: Ctx<App>, _: NoInput) -> Result<String, RpcError> {
        Ok(format!(
            "{}, {}",
            ctx.service.greeting,
            ctx.principal()?.email
        ))
    }
}

async fn auth_procedures_run_on_an_app_state(backend: Backend) {
    let temp = tempfile::tempdir().expect("tempdir");
    let config = common::test_config(backend, temp.path()).await;
    let auth = gatehouse_auth::build_service(&config)
        .await
        .expect("service starts");
    let state = Arc::new(App {
        auth,
        greeting: "Hello",
    });
    let router = gatehouse_auth::app_router::<App>()
        .nest("app", gatehouse::Router::new().procedure::<Hello>());
    let (addr, _shutdown, _task) = common::serve(&config, router, state).await;
    let client = Client::new(addr);

    let (token, _) = register(&client, "ada@example.com").await;
    assert_eq!(
        client.me(&token).await.data()["email"],
        json!("ada@example.com")
    );
    let hello = client
        .clone()
        .with_token(&token)
        .query("app.hello", Value::Null)
        .await;
    assert_eq!(hello.data(), &json!("Hello, ada@example.com"));

    // The app's guard asks the auth service who is calling.
    client
        .query("app.hello", Value::Null)
        .await
        .assert_error("UNAUTHORIZED", 401);

    // Errors reach the client as from the auth service alone, translated.
    let refused = client
        .clone()
        .with_header("accept-language", "es")
        .mutation(
            "auth.login",
            json!({ "email": "ada@example.com", "password": format!("{PASSWORD}!") }),
        )
        .await;
    refused.assert_error("UNAUTHORIZED", 401);
    assert_eq!(
        refused.message(),
        "Correo electrónico o contraseña incorrectos"
    );
}

both_backends!(auth_procedures_run_on_an_app_state);
