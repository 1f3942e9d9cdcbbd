//! The framework crate's modules form one-way layers (see
//! `docs/architecture.md#layers`): a module may use only modules of a lower
//! layer, so the graph has no cycles and a reader can understand each layer
//! without the ones above it. This test reads `src/` and fails on any
//! `crate::…` or `super::…` path that points sideways or up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Top-level modules of `src/`, lowest layer first. Modules on one line
/// share a layer and may not use each other.
const LAYERS: &[&[&str]] = &[
    &["error", "role", "shutdown"],
    &["envelope"],
    &["service"],
    &["procedure"],
    &["type_export"],
    &["router"],
    &["metrics"],
    &["http", "connections"],
    &["openapi", "docs"],
    &["typescript"],
    &["server"],
];

/// The sub-modules of `src/http/`, lowest first; `mod` is `http/mod.rs`.
/// `config` (the shared settings) is at the bottom, so every transport can
/// read them without reaching up to `mod`.
const HTTP_LAYERS: &[&[&str]] = &[
    &["config", "json_parse_error"],
    &["wire", "exchange"],
    &["call"],
    &["stream", "sse", "rest"],
    &["adapter"],
    &["mod"],
];

fn rank(layers: &[&[&str]], module: &str) -> Option<usize> {
    layers.iter().position(|layer| layer.contains(&module))
}

/// Every Rust file below `dir`, except unit-test files.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

/// The code a module runs in production: comments and everything after a
/// top-level `#[cfg(test)]` (the unit tests) removed.
fn production_code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("#[cfg(test)]") {
            break;
        }
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The first segment after each `prefix` (`crate::` or `super::`),
/// including each item of a `prefix{a, b::c}` group.
fn targets(code: &str, prefix: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        rest = &rest[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            found.extend(group[..end].split(',').map(|item| ident(item.trim())));
        } else {
            found.push(ident(rest));
        }
    }
    found.retain(|name| !name.is_empty() && name != "self");
    found
}

#[test]
fn framework_modules_only_use_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(
        files.len() > 10,
        "found only {} files in {src:?}",
        files.len()
    );

    let mut violations: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap_or(file);
        let parts: Vec<String> = rel
            .with_extension("")
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let module = parts[0].as_str();
        if module == "lib" {
            continue; // the crate root only declares and re-exports
        }
        let Some(own) = rank(LAYERS, module) else {
            panic!("{rel:?}: module `{module}` is missing from LAYERS; place it in a layer");
        };
        let text = std::fs::read_to_string(file).expect("readable source file");
        let code = production_code(&text);
        for target in targets(&code, "crate::") {
            if target == module {
                continue;
            }
            match rank(LAYERS, &target) {
                Some(r) if r < own => {}
                Some(_) => violations
                    .entry(rel.display().to_string())
                    .or_default()
                    .push(format!("crate::{target} (not below `{module}`)")),
                None => {} // a re-export of lib.rs, e.g. `crate::RpcError`
            }
        }
        if module == "http" && parts.len() == 2 {
            let sub = parts[1].as_str();
            let own_sub = rank(HTTP_LAYERS, sub)
                .unwrap_or_else(|| panic!("{rel:?}: `{sub}` is missing from HTTP_LAYERS"));
            for target in targets(&code, "super::") {
                // `super::X` that is no sub-module is an item of `mod.rs`
                // (e.g. a setting), so it points at `mod`, the top.
                let r = rank(HTTP_LAYERS, &target).or_else(|| rank(HTTP_LAYERS, "mod"));
                if let Some(r) = r
                    && r >= own_sub
                {
                    violations
                        .entry(rel.display().to_string())
                        .or_default()
                        .push(format!("super::{target} (not below `http::{sub}`)"));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "uses that point sideways or up the layers:\n{violations:#?}"
    );
}

#[test]
fn the_checker_sees_grouped_and_nested_paths() {
    let code = production_code(
        "use crate::{router::Registry, error};\nlet x = crate::server::app(); // crate::http\n#[cfg(test)]\nuse crate::typescript;",
    );
    assert_eq!(targets(&code, "crate::"), ["router", "error", "server"]);
}
