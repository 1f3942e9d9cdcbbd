//! The `audit` log lines of the real binary, read from its stderr: a
//! client cannot add or forge fields in them (issue 22, finding 4). Every
//! text field is written quoted and escaped, and a request id a client
//! sends with log syntax in it is replaced before it reaches any line.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Client, PASSWORD, login, register};
use tokio::io::{AsyncBufReadExt, BufReader};

/// A request id a client might send to forge audit fields.
const FORGING_ID: &str = r#"x1 event="login.success" user_id="forged""#;

/// The binary with `info` logs, its stderr collected line by line.
struct Logged {
    _child: tokio::process::Child,
    client: Client,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Logged {
    async fn start(dir: &std::path::Path) -> Logged {
        let mut cmd = common::binary(dir);
        cmd.env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawn gatehouse");
        let stdout = child.stdout.take().expect("stdout");
        let addr = common::listening_addr(stdout).await;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stderr = child.stderr.take().expect("stderr");
        tokio::spawn(async move {
            let mut stderr = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = stderr.next_line().await {
                sink.lock().expect("lines").push(line);
            }
        });
        Logged {
            _child: child,
            client: Client::new(addr),
            lines,
        }
    }

    /// The audit line of `event`, once it has been written.
    async fn audit(&self, event: &str) -> String {
        let wanted = format!(r#"audit: event="{event}""#);
        for _ in 0..200 {
            let found = self
                .lines
                .lock()
                .expect("lines")
                .iter()
                .find(|l| l.contains(&wanted))
                .cloned();
            if let Some(line) = found {
                return line;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no {event} audit line in:\n{}",
            self.lines.lock().expect("lines").join("\n")
        );
    }
}

/// A field's value as the text formatter wrote it.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    /// `"…"`: a string, unescaped here.
    Quoted(String),
    /// Anything else (numbers, booleans).
    Bare(String),
}

/// One audit line taken apart: the request span's fields and the event's.
#[derive(Debug)]
struct AuditLine {
    span: Vec<(String, Value)>,
    fields: Vec<(String, Value)>,
}

impl AuditLine {
    /// `<time> <LEVEL> request{<fields>}: audit: <fields>`, as
    /// tracing-subscriber's default format writes it.
    fn parse(line: &str) -> AuditLine {
        let start = line
            .find(" request{")
            .unwrap_or_else(|| panic!("no request span: {line}"));
        let (span, rest) = parse_fields(&line[start + " request{".len()..], Some('}'));
        let rest = rest
            .strip_prefix("}: audit: ")
            .unwrap_or_else(|| panic!("not `}}: audit: ` after the span: {rest:?} in {line}"));
        let (fields, rest) = parse_fields(rest, None);
        assert!(rest.is_empty(), "unparsed {rest:?} in {line}");
        AuditLine { span, fields }
    }

    fn keys(fields: &[(String, Value)]) -> Vec<&str> {
        fields.iter().map(|(k, _)| k.as_str()).collect()
    }

    fn get(&self, key: &str) -> &Value {
        &self
            .fields
            .iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("no {key} in {self:?}"))
            .1
    }
}

/// `key=value` pairs separated by one space, up to `stop` (not consumed)
/// or the end: a value is a Rust-escaped string in quotes, or a bare word.
fn parse_fields(mut s: &str, stop: Option<char>) -> (Vec<(String, Value)>, &str) {
    let mut fields = Vec::new();
    loop {
        if s.is_empty() || stop.is_some_and(|c| s.starts_with(c)) {
            return (fields, s);
        }
        if !fields.is_empty() {
            s = s
                .strip_prefix(' ')
                .unwrap_or_else(|| panic!("fields not separated by a space at {s:?}"));
        }
        let eq = s.find('=').unwrap_or_else(|| panic!("no `=` in {s:?}"));
        let key = &s[..eq];
        assert!(
            !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "not a field name: {key:?}"
        );
        s = &s[eq + 1..];
        let value = if let Some(quoted) = s.strip_prefix('"') {
            let (text, rest) = unquote(quoted);
            s = rest;
            Value::Quoted(text)
        } else {
            let end = s
                .find(|c: char| c == ' ' || Some(c) == stop)
                .unwrap_or(s.len());
            let word = s[..end].to_owned();
            s = &s[end..];
            Value::Bare(word)
        };
        fields.push((key.to_owned(), value));
    }
}

/// The string of a `"…"` written by `{:?}` (after its opening quote), and
/// what follows its closing quote.
fn unquote(s: &str) -> (String, &str) {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (out, &s[i + 1..]),
            '\\' => match chars.next().map(|(_, e)| e) {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('0') => out.push('\0'),
                Some(e @ ('\\' | '"' | '\'')) => out.push(e),
                Some('u') => {
                    let rest: String = chars
                        .by_ref()
                        .map(|(_, c)| c)
                        .take_while(|c| *c != '}')
                        .collect();
                    let hex = rest.trim_start_matches('{');
                    let code = u32::from_str_radix(hex, 16).expect("\\u{…}");
                    out.push(char::from_u32(code).expect("a char"));
                }
                other => panic!("unknown escape {other:?} in {s:?}"),
            },
            c => out.push(c),
        }
    }
    panic!("unterminated string: {s:?}");
}

