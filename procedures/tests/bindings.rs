//! The committed `bindings/` must match what the Rust procedure types
//! generate, or a frontend type-checks against an API the server no longer
//! has. Regenerate with `cargo run -p gatehouse-auth -- bindings`.

use std::path::PathBuf;

use gatehouse::typescript::{
    BindingsError, BindingsOptions, check_bindings, render_bindings, write_bindings,
};
use gatehouse::{Ctx, Guard, Kind, NoInput, Procedure, RpcError};
use gatehouse_auth::AuthService;

fn committed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bindings")
}

#[test]
fn committed_bindings_are_up_to_date() {
    let registry = gatehouse_auth::app_router::<AuthService>()
        .build()
        .expect("the auth router builds");
    match check_bindings(&registry, &committed_dir(), &BindingsOptions::default()) {
        Ok(()) => {}
        Err(BindingsError::Stale(report)) => panic!("{report}"),
        Err(e) => panic!("could not check the bindings: {e}"),
    }
}

#[test]
fn bindings_cover_every_procedure() {
    let registry = gatehouse_auth::app_router::<AuthService>()
        .build()
        .expect("the auth router builds");
    let files = render_bindings(&registry, &BindingsOptions::default()).expect("renders");
    let router = &files["AppRouter.ts"];
    for entry in registry.entries() {
        let leaf = entry.path.rsplit('.').next().unwrap_or_default();
        let wrapper = match entry.kind {
            Kind::Query => "TRPCQueryProcedure",
            Kind::Mutation => "TRPCMutationProcedure",
            Kind::Subscription => "TRPCSubscriptionProcedure",
        };
        assert!(
            router.contains(&format!("{leaf}: {wrapper}<")),
            "{} missing from AppRouter.ts:\n{router}",
            entry.path
        );
    }
}

/// A type the real router does not have, standing in for a changed API.
#[derive(serde::Serialize, ts_rs::TS, schemars::JsonSchema)]
struct ProbeOutput {
    probe: u32,
}

#[derive(schemars::JsonSchema)]
struct Probe;

impl Procedure<AuthService> for Probe {
    const PATH: &'static str = "probe";
    const KIND: Kind = Kind::Query;
    const GUARD: Guard = Guard::Public;
    type Input = NoInput;
    type Output = ProbeOutput;
    type Error = RpcError;

    async fn call(_: Ctx<AuthService>, _: NoInput) -> Result<ProbeOutput, RpcError> {
        Ok(ProbeOutput { probe: 1 })
    }
}

#[test]
fn a_changed_api_makes_the_committed_bindings_stale() {
    let changed = gatehouse_auth::app_router()
        .nest("extra", gatehouse::Router::new().procedure::<Probe>())
        .build()
        .expect("builds");
    let Err(BindingsError::Stale(report)) =
        check_bindings(&changed, &committed_dir(), &BindingsOptions::default())
    else {
        panic!("an added procedure and type were not reported as stale");
    };
    assert_eq!(report.missing, ["ProbeOutput.ts"]);
    let changed_files: Vec<&str> = report.changed.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(changed_files, ["AppRouter.ts", "index.ts", "openapi.json"]);
    let text = report.to_string();
    assert!(
        text.contains("run `cargo run -p gatehouse-auth -- bindings`"),
        "{text}"
    );
}

#[test]
fn an_edited_type_file_is_reported_with_a_diff() {
    let registry = gatehouse_auth::app_router::<AuthService>()
        .build()
        .expect("the auth router builds");
    let dir = tempfile::tempdir().expect("tempdir");
    write_bindings(&registry, dir.path()).expect("writes");
    check_bindings(&registry, dir.path(), &BindingsOptions::default()).expect("fresh");

    // Someone hand-edits a generated type (or the Rust type changed since).
    let user = dir.path().join("User.ts");
    let text = std::fs::read_to_string(&user).expect("User.ts exists");
    std::fs::write(&user, text.replace("email: string", "email: number")).expect("write");
    let Err(BindingsError::Stale(report)) =
        check_bindings(&registry, dir.path(), &BindingsOptions::default())
    else {
        panic!("an edited User.ts was not reported");
    };
    assert_eq!(report.changed.len(), 1);
    assert_eq!(report.changed[0].0, "User.ts");
    assert!(report.changed[0].1.contains("email: number"), "{report}");
}
