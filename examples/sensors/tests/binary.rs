//! The `gatehouse-sensors` binary reads its settings as the `gatehouse`
//! binary does: a setting exported empty (`DATABASE_URL=`) counts as unset,
//! so the app starts on its default database instead of refusing the URL.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn an_empty_setting_is_unset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse-sensors"))
        .current_dir(dir.path())
        .env_clear()
        .env("DATABASE_URL", "")
        .env("GATEHOUSE_ADDR", "127.0.0.1:0")
        .env("JWT_SECRET", "test-secret-test-secret-test-secret-0123")
        .env("BCRYPT_COST", "4")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gatehouse-sensors");
    let stdout = child.stdout.take().expect("stdout");
    // The first line, or nothing if the process ends (a refused setting).
    let first = BufReader::new(stdout)
        .lines()
        .next()
        .transpose()
        .expect("read stdout");
    let _ = child.kill();
    let output = child.wait_with_output().expect("wait");
    let line = first.unwrap_or_else(|| {
        panic!(
            "no listening line; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(line.starts_with("gatehouse listening on http://"), "{line}");
    assert!(
        dir.path().join("data/gatehouse.db").exists(),
        "the default database"
    );
}
