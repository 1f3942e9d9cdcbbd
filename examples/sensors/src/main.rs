//! `gatehouse-sensors`: the Gatehouse auth service plus the example's
//! `sensors` router on its own state, with the same settings as the
//! `gatehouse` binary. At start-up both migrators run: the auth one, then
//! the example's (`sensors_migrations`).
//!
//!   cargo run -p gatehouse-sensors               # serve (GATEHOUSE_ADDR, DATABASE_URL, …)
//!   cargo run -p gatehouse-sensors -- bindings   # regenerate examples/sensors/bindings/

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gatehouse_auth::{Config, StartError};
use gatehouse_sensors::SensorsApp;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse-sensors",
    about = "Gatehouse with an application router (sensors.*) beside auth.* and users.*"
)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Write the TypeScript bindings of the whole router.
    Bindings {
        /// Output folder; default `examples/sensors/bindings/`.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // As in the `gatehouse` binary: the password only ever comes from the environment.
    cli.config.admin_password = std::env::var("GATEHOUSE_ADMIN_PASSWORD").ok();
    // Also as there: a setting exported empty (`DATABASE_URL=`) is unset.
    cli.config = cli.config.normalized();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => tokio::runtime::Runtime::new()
            .map_err(|e| format!("cannot start the async runtime: {e}"))
            .and_then(|rt| {
                rt.block_on(gatehouse_auth::run_app(
                    cli.config,
                    gatehouse_sensors::app_router(),
                    // The auth service is built (and its tables migrated)
                    // first; the app adds its own tables beside them.
                    |auth| async move { SensorsApp::open(auth).await.map_err(StartError::app) },
                ))
                .map_err(|e| e.to_string())
            }),
        Command::Bindings { out } => {
            let out = out
                .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/bindings")));
            gatehouse_sensors::app_router()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|registry| {
                    gatehouse::typescript::write_bindings_with(
                        &registry,
                        &out,
                        &gatehouse_sensors::bindings_options(),
                    )
                    .map_err(|e| e.to_string())
                })
                .map(|()| println!("bindings written to {}", out.display()))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse-sensors: {e}");
            ExitCode::FAILURE
        }
    }
}
