//! The staleness check: a committed bindings folder compared with a fresh
//! rendering, so CI notices bindings that lag behind the Rust types.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{BindingsError, BindingsOptions, RenderedFiles, list_files, render_bindings};
use crate::router::Registry;
use crate::service::Service;

/// Compares the folder `dir` with what [`write_bindings_with`] would write.
/// Files other than `.ts`, `package.json`, `README.md` and `openapi.json`
/// are ignored.
pub fn check_bindings<S: Service>(
    registry: &Registry<S>,
    dir: &Path,
    options: &BindingsOptions,
) -> Result<(), BindingsError> {
    let expected = render_bindings(registry, options)?;
    let mut actual = RenderedFiles::new();
    if dir.is_dir() {
        for rel in list_files(dir)? {
            if is_generated_name(&rel) {
                let contents = std::fs::read_to_string(dir.join(&rel))?;
                actual.insert(rel, contents);
            }
        }
    }
    let report = compare_rendered(&expected, &actual, dir, &options.regenerate_command);
    if report.is_fresh() {
        Ok(())
    } else {
        Err(BindingsError::Stale(report))
    }
}

/// Whether the file is one the emitter owns (and so compares and replaces).
fn is_generated_name(rel: &str) -> bool {
    rel.ends_with(".ts") || rel == "package.json" || rel == "README.md" || rel == "openapi.json"
}

/// The differences between a fresh rendering and a folder's files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaleBindings {
    pub dir: PathBuf,
    pub regenerate_command: String,
    /// Files the rendering has and the folder lacks.
    pub missing: Vec<String>,
    /// Files the folder has and the rendering does not (left over).
    pub extra: Vec<String>,
    /// Files whose contents differ, with a short description of the first
    /// differing lines.
    pub changed: Vec<(String, String)>,
}

impl StaleBindings {
    pub fn is_fresh(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.changed.is_empty()
    }
}

impl std::fmt::Display for StaleBindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "the TypeScript bindings in {} are out of date with the Rust types:",
            self.dir.display()
        )?;
        for m in &self.missing {
            writeln!(f, "  missing file: {m}")?;
        }
        for e in &self.extra {
            writeln!(f, "  stale file (no longer generated): {e}")?;
        }
        for (file, diff) in &self.changed {
            writeln!(f, "  changed file: {file}")?;
            for line in diff.lines() {
                writeln!(f, "    {line}")?;
            }
        }
        write!(f, "run `{}` and commit the result", self.regenerate_command)
    }
}

/// Compares two renderings file by file (names and contents).
pub fn compare_rendered(
    expected: &RenderedFiles,
    actual: &RenderedFiles,
    dir: &Path,
    regenerate_command: &str,
) -> StaleBindings {
    let mut report = StaleBindings {
        dir: dir.to_path_buf(),
        regenerate_command: regenerate_command.to_owned(),
        ..StaleBindings::default()
    };
    for (name, want) in expected {
        match actual.get(name) {
            None => report.missing.push(name.clone()),
            Some(have) if have != want => {
                report.changed.push((name.clone(), line_diff(want, have)))
            }
            Some(_) => {}
        }
    }
    for name in actual.keys() {
        if !expected.contains_key(name) {
            report.extra.push(name.clone());
        }
    }
    report
}

/// A compact description of how `have` (committed) differs from `want`
/// (generated): up to a few differing lines, `-` committed, `+` generated.
fn line_diff(want: &str, have: &str) -> String {
    const MAX_SHOWN: usize = 6;
    let want_lines: Vec<&str> = want.lines().collect();
    let have_lines: Vec<&str> = have.lines().collect();
    let mut out = String::new();
    let mut shown = 0;
    let mut differing = 0;
    for i in 0..want_lines.len().max(have_lines.len()) {
        let (w, h) = (want_lines.get(i), have_lines.get(i));
        if w == h {
            continue;
        }
        differing += 1;
        if shown < MAX_SHOWN {
            shown += 1;
            let _ = writeln!(out, "line {}:", i + 1);
            if let Some(h) = h {
                let _ = writeln!(out, "- {h}");
            }
            if let Some(w) = w {
                let _ = writeln!(out, "+ {w}");
            }
        }
    }
    if differing > shown {
        let _ = writeln!(out, "… and {} more differing lines", differing - shown);
    }
    out
}
