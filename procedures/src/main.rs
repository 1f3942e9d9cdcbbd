//! The `gatehouse` binary: `serve` (default), `migrate`, `users create`,
//! `users check-emails`, `keys rotate|list|prune`, `bindings`.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gatehouse::Role;
use gatehouse_auth::{AuthService, Config, StartError};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc malloc: allocation and free were ~17 % of the
/// server's CPU on the `auth.me` hot path (`bench/PROFILE.md`), much of it
/// glibc's `malloc_consolidate` churn. Binary only, so the library leaves
/// the allocator to the apps that embed it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "tRPC-compatible RPC server with JWT auth"
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
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Manage the signing keys shared through the database (asymmetric
    /// JWT_ALGORITHM only; see docs/keys.md).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Write the TypeScript bindings (`AppRouter`) for the auth procedures.
    Bindings {
        /// Output folder; default `bindings/` at the workspace root.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Create a user. The password is read from standard input when piped,
    /// or asked for without echo; never from a flag.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "VIEWER")]
        role: Role,
        #[arg(long, default_value = "Admin")]
        first_name: String,
        #[arg(long, default_value = "User")]
        last_name: String,
        /// Optional username (3 to 32 characters of a-z 0-9 . _ -).
        #[arg(long)]
        username: Option<String>,
    },
    /// Report stored emails that are not in normalised form (NFKC, lower
    /// case, ASCII domain), cannot be normalised, or collide once
    /// normalised; exits non-zero while any is left.
    CheckEmails {
        /// Rewrite the rows whose normalised form no other row has.
        #[arg(long)]
        fix: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Add a new key of JWT_ALGORITHM that signs from now on (every instance
    /// picks it up within GATEHOUSE_KEYS_RELOAD seconds); the older keys keep
    /// verifying until the longest token lifetime or refresh window is over.
    Rotate,
    /// Show every key: kid, algorithm, created, state.
    List,
    /// Delete the keys whose verifying window is over (the server does it
    /// too, in its housekeeping).
    Prune,
}

/// The database and the sealing key of the key set, for `gatehouse keys`.
async fn key_store(
    config: &Config,
) -> Result<(sea_orm::DatabaseConnection, gatehouse_auth::outbox::MailKey), String> {
    if config.tokens.jwt_private_key_file.is_some() || config.tokens.jwt_keys_dir.is_some() {
        return Err("the keys come from JWT_PRIVATE_KEY_FILE / JWT_KEYS_DIR: \
                    rotate by adding a key file and restarting"
            .to_owned());
    }
    let secret = config.load_secret().map_err(|e| e.to_string())?;
    let sealing = config
        .tokens
        .key_encryption_secret(&secret)
        .map_err(|e| e.to_string())?;
    let db = gatehouse_auth::open_database(config)
        .await
        .map_err(|e| e.to_string())?;
    Ok((db, gatehouse_auth::outbox::MailKey::signing_keys(&sealing)))
}

async fn keys_command(config: &Config, command: KeysCommand) -> Result<(), String> {
    use gatehouse_auth::keys::store;
    let now = gatehouse_auth::db::now_ms();
    match command {
        KeysCommand::Rotate => {
            let alg = config.tokens.jwt_algorithm;
            if !alg.is_asymmetric() {
                return Err("JWT_ALGORITHM is HS256, which has no key set: \
                            set JWT_ALGORITHM to EdDSA, ES256 or RS256 \
                            (HS256 rotates only by changing JWT_SECRET, which signs everyone out)"
                    .to_owned());
            }
            let (db, seal) = key_store(config).await?;
            let pair = store::rotate(&db, &seal, alg, config.tokens.key_window_ms(), now)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(target: "audit", event = "keys.rotated", kid = pair.kid.as_str(), alg = alg.as_str());
            println!("new {alg} signing key {}", pair.kid);
        }
        KeysCommand::List => {
            let (db, _) = key_store(config).await?;
            let rows = store::list(&db).await.map_err(|e| e.to_string())?;
            println!("{:<45} {:<6} {:<25} STATE", "KID", "ALG", "CREATED");
            // The newest live key of JWT_ALGORITHM signs; another live one
            // (two instances rotated at once, or another algorithm) verifies.
            let signing = rows
                .iter()
                .find(|r| r.retired_at.is_none() && r.alg == config.tokens.jwt_algorithm.as_str())
                .map(|r| r.kid.clone());
            for row in rows {
                let state = match (row.retired_at, row.not_after) {
                    (None, _) if signing.as_ref() == Some(&row.kid) => "active".to_owned(),
                    (None, _) => "verifying".to_owned(),
                    (Some(_), Some(end)) if end <= now => "expired (to prune)".to_owned(),
                    (Some(_), end) => format!(
                        "verifying until {}",
                        end.map_or_else(|| "-".to_owned(), gatehouse_auth::db::rfc3339)
                    ),
                };
                println!(
                    "{:<45} {:<6} {:<25} {state}",
                    row.kid,
                    row.alg,
                    gatehouse_auth::db::rfc3339(row.created_at)
                );
            }
        }
        KeysCommand::Prune => {
            let (db, _) = key_store(config).await?;
            let pruned = store::prune(&db, now).await.map_err(|e| e.to_string())?;
            println!("pruned {pruned} key(s)");
        }
    }
    Ok(())
}

fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn read_password() -> std::io::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Repeat password: ")?;
        if first != second {
            return Err(std::io::Error::other("the passwords do not match"));
        }
        Ok(first)
    } else {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\n', '\r']).to_owned())
    }
}

