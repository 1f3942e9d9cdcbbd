//! Turns the raw files one `bench/run` wrote into the results table, the
//! target verdicts, `latest.md` and `latest.json`. Kept apart from the shell
//! script so the arithmetic (rates, ratios, pass/miss) is typed and tested
//! once, not re-done in `awk`.
//!
//! Input directory layout (written by `bench/run`):
//! - `meta.json`: run settings (durations, CPU split, cost, versions).
//! - `bcrypt.json`: output of `bcrypt-limit` at the start of the run.
//! - `<server>/<scenario>.json`: wrk summaries from `bench/lua/trpc.lua`.
//! - `<server>/bcrypt.json`: `bcrypt-limit` again right before that server's
//!   login scenario; its limit is the one that server is judged against.
//! - `<server>/startup_ms`, `<server>/peak_rss_kib`: plain numbers.
//! - `<server>/error`: why a server's runs are missing, if they are.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// The raw-results directory of one run.
    #[arg(long)]
    dir: PathBuf,
    /// Write `<out>.md` and `<out>.json` (e.g. `bench/results/latest`).
    #[arg(long)]
    out: PathBuf,
}

const SERVERS: [(&str, &str); 8] = [
    ("gatehouse", "Gatehouse"),
    ("baseline", "bare axum"),
    ("axum-session", "axum + JWT check + session read"),
    (
        "axum-session-cache",
        "axum + JWT check + session read, cached as Gatehouse does",
    ),
    ("trpc-node", "tRPC Node"),
    ("gatehouse-pg", "Gatehouse on PostgreSQL"),
    (
        "axum-session-pg",
        "axum + JWT check + session read on PostgreSQL",
    ),
    (
        "gatehouse-pg-lb",
        "2 × Gatehouse on one PostgreSQL behind haproxy",
    ),
];

/// One wrk run, as `trpc.lua`'s `done()` wrote it.
#[derive(Debug, Clone, Deserialize, Serialize)]
struct Wrk {
    requests: u64,
    duration_us: u64,
    errors: Errors,
    latency_us: Latency,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
struct Errors {
    connect: u64,
    read: u64,
    write: u64,
    status: u64,
    timeout: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
struct Latency {
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

impl Wrk {
    fn rate(&self) -> f64 {
        if self.duration_us == 0 {
            0.0
        } else {
            self.requests as f64 / (self.duration_us as f64 / 1e6)
        }
    }
    fn errors(&self) -> u64 {
        let e = &self.errors;
        e.connect + e.read + e.write + e.status + e.timeout
    }
    fn p50_ms(&self) -> f64 {
        self.latency_us.p50 as f64 / 1000.0
    }
    fn p99_ms(&self) -> f64 {
        self.latency_us.p99 as f64 / 1000.0
    }
}

#[derive(Debug, Default, Serialize)]
struct Server {
    error: Option<String>,
    startup_ms: Option<f64>,
    peak_rss_kib: Option<u64>,
    /// `bcrypt-limit` run just before this server's login scenario.
    bcrypt: Option<Value>,
    runs: BTreeMap<String, Wrk>,
    /// The server process's CPU seconds during each measured run.
    cpu_s: BTreeMap<String, f64>,
}

fn read_number(path: &Path) -> Option<f64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn load_server(dir: &Path) -> anyhow::Result<Server> {
    let mut s = Server {
        error: std::fs::read_to_string(dir.join("error"))
            .ok()
            .map(|e| e.trim().to_owned()),
        startup_ms: read_number(&dir.join("startup_ms")),
        peak_rss_kib: read_number(&dir.join("peak_rss_kib")).map(|v| v as u64),
        bcrypt: std::fs::read_to_string(dir.join("bcrypt.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok()),
        runs: BTreeMap::new(),
        cpu_s: BTreeMap::new(),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(s);
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "cpu_s")
            && let (Some(name), Some(secs)) = (
                path.file_stem().and_then(|n| n.to_str()),
                read_number(&path),
            )
        {
            s.cpu_s.insert(name.to_owned(), secs);
        }
        if path.extension().is_some_and(|e| e == "json")
            && path.file_stem().is_some_and(|n| n != "bcrypt")
        {
            let name = path
                .file_stem()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let text = std::fs::read_to_string(&path)?;
            let run: Wrk =
                serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
            s.runs.insert(name, run);
        }
    }
    Ok(s)
}

fn f0(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.0}"))
}
fn f1(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}"))
}
fn f2(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}"))
}
fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}
fn ratio_s(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}×"))
}

