//! `examples/sensors/bindings/` must match the example's Rust types.
//! Regenerate with `cargo run -p gatehouse-sensors -- bindings`.

use std::path::PathBuf;

use gatehouse::typescript::{BindingsError, check_bindings};

#[test]
fn committed_bindings_are_up_to_date() {
    let registry = gatehouse_sensors::app_router()
        .build()
        .expect("the sensors app router builds");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bindings");
    match check_bindings(&registry, &dir, &gatehouse_sensors::bindings_options()) {
        Ok(()) => {}
        Err(BindingsError::Stale(report)) => panic!("{report}"),
        Err(e) => panic!("could not check the bindings: {e}"),
    }
}

#[test]
fn the_router_has_auth_users_and_sensors_on_the_app_state() {
    let registry = gatehouse_sensors::app_router().build().expect("builds");
    for path in [
        "auth.login",
        "users.list",
        "sensors.list",
        "sensors.create",
        "sensors.delete",
        "sensors.record",
        "sensors.readings",
        "sensors.onReading",
    ] {
        assert!(registry.get(path).is_some(), "{path} missing");
    }
}

#[test]
fn on_reading_is_a_tracked_subscription_in_the_app_router_type() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bindings");
    let router = std::fs::read_to_string(dir.join("AppRouter.ts")).expect("AppRouter.ts");
    let line = "onReading: TRPCSubscriptionProcedure<{ input: OnReadingInput | undefined; \
                output: AsyncIterable<{ id: string; data: Reading }, void, any>; meta: object }>;";
    assert!(router.contains(line), "{router}");
}