fn quoted(value: &Value) -> &str {
    match value {
        Value::Quoted(text) => text,
        Value::Bare(word) => panic!("a text field written unquoted: {word:?}"),
    }
}

/// A login success and a login failure, each sent with a request id made
/// to forge fields, give audit lines with exactly their own fields, every
/// text field quoted, and the id the server chose (the one echoed in
/// `x-request-id`) instead of the client's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_lines_have_exactly_their_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Logged::start(dir.path()).await;
    let (_, user_id) = register(&server.client, "audit@example.com").await;
    let forger = server
        .client
        .clone()
        .with_header("x-request-id", FORGING_ID);
    let ok = login(&forger, "audit@example.com", PASSWORD).await;
    assert_eq!(ok.status, 200);
    let bad = login(&forger, "audit@example.com", "wrong password!").await;
    assert_eq!(bad.status, 401);

    for (event, response, keys) in [
        (
            "login.success",
            &ok,
            ["event", "user_id", "session_id", "ip", "request_id"],
        ),
        (
            "login.failure",
            &bad,
            ["event", "user_id", "failures", "ip", "request_id"],
        ),
    ] {
        let raw = server.audit(event).await;
        let line = AuditLine::parse(&raw);
        assert_eq!(AuditLine::keys(&line.fields), keys, "{raw}");
        assert_eq!(
            AuditLine::keys(&line.span),
            ["request_id", "method", "uri"],
            "{raw}"
        );
        for (key, value) in line.span.iter().chain(&line.fields) {
            if key != "failures" {
                quoted(value);
            }
        }
        assert_eq!(quoted(line.get("event")), event);
        assert_eq!(quoted(line.get("user_id")), user_id);
        let used = response.header("x-request-id").expect("x-request-id");
        assert_ne!(used, FORGING_ID, "the client's id was refused");
        assert!(uuid::Uuid::parse_str(used).is_ok(), "{used:?}");
        assert_eq!(quoted(line.get("request_id")), used, "{raw}");
        assert_eq!(line.span[0].1, Value::Quoted(used.to_owned()), "{raw}");
    }
    let bad_line = AuditLine::parse(&server.audit("login.failure").await);
    assert_eq!(bad_line.get("failures"), &Value::Bare("1".to_owned()));

    // Hostile text in an email too: whatever the answer, every audit line
    // still parses with only text that is quoted.
    let hostile = login(&forger, r#"x" user_id="forged@example.com"#, PASSWORD).await;
    assert!([400, 401].contains(&hostile.status), "{hostile:?}");
    let _ = server.audit("register").await;
    let lines = server.lines.lock().expect("lines").clone();
    for raw in lines.iter().filter(|l| l.contains(" audit: ")) {
        let line = AuditLine::parse(raw);
        for (key, value) in line.span.iter().chain(&line.fields) {
            if key != "failures" {
                assert_ne!(quoted(value), "forged", "{raw}");
            }
        }
    }
}

/// Every `target: "audit"` line in the service's sources writes its
/// values as they are (text as `&str`, which the formatter quotes, and
/// numbers): a `%` (Display) or `?` (Debug) sigil would write text
/// unquoted, or quoted twice in JSON.
#[test]
fn audit_lines_use_no_format_sigils() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src];
    let mut seen = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read_dir") {
                files.push(entry.expect("entry").path());
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("source");
        for (start, _) in text.match_indices(r#"target: "audit""#) {
            let call = &text[start..];
            let call = &call[..call.find(");").expect("end of the macro call")];
            seen += 1;
            assert!(
                !call.contains(" %") && !call.contains(" ?") && !call.contains("(%"),
                "{}: an audit field with a format sigil: {call}",
                path.display()
            );
        }
    }
    assert!(seen >= 20, "found only {seen} audit lines");
}
