//! The TypeScript bindings emitter: turns a [`Registry`] into a folder of
//! `.ts` files a frontend imports `AppRouter` from.
//!
//! Why it works this way:
//! - The `AppRouter` type is built only from `@trpc/server`'s public types
//!   (`TRPCBuiltRouter`, `TRPCQueryProcedure`, …), so `createTRPCClient<AppRouter>`
//!   infers inputs, outputs and errors exactly as for a router written with
//!   `initTRPC`, without any runtime code from the server.
//! - Input and output types come from `ts-rs`. ts-rs remembers, process-wide,
//!   which files it already wrote and silently skips them the second time,
//!   so exporting straight into `out_dir` twice in one process (tests, a
//!   staleness check after a regeneration) would leave files missing. We
//!   therefore export into a fresh scratch folder every time and copy from
//!   there; rendering is a pure function of the registry.
//! - The whole folder is regenerated from scratch ([`write_bindings`] removes
//!   stale `.ts` files), and [`check_bindings`] compares a committed folder
//!   with a fresh rendering so CI notices bindings that lag behind the Rust
//!   types.

mod collect;
mod render;
mod stale;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;

use crate::router::Registry;
use crate::service::Service;

pub use crate::type_export::export_type;
pub use render::render_bindings;
pub use stale::{StaleBindings, check_bindings, compare_rendered};

/// The command that regenerates the committed `bindings/` of this repository.
pub const DEFAULT_REGENERATE_COMMAND: &str = "cargo run -p gatehouse-auth -- bindings";

/// Why bindings could not be written or are out of date.
#[derive(Debug, thiserror::Error)]
pub enum BindingsError {
    #[error("could not write bindings: {0}")]
    Io(#[from] std::io::Error),
    #[error("could not export a type: {0}")]
    Export(#[from] ts_rs::ExportError),
    #[error("{0}")]
    Stale(StaleBindings),
    #[error("a Rust type exports to {0}, a file the emitter writes itself; rename the type")]
    ReservedName(String),
    #[error(
        "two different Rust types are both called {file} in TypeScript (used by {first} and {second}); \
         rename one, e.g. with #[ts(rename = \"…\")]"
    )]
    NameCollision {
        file: String,
        first: String,
        second: String,
    },
}

/// How the generated package is named and how it is regenerated.
#[derive(Debug, Clone)]
pub struct BindingsOptions {
    /// `name` in the generated `package.json`, what a frontend depends on.
    pub package_name: String,
    /// Written into every file's header and into the staleness report, so
    /// whoever sees a diff knows the one command that fixes it.
    pub regenerate_command: String,
    /// Also write `openapi.json`, the OpenAPI document of the same router.
    pub openapi: Option<crate::openapi::OpenApiOptions>,
}

impl Default for BindingsOptions {
    fn default() -> Self {
        Self {
            package_name: "@gatehouse/bindings".to_owned(),
            regenerate_command: DEFAULT_REGENERATE_COMMAND.to_owned(),
            openapi: Some(crate::openapi::OpenApiOptions::default()),
        }
    }
}

/// A rendered bindings folder: relative path (always `/`-separated) → contents.
pub type RenderedFiles = BTreeMap<String, String>;

/// Regenerates every file of `out_dir` from the registry, with the default
/// package name and regeneration command.
pub fn write_bindings<S: Service>(
    registry: &Registry<S>,
    out_dir: &Path,
) -> Result<(), BindingsError> {
    write_bindings_with(registry, out_dir, &BindingsOptions::default())
}

/// Regenerates every file of `out_dir`: removes every `.ts` file found there
/// (outside `node_modules`), then writes the fresh rendering (with
/// `openapi.json` when asked for).
pub fn write_bindings_with<S: Service>(
    registry: &Registry<S>,
    out_dir: &Path,
    options: &BindingsOptions,
) -> Result<(), BindingsError> {
    let files = render_bindings(registry, options)?;
    std::fs::create_dir_all(out_dir)?;
    for stale in list_files(out_dir)? {
        if stale.ends_with(".ts") {
            std::fs::remove_file(out_dir.join(&stale))?;
        }
    }
    remove_empty_dirs(out_dir)?;
    for (rel, contents) in &files {
        let path = out_dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, contents)?;
    }
    Ok(())
}

/// Every file below `dir` (skipping `node_modules`), as sorted `/`-separated
/// relative paths.
pub(crate) fn list_files(dir: &Path) -> std::io::Result<Vec<String>> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                if entry.file_name() != "node_modules" {
                    walk(base, &path, out)?;
                }
            } else if file_type.is_file()
                && let Ok(rel) = path.strip_prefix(base)
            {
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// Removes sub-folders left empty after deleting stale files.
fn remove_empty_dirs(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() && entry.file_name() != "node_modules" {
            let path = entry.path();
            remove_empty_dirs(&path)?;
            if std::fs::read_dir(&path)?.next().is_none() {
                std::fs::remove_dir(&path)?;
            }
        }
    }
    Ok(())
}