async fn users_create(
    config: &Config,
    email: &str,
    role: Role,
    first_name: &str,
    last_name: &str,
    username: Option<&str>,
) -> Result<(), String> {
    let password = read_password().map_err(|e| format!("could not read the password: {e}"))?;
    let db = gatehouse_auth::open_database(config)
        .await
        .map_err(|e| e.to_string())?;
    let hasher = gatehouse_auth::password::PasswordHasher::new(config.bcrypt_cost)
        .map_err(|e| format!("BCRYPT_COST: {e}"))?;
    let new = gatehouse_auth::NewUser {
        email,
        password: &password,
        first_name,
        last_name,
        role,
        username,
    };
    let user = gatehouse_auth::create_user(&db, &hasher, new)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(target: "audit", event = "user.created_cli", user_id = user.id.as_str(), role = role.as_str());
    println!("created {} user {} ({})", role, user.email, user.id);
    Ok(())
}

async fn users_check_emails(config: &Config, fix: bool) -> Result<(), String> {
    let db = gatehouse_auth::open_database(config)
        .await
        .map_err(|e| e.to_string())?;
    let findings = gatehouse_auth::email_check::check_emails(&db, fix)
        .await
        .map_err(|e| format!("database error: {e}"))?;
    for finding in &findings {
        println!("{finding}");
    }
    let left = findings.iter().filter(|f| f.unresolved()).count();
    if left > 0 {
        return Err(format!("{left} stored email(s) need attention"));
    }
    println!("every stored email is in normalised form");
    Ok(())
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    init_tracing();
    // Never a flag: flags are visible to every user of the machine.
    cli.config.admin_password = std::env::var("GATEHOUSE_ADMIN_PASSWORD").ok();
    cli.config = cli.config.normalized();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gatehouse: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), String> = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => gatehouse_auth::run(cli.config, gatehouse_auth::app_router())
                .await
                .map_err(|e: StartError| e.to_string()),
            Command::Migrate => gatehouse_auth::open_database(&cli.config)
                .await
                .map(|_| println!("migrations applied"))
                .map_err(|e| e.to_string()),
            Command::Users {
                command:
                    UsersCommand::Create {
                        email,
                        role,
                        first_name,
                        last_name,
                        username,
                    },
            } => {
                users_create(
                    &cli.config,
                    &email,
                    role,
                    &first_name,
                    &last_name,
                    username.as_deref(),
                )
                .await
            }
            Command::Users {
                command: UsersCommand::CheckEmails { fix },
            } => users_check_emails(&cli.config, fix).await,
            Command::Keys { command } => keys_command(&cli.config, command).await,
            Command::Bindings { out } => {
                let out = out.unwrap_or_else(|| {
                    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../bindings"))
                });
                gatehouse_auth::app_router::<AuthService>()
                    .build()
                    .map_err(|e| e.to_string())
                    .and_then(|registry| {
                        gatehouse::typescript::write_bindings(&registry, &out)
                            .map_err(|e| e.to_string())
                    })
                    .map(|()| println!("bindings written to {}", out.display()))
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            ExitCode::FAILURE
        }
    }
}
