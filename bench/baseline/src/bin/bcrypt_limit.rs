//! Measures this machine's bcrypt ceiling for `bench/run`: how many logins
//! per second are possible at all if the server did nothing but verify
//! passwords on every core it is allowed to use. A login costs one bcrypt
//! verify, so the limit is `cores / time_of_one_verify`. It runs with the
//! same CPU affinity as the servers, so `cores` is the affinity mask's size.
//!
//! Uses the workspace's `bcrypt` crate (the one Gatehouse uses), in release.
//! Prints one JSON object on stdout.

use std::time::Instant;

use anyhow::Context;
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// bcrypt cost, as `BCRYPT_COST`.
    #[arg(long, default_value_t = 10)]
    cost: u32,
    /// Timed verifications (after one untimed warm-up).
    #[arg(long, default_value_t = 5)]
    iterations: u32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cores = std::thread::available_parallelism()
        .context("available_parallelism")?
        .get();
    let password = "bench-password-0-Xy";
    let hash = bcrypt::hash(password, args.cost).context("hash")?;
    // Warm-up: page in code, settle the CPU frequency.
    bcrypt::verify(password, &hash).context("verify")?;
    let mut samples = Vec::with_capacity(args.iterations as usize);
    for _ in 0..args.iterations.max(1) {
        let start = Instant::now();
        let ok = bcrypt::verify(password, &hash).context("verify")?;
        samples.push(start.elapsed().as_secs_f64());
        anyhow::ensure!(ok, "bcrypt verify of its own hash failed");
    }
    samples.sort_by(f64::total_cmp);
    // The median resists a one-off preemption better than the mean.
    let median = samples[samples.len() / 2];
    let out = serde_json::json!({
        "cost": args.cost,
        "cores": cores,
        "iterations": samples.len(),
        "hash_ms_median": median * 1000.0,
        "hash_ms_min": samples[0] * 1000.0,
        "limit_per_s": cores as f64 / median,
    });
    println!("{out}");
    Ok(())
}