struct Target {
    name: &'static str,
    goal: &'static str,
    measured: Option<f64>,
    shown: String,
    verdict: Verdict,
}

/// What a row of the targets table is held to.
enum Verdict {
    /// A target: met, missed, or `None` when a figure is missing.
    Goal(Option<bool>),
    /// Reported for information, without a verdict.
    Information,
}

impl Target {
    /// A share reported beside the targets, without a verdict.
    fn information(name: &'static str, goal: &'static str, share: Option<f64>) -> Self {
        Self {
            name,
            goal,
            measured: share,
            shown: share.map_or("–".into(), |r| format!("{:.0}%", r * 100.0)),
            verdict: Verdict::Information,
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(args.dir.join("meta.json")).context("meta.json")?,
    )
    .context("meta.json")?;
    let bcrypt: Option<Value> = std::fs::read_to_string(args.dir.join("bcrypt.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let mut servers = BTreeMap::new();
    for (key, _) in SERVERS {
        servers.insert(key, load_server(&args.dir.join(key))?);
    }

    let run = |server: &str, scenario: &str| servers.get(server)?.runs.get(scenario);
    let rate = |s: &str, sc: &str| run(s, sc).map(Wrk::rate);
    let p50 = |s: &str, sc: &str| run(s, sc).map(Wrk::p50_ms);
    let p99 = |s: &str, sc: &str| run(s, sc).map(Wrk::p99_ms);
    // Server CPU µs per request of a run.
    let cpu_us = |s: &str, sc: &str| {
        let secs = servers.get(s)?.cpu_s.get(sc)?;
        let requests = run(s, sc)?.requests;
        (requests > 0).then(|| secs * 1e6 / requests as f64)
    };
    let global_limit = bcrypt
        .as_ref()
        .and_then(|b| b.get("limit_per_s"))
        .and_then(Value::as_f64);
    let limit_of = |s: &str| {
        servers
            .get(s)
            .and_then(|x| x.bcrypt.as_ref())
            .and_then(|b| b.get("limit_per_s"))
            .and_then(Value::as_f64)
            .or(global_limit)
    };
    let g = "gatehouse";
    let a = "baseline";
    let n = "trpc-node";
    let sess = "axum-session";
    let sc = "axum-session-cache";
    let gp = "gatehouse-pg";
    let sp = "axum-session-pg";
    let lb = "gatehouse-pg-lb";
    let conns = |k: &str| {
        meta.get("connections")
            .and_then(|c| c.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };

    // Results table: one row per figure, one column per server.
    let mut t = String::new();
    writeln!(
        t,
        "| scenario | Gatehouse | bare axum | tRPC Node | GH / axum | GH / Node |"
    )?;
    writeln!(t, "|---|---:|---:|---:|---:|---:|")?;
    let mut row =
        |label: String, vals: [Option<f64>; 3], fmt: fn(Option<f64>) -> String, ratios: bool| {
            let (ra, rn) = if ratios {
                (ratio(vals[0], vals[1]), ratio(vals[0], vals[2]))
            } else {
                (None, None)
            };
            writeln!(
                t,
                "| {label} | {} | {} | {} | {} | {} |",
                fmt(vals[0]),
                fmt(vals[1]),
                fmt(vals[2]),
                ratio_s(ra),
                ratio_s(rn)
            )
        };
    let all = |f: &dyn Fn(&str) -> Option<f64>| [f(g), f(a), f(n)];
    row(
        format!("1. auth.me GET, {} conns: req/s", conns("me")),
        all(&|s| rate(s, "me")),
        f0,
        true,
    )?;
    row("1. auth.me p50 ms".into(), all(&|s| p50(s, "me")), f2, true)?;
    row("1. auth.me p99 ms".into(), all(&|s| p99(s, "me")), f2, true)?;
    row(
        "1. auth.me server CPU µs per request".into(),
        all(&|s| cpu_us(s, "me")),
        f1,
        true,
    )?;
    row(
        format!("2. auth.login, {} conns: logins/s", conns("login")),
        [rate(g, "login"), None, rate(n, "login")],
        f1,
        true,
    )?;
    row(
        "2. auth.login p99 ms".into(),
        [p99(g, "login"), None, p99(n, "login")],
        f2,
        true,
    )?;
    row(
        "2. bcrypt limit (cores ÷ one hash), logins/s".into(),
        [limit_of(g), None, limit_of(n)],
        f1,
        false,
    )?;
    row(
        "2. logins/s as % of bcrypt limit".into(),
        [
            ratio(rate(g, "login"), limit_of(g)).map(|r| r * 100.0),
            None,
            ratio(rate(n, "login"), limit_of(n)).map(|r| r * 100.0),
        ],
        f0,
        false,
    )?;
    row(
        format!(
            "3. auth.me p99 ms under login flood ({} me + {} login conns)",
            conns("flood_me"),
            conns("login")
        ),
        [p99(g, "flood-me"), None, p99(n, "flood-me")],
        f2,
        true,
    )?;
    row(
        "3. auth.me req/s under login flood".into(),
        [rate(g, "flood-me"), None, rate(n, "flood-me")],
        f0,
        true,
    )?;
    row(
        "3. logins/s during flood".into(),
        [rate(g, "flood-login"), None, rate(n, "flood-login")],
        f1,
        true,
    )?;
    let batch = meta.get("batch").and_then(Value::as_f64).unwrap_or(10.0);
    for (sc, label) in [("batch", "JSON"), ("batch-jsonl", "JSONL stream")] {
        row(
            format!(
                "4. batch of {batch:.0} auth.me ({label}), {} conns: req/s",
                conns("batch")
            ),
            [rate(g, sc), None, rate(n, sc)],
            f0,
            true,
        )?;
        row(
            format!("4. … calls/s ({label})"),
            [
                rate(g, sc).map(|r| r * batch),
                None,
                rate(n, sc).map(|r| r * batch),
            ],
            f0,
            true,
        )?;
        row(
            format!("4. … p99 ms ({label})"),
            [p99(g, sc), None, p99(n, sc)],
            f2,
            true,
        )?;
    }
    let rss = |s: &str| {
        servers
            .get(s)
            .and_then(|x| x.peak_rss_kib)
            .map(|k| k as f64 / 1024.0)
    };
    row("5. peak RSS MiB (VmHWM)".into(), all(&rss), f2, true)?;
    let startup = |s: &str| servers.get(s).and_then(|x| x.startup_ms);
    row(
        "5. start → first 200 /readyz, ms".into(),
        all(&startup),
        f0,
        true,
    )?;
    let errs = |s: &str| {
        servers.get(s).and_then(|x| {
            (!x.runs.is_empty()).then(|| x.runs.values().map(Wrk::errors).sum::<u64>() as f64)
        })
    };
    row(
        "errors (non-2xx, socket, timeouts), all runs".into(),
        all(&errs),
        f0,
        false,
    )?;

    // Targets.
    let me_g = rate(g, "me");
    let targets = [
        {
            let r = ratio(me_g, rate(n, "me"));
            Target {
                name: "auth.me req/s vs tRPC Node",
                goal: "≥ 5×",
                measured: r,
                shown: ratio_s(r),
                verdict: Verdict::Goal(r.map(|r| r >= 5.0)),
            }
        },
        Target::information(
            "auth.me req/s vs bare axum",
            "information (was ≥ 50%)",
            ratio(me_g, rate(a, "me")),
        ),
        {
            let r = ratio(me_g, rate(sess, "me"));
            Target {
                name: "auth.me req/s vs axum-session bound (SQLite)",
                goal: "≥ 85%",
                measured: r,
                shown: r.map_or("–".into(), |r| format!("{:.0}%", r * 100.0)),
                verdict: Verdict::Goal(r.map(|r| r >= 0.85)),
            }
        },
        // Like for like: the bound with Gatehouse's session cache, so the
        // gap is the framework alone.
        Target::information(
            "auth.me req/s vs that bound cached as Gatehouse does (SQLite)",
            "information",
            ratio(me_g, rate(sc, "me")),
        ),
        {
            let r = ratio(rate(gp, "me"), rate(sp, "me"));
            Target {
                name: "auth.me req/s on PostgreSQL vs its axum-session bound",
                goal: "≥ 85%",
                measured: r,
                shown: r.map_or("–".into(), |r| format!("{:.0}%", r * 100.0)),
                verdict: Verdict::Goal(r.map(|r| r >= 0.85)),
            }
        },
        {
            let r = ratio(rate(g, "login"), rate(n, "login"));
            Target {
                name: "auth.login logins/s vs tRPC Node",
                goal: "≥ 1×",
                measured: r,
                shown: ratio_s(r),
                verdict: Verdict::Goal(r.map(|r| r >= 1.0)),
            }
        },
        {
            let r = ratio(rate(g, "login"), limit_of(g));
            Target {
                name: "auth.login vs bcrypt limit",
                goal: "≥ 90%",
                measured: r,
                shown: r.map_or("–".into(), |r| format!("{:.0}%", r * 100.0)),
                verdict: Verdict::Goal(r.map(|r| r >= 0.9)),
            }
        },
        {
            let v = p99(g, "flood-me");
            Target {
                name: "auth.me p99 under login flood",
                goal: "≤ 10 ms",
                measured: v,
                shown: v.map_or("–".into(), |v| format!("{v:.2} ms")),
                verdict: Verdict::Goal(v.map(|v| v <= 10.0)),
            }
        },
        {
            let v = rss(g);
            Target {
                name: "peak RSS under load",
                goal: "≤ 64 MiB",
                measured: v,
                shown: v.map_or("–".into(), |v| format!("{v:.1} MiB")),
                verdict: Verdict::Goal(v.map(|v| v <= 64.0)),
            }
        },
    ];
    // The bound for the work every guarded call must do, beside the targets.
    let mut bound = String::new();
    if rate(sess, "me").is_some() {
        writeln!(
            bound,
            "\n## The mandated work alone\n\n\
             The bare axum route doing only what `docs/api.md` demands of every guarded call (verify the \
             JWT, read the session ⋈ user row from Gatehouse's SQLite file), {} conns. The plain \
             bound reads the row on every call; the cached one keeps it while SQLite's \
             `PRAGMA data_version` is unchanged, as Gatehouse does, so Gatehouse's share of it is \
             what the framework costs:\n\n\
             | server | auth.me req/s | p99 ms | Gatehouse as a share | server CPU µs per request |\n|---|---:|---:|---:|---:|",
            conns("me")
        )?;
        for (server, label) in [
            (a, "bare axum"),
            (sess, "axum + JWT check + session read"),
            (sc, "… the same, cached as Gatehouse does"),
        ] {
            writeln!(
                bound,
                "| {label} | {} | {} | {} | {} |",
                f0(rate(server, "me")),
                f2(p99(server, "me")),
                ratio(me_g, rate(server, "me"))
                    .map_or("–".into(), |r| format!("{:.0}%", r * 100.0)),
                f1(cpu_us(server, "me")),
            )?;
        }
    }
    // PostgreSQL: one instance, its bound, two instances behind haproxy.
    let mut pg = String::new();
    if [gp, sp, lb]
        .iter()
        .any(|s| servers.get(s).is_some_and(|x| !x.runs.is_empty()))
    {
        writeln!(
            pg,
            "\n## PostgreSQL\n\n\
             Same machine, the throwaway server of `tests/postgres.sh` on the server CPUs; \
             pool size {} (Gatehouse's `GATEHOUSE_DB_MAX_CONNECTIONS` and the bound's).\n\n\
             | scenario | Gatehouse | axum-session bound | 2 × Gatehouse + haproxy | GH / bound | 2 × GH / GH |\n\
             |---|---:|---:|---:|---:|---:|",
            meta.get("pg_pool").and_then(Value::as_str).unwrap_or("?")
        )?;
        let mut prow = |label: String,
                        vals: [Option<f64>; 3],
                        fmt: fn(Option<f64>) -> String,
                        ratios: bool|
         -> std::fmt::Result {
            let (rb, rl) = if ratios {
                (ratio(vals[0], vals[1]), ratio(vals[2], vals[0]))
            } else {
                (None, None)
            };
            writeln!(
                pg,
                "| {label} | {} | {} | {} | {} | {} |",
                fmt(vals[0]),
                fmt(vals[1]),
                fmt(vals[2]),
                ratio_s(rb),
                ratio_s(rl)
            )
        };
        let three = |f: &dyn Fn(&str) -> Option<f64>| [f(gp), f(sp), f(lb)];
        prow(
            format!("auth.me GET, {} conns: req/s", conns("me")),
            three(&|s| rate(s, "me")),
            f0,
            true,
        )?;
        prow("auth.me p50 ms".into(), three(&|s| p50(s, "me")), f2, true)?;
        prow("auth.me p99 ms".into(), three(&|s| p99(s, "me")), f2, true)?;
        prow(
            "auth.me server CPU µs per request (PostgreSQL's not counted)".into(),
            [cpu_us(gp, "me"), cpu_us(sp, "me"), None],
            f1,
            false,
        )?;
        prow(
            format!("auth.login, {} conns: logins/s", conns("login")),
            [rate(gp, "login"), None, None],
            f1,
            false,
        )?;
        prow(
            "auth.login p99 ms".into(),
            [p99(gp, "login"), None, None],
            f2,
            false,
        )?;
        prow(
            "logins/s as % of bcrypt limit".into(),
            [
                ratio(rate(gp, "login"), limit_of(gp)).map(|r| r * 100.0),
                None,
                None,
            ],
            f0,
            false,
        )?;
        prow("peak RSS MiB (one instance)".into(), three(&rss), f2, false)?;
        prow(
            "start → first 200 /readyz, ms".into(),
            three(&startup),
            f0,
            false,
        )?;
        prow(
            "errors (non-2xx, socket, timeouts), all runs".into(),
            three(&errs),
            f0,
            false,
        )?;
    }
    let mut tt = String::new();
    writeln!(tt, "| target | goal | measured | verdict |")?;
    writeln!(tt, "|---|---|---:|---|")?;
    for x in &targets {
        let verdict = match x.verdict {
            Verdict::Information => "info",
            Verdict::Goal(Some(true)) => "PASS",
            Verdict::Goal(Some(false)) => "MISS",
            Verdict::Goal(None) => "n/a",
        };
        writeln!(tt, "| {} | {} | {} | {verdict} |", x.name, x.goal, x.shown)?;
    }

    let mut notes = String::new();
    for (key, label) in SERVERS {
        if let Some(e) = servers.get(key).and_then(|s| s.error.as_ref()) {
            writeln!(notes, "- **{label}**: {e}")?;
        }
    }
    for (key, label) in SERVERS {
        if let Some(s) = servers.get(key) {
            for (sc, r) in &s.runs {
                if r.errors() > 0 {
                    writeln!(
                        notes,
                        "- {label} `{sc}`: {} errors of {} requests ({:?})",
                        r.errors(),
                        r.requests,
                        r.errors
                    )?;
                }
            }
        }
    }
    let smoke = meta.get("smoke").and_then(Value::as_bool).unwrap_or(false);
    let build = meta
        .get("build")
        .and_then(Value::as_str)
        .unwrap_or("release");
    let header = format!(
        "{}Run {} at commit {} on {} ({}); {build} build; server CPUs `{}`, load-generator CPUs `{}`; \
         warm-up {} s + {} s per scenario; bcrypt cost {}, one hash {} ms on the server's CPUs.\n",
        if smoke {
            "**SMOKE RUN: durations too short (and possibly a debug build) for the numbers to mean anything.**\n\n"
        } else {
            ""
        },
        meta.get("date").and_then(Value::as_str).unwrap_or("?"),
        meta.get("commit").and_then(Value::as_str).unwrap_or("?"),
        meta.get("cpu").and_then(Value::as_str).unwrap_or("?"),
        meta.get("kernel").and_then(Value::as_str).unwrap_or("?"),
        meta.get("server_cpus")
            .and_then(Value::as_str)
            .unwrap_or("?"),
        meta.get("client_cpus")
            .and_then(Value::as_str)
            .unwrap_or("?"),
        meta.get("warmup_s").and_then(Value::as_u64).unwrap_or(0),
        meta.get("duration_s").and_then(Value::as_u64).unwrap_or(0),
        meta.get("cost").and_then(Value::as_u64).unwrap_or(0),
        f2(bcrypt
            .as_ref()
            .and_then(|b| b.get("hash_ms_median"))
            .and_then(Value::as_f64)),
    );
    let md = format!(
        "# Gatehouse benchmark results\n\n{header}\n{t}{pg}\n## Targets\n\n{tt}{bound}{}",
        if notes.is_empty() {
            String::new()
        } else {
            format!("\n## Notes\n\n{notes}")
        }
    );
    print!(
        "\n{t}{pg}\n{tt}{bound}{}",
        if notes.is_empty() {
            String::new()
        } else {
            format!("\n{notes}")
        }
    );

    let json = json!({
        "meta": meta,
        "bcrypt": bcrypt,
        "servers": servers,
        "derived": {
            "me_rps": {
                "gatehouse": me_g, "baseline": rate(a, "me"),
                "axum-session": rate(sess, "me"), "axum-session-cache": rate(sc, "me"),
                "trpc-node": rate(n, "me"),
            },
            "me_cpu_us_per_request": {
                "gatehouse": cpu_us(g, "me"), "baseline": cpu_us(a, "me"),
                "axum-session": cpu_us(sess, "me"), "axum-session-cache": cpu_us(sc, "me"),
                "trpc-node": cpu_us(n, "me"),
            },
            "bcrypt_limit_per_s": { "run_start": global_limit, "gatehouse": limit_of(g), "trpc-node": limit_of(n) },
            "login_per_s": { "gatehouse": rate(g, "login"), "trpc-node": rate(n, "login") },
            "login_fraction_of_bcrypt_limit": {
                "gatehouse": ratio(rate(g, "login"), limit_of(g)),
                "trpc-node": ratio(rate(n, "login"), limit_of(n)),
            },
            "flood_me_p99_ms": { "gatehouse": p99(g, "flood-me"), "trpc-node": p99(n, "flood-me") },
            "peak_rss_mib": { "gatehouse": rss(g), "baseline": rss(a), "axum-session": rss(sess), "trpc-node": rss(n) },
            "startup_ms": { "gatehouse": startup(g), "baseline": startup(a), "trpc-node": startup(n) },
            "postgres": {
                "me_rps": { "gatehouse": rate(gp, "me"), "axum-session": rate(sp, "me"), "two_instances_haproxy": rate(lb, "me") },
                "me_fraction_of_bound": ratio(rate(gp, "me"), rate(sp, "me")),
                "me_cpu_us_per_request": { "gatehouse": cpu_us(gp, "me"), "axum-session": cpu_us(sp, "me") },
                "login_per_s": rate(gp, "login"),
                "login_fraction_of_bcrypt_limit": ratio(rate(gp, "login"), limit_of(gp)),
                "pool": meta.get("pg_pool"),
            },
        },
        "targets": targets.iter().map(|x| json!({
            "target": x.name, "goal": x.goal, "measured": x.measured,
            "pass": match x.verdict { Verdict::Goal(pass) => pass, Verdict::Information => None },
            "information_only": matches!(x.verdict, Verdict::Information),
        })).collect::<Vec<_>>(),
    });
    let md_path = args.out.with_extension("md");
    let json_path = args.out.with_extension("json");
    std::fs::write(&md_path, md).with_context(|| md_path.display().to_string())?;
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| json_path.display().to_string())?;
    println!("\nwrote {} and {}", md_path.display(), json_path.display());
    Ok(())
}
