//! Fuzz target over the request decoding path: random requests of the kinds
//! clients send, mangled byte by byte (URI, query, headers, body), through
//! the whole application (middleware, adapter, envelope, procedures). Every
//! answer must be a well-formed tRPC answer, never a panic or a 500.
//!
//! Runs for `GATEHOUSE_FUZZ_SECONDS` (2 s by default, so `cargo test` stays
//! quick; `tests/fuzz 600` for a long run) from the seed in
//! `GATEHOUSE_FUZZ_SEED` (random by default; printed, so a failure can be
//! replayed).

mod common;

use std::time::{Duration, Instant};

use common::random::{RandomRequest, Rng, check_answer};
use common::*;

fn setting(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn mangled_requests_get_well_formed_answers() {
    let budget = Duration::from_secs(setting("GATEHOUSE_FUZZ_SECONDS").unwrap_or(2));
    let seed = setting("GATEHOUSE_FUZZ_SEED").unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        nanos | 1
    });
    eprintln!("fuzz: seed {seed} (replay with GATEHOUSE_FUZZ_SEED={seed}), {budget:?}");
    let app = app();
    let mut rng = Rng(seed);
    let started = Instant::now();
    let (mut sent, mut unbuildable) = (0_u64, 0_u64);
    while started.elapsed() < budget {
        let mut req = RandomRequest::generate(&mut rng);
        for _ in 0..1 + rng.below(3) {
            req.mutate(&mut rng);
        }
        let Some(built) = req.build() else {
            unbuildable += 1;
            continue;
        };
        let r = send(&app, built).await;
        check_answer(&req, &r, false);
        sent += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "fuzz: {sent} requests in {secs:.1} s ({:.0}/s), {unbuildable} refused by the http crate, no failure",
        sent as f64 / secs
    );
    assert!(sent > 0, "the fuzzer sent nothing");
}
