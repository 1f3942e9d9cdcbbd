//! The TypeScript `AppRouter` emitter (stub: filled in by the bindings work).

use std::path::Path;

use crate::router::Registry;
use crate::service::Service;

/// Why bindings could not be written.
#[derive(Debug, thiserror::Error)]
pub enum BindingsError {
    #[error("could not write bindings: {0}")]
    Io(#[from] std::io::Error),
    #[error("could not export a type: {0}")]
    Export(#[from] ts_rs::ExportError),
}

/// Regenerates every file of `out_dir` from the registry.
pub fn write_bindings<S: Service>(
    _registry: &Registry<S>,
    _out_dir: &Path,
) -> Result<(), BindingsError> {
    Ok(())
}
