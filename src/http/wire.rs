//! Byte-level pieces of the protocol: URL decoding as JavaScript does it,
//! the error shape, and the response bodies, written straight into buffers.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::envelope;
use crate::error::{Issue, RpcError};

pub(crate) const VARY: HeaderValue = HeaderValue::from_static("trpc-accept, accept");
pub(crate) const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// JavaScript's `decodeURIComponent`: fails on a `%` not followed by two hex
/// digits and on escapes that are not UTF-8.
pub(crate) fn decode_uri_component(s: &str) -> Result<Cow<'_, str>, ()> {
    if !s.contains('%') {
        return Ok(Cow::Borrowed(s));
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16));
            let lo = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16));
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                _ => return Err(()),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| ())
}

/// The query parameters tRPC reads, kept raw and decoded on use like
/// `URLSearchParams.get` (first occurrence wins, `+` is a space, bad escapes
/// kept literally), so an input no procedure reads is never decoded.
#[derive(Debug, Default)]
pub(crate) struct Query<'a> {
    batch: Option<&'a str>,
    input: Option<&'a str>,
    connection_params: Option<&'a str>,
}

impl<'a> Query<'a> {
    pub fn parse(query: Option<&'a str>) -> Self {
        let mut q = Query::default();
        let Some(query) = query else {
            return q;
        };
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match &*search_param(key) {
                "batch" => &mut q.batch,
                "input" => &mut q.input,
                "connectionParams" => &mut q.connection_params,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        q
    }

    pub fn batch(&self) -> Option<Cow<'a, str>> {
        self.batch.map(search_param)
    }

    pub fn input(&self) -> Option<Cow<'a, str>> {
        self.input.map(search_param)
    }

    pub fn connection_params(&self) -> Option<Cow<'a, str>> {
        self.connection_params.map(search_param)
    }
}

fn search_param(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let plus = s.replace('+', " ");
    Cow::Owned(
        percent_encoding::percent_decode_str(&plus)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// Whether a `content-type` value's media type (before `;`) is `wanted`,
/// compared case-insensitively as tRPC 11.25 does.
pub(crate) fn media_type_is(value: &[u8], wanted: &str) -> bool {
    let media = value.split(|b| *b == b';').next().unwrap_or_default();
    media.trim_ascii().eq_ignore_ascii_case(wanted.as_bytes())
}

#[derive(Serialize)]
struct Shape<'a> {
    message: &'a str,
    code: i32,
    data: ShapeData<'a>,
}

#[derive(Serialize)]
struct ShapeData<'a> {
    code: &'static str,
    #[serde(rename = "httpStatus")]
    http_status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issues: Option<&'a [Issue]>,
}

/// Writes the (untransformed) error shape: `{"message","code","data":{…}}`.
pub(crate) fn write_shape(out: &mut Vec<u8>, error: &RpcError, path: Option<&str>) {
    let shape = Shape {
        message: &error.message,
        code: error.code.json_rpc(),
        data: ShapeData {
            code: error.code.key(),
            http_status: error.http_status().as_u16(),
            path,
            issues: error.issues.as_deref(),
        },
    };
    // Writing plain strings and numbers into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &shape);
}

/// `{"error":{"json":<shape>}}`: an error item with the superjson envelope.
pub(crate) fn write_error_item(out: &mut Vec<u8>, error: &RpcError, path: Option<&str>) {
    out.extend_from_slice(b"{\"error\":{\"json\":");
    write_shape(out, error, path);
    out.extend_from_slice(b"}}");
}

/// `{"result":{"data":<envelope>}}`.
pub(crate) fn write_result_item(out: &mut Vec<u8>, output: &RawValue, void: bool) {
    out.extend_from_slice(b"{\"result\":{\"data\":");
    envelope::write_output(out, output, void);
    out.extend_from_slice(b"}}");
}

/// A request-level error: one object (no `data.path`) even for a batch,
/// with the status of its code. We send `application/json` (tRPC core
/// leaves it as `text/plain`) because every body under `/trpc` is JSON.
pub(crate) fn request_error(error: &RpcError) -> axum::response::Response {
    let mut out = Vec::with_capacity(160);
    write_error_item(&mut out, error, None);
    let mut response = axum::response::Response::new(axum::body::Body::from(Bytes::from(out)));
    *response.status_mut() = error.http_status();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, JSON);
    headers.insert(header::VARY, VARY);
    for (name, value) in &error.headers {
        headers.append(name.clone(), value.clone());
    }
    response
}

/// The status of a batch: the one distinct item status, or 207 if mixed.
pub(crate) fn batch_status(statuses: impl IntoIterator<Item = StatusCode>) -> StatusCode {
    let mut iter = statuses.into_iter();
    let Some(first) = iter.next() else {
        return StatusCode::OK;
    };
    if iter.all(|s| s == first) {
        first
    } else {
        StatusCode::MULTI_STATUS
    }
}

/// The message Node 20's `JSON.parse` (V8) gives for `text`, rebuilt from
/// serde_json's error: tRPC sends the engine's text as the 400 message, and
/// clients may show it. Positions are UTF-16 offsets, as in JavaScript.
pub fn js_json_parse_message(text: &str, error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let raw = error.to_string();
    let what = raw.split(" at line ").next().unwrap_or_default();
    if error.classify() == Category::Eof {
        return js_eof_message(text, what);
    }
    let byte = line_start(text, error.line()) + error.column().saturating_sub(1);
    let byte = floor_char_boundary(text, byte);
    let position = utf16_len(&text[..byte]);
    let at = |msg: &str| format!("{msg} in JSON at position {position}");
    let token = text[byte..].chars().next();
    let before = text[..byte].trim_end().chars().last();
    if what.starts_with("key must be a string") {
        if before == Some(',') {
            at("Expected double-quoted property name")
        } else {
            at("Expected property name or '}'")
        }
    } else if what.starts_with("expected `:`") {
        at("Expected ':' after property name")
    } else if what.starts_with("expected `,` or `}`") {
        at("Expected ',' or '}' after property value")
    } else if what.starts_with("expected `,` or `]`") {
        at("Expected ',' or ']' after array element")
    } else if what.starts_with("trailing characters") {
        format!("Unexpected non-whitespace character after JSON at position {position}")
    } else if what.starts_with("control character") {
        at("Bad control character in string literal")
    } else if what.starts_with("trailing comma") && token == Some('}') {
        at("Expected double-quoted property name")
    } else if what.starts_with("invalid escape") {
        at("Bad escaped character")
    } else if what.starts_with("invalid unicode code point")
        || what.starts_with("lone leading surrogate")
    {
        at("Bad Unicode escape")
    } else if what.starts_with("invalid number") {
        match text[..byte].chars().last() {
            Some('-') => at("No number after minus sign"),
            Some('.') => at("Unterminated fractional number"),
            Some('e' | 'E' | '+') => at("Exponent part is missing a number"),
            _ => at("Unexpected number"),
        }
    } else {
        unexpected_token(text, byte, token.unwrap_or(' '))
    }
}

/// V8's messages when the text ends too early.
fn js_eof_message(text: &str, what: &str) -> String {
    let end = utf16_len(text);
    let at = |msg: &str| format!("{msg} in JSON at position {end}");
    let trimmed = text.trim_end();
    let last = trimmed.chars().last();
    if what.contains("parsing a string") {
        return at("Unterminated string");
    }
    if what.contains("parsing an object") {
        return match last {
            Some('{') => at("Expected property name or '}'"),
            Some(',') => at("Expected double-quoted property name"),
            Some('"') if object_key_pending(trimmed) => at("Expected ':' after property name"),
            _ => at("Expected ',' or '}' after property value"),
        };
    }
    if what.contains("parsing a list") && !matches!(last, Some('[' | ',')) {
        return at("Expected ',' or ']' after array element");
    }
    match last {
        Some('-') => at("No number after minus sign"),
        Some('.') if trimmed.len() > 1 => at("Unterminated fractional number"),
        Some('e' | 'E' | '+') if trimmed.ends_with(|c: char| c.is_ascii_digit()) => {
            at("Exponent part is missing a number")
        }
        _ => "Unexpected end of JSON input".to_owned(),
    }
}

/// Whether a text ending in `"` inside an object ends with a key (the
/// string follows `{` or `,`) rather than a value (it follows `:`).
fn object_key_pending(text: &str) -> bool {
    let body = &text[..text.len().saturating_sub(1)];
    // Find the opening quote of the final string, skipping escaped quotes.
    let bytes = body.as_bytes();
    let mut i = bytes.len();
    while i > 0 {
        i -= 1;
        if bytes[i] == b'"' {
            let mut backslashes = 0;
            while i > backslashes && bytes[i - 1 - backslashes] == b'\\' {
                backslashes += 1;
            }
            if backslashes % 2 == 0 {
                return matches!(body[..i].trim_end().chars().last(), Some('{' | ','));
            }
        }
    }
    false
}

/// `Unexpected token 'x', "<source or context>" is not valid JSON`, with
/// V8's 10-character context windows for sources longer than 21.
fn unexpected_token(text: &str, byte: usize, token: char) -> String {
    const CONTEXT: usize = 10;
    if matches!(
        text,
        "NaN" | "Infinity" | "-Infinity" | "undefined" | "[object Object]"
    ) {
        return format!("\"{text}\" is not valid JSON");
    }
    let units: Vec<u16> = text.encode_utf16().collect();
    let len = units.len();
    if len <= CONTEXT * 2 + 1 {
        return format!("Unexpected token '{token}', \"{text}\" is not valid JSON");
    }
    let pos = utf16_len(&text[..byte]);
    let slice = |from: usize, to: usize| String::from_utf16_lossy(&units[from..to.min(len)]);
    if pos < CONTEXT {
        format!(
            "Unexpected token '{token}', \"{}\"... is not valid JSON",
            slice(0, pos + CONTEXT)
        )
    } else if pos < len - CONTEXT {
        format!(
            "Unexpected token '{token}', ...\"{}\"... is not valid JSON",
            slice(pos - CONTEXT, pos + CONTEXT)
        )
    } else {
        format!(
            "Unexpected token '{token}', ...\"{}\" is not valid JSON",
            slice(pos - CONTEXT, len)
        )
    }
}

fn line_start(text: &str, line: usize) -> usize {
    text.split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum()
}

fn floor_char_boundary(text: &str, mut byte: usize) -> usize {
    byte = byte.min(text.len());
    while !text.is_char_boundary(byte) {
        byte -= 1;
    }
    byte
}

fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_component() {
        assert_eq!(
            decode_uri_component("post%2EbyId").as_deref(),
            Ok("post.byId")
        );
        assert!(decode_uri_component("a%2").is_err());
        assert!(decode_uri_component("a%zz").is_err());
        assert!(decode_uri_component("%E0%A4").is_err());
        assert_eq!(decode_uri_component("%C3%A9").as_deref(), Ok("é"));
    }

    #[test]
    fn query() {
        let q = Query::parse(Some(
            "foo=bar&batch=1&input=%7B%22a%22%3A%22x+y%22%7D&batch=2",
        ));
        assert_eq!(q.batch().as_deref(), Some("1"));
        assert_eq!(q.input().as_deref(), Some(r#"{"a":"x y"}"#));
        assert!(q.connection_params().is_none());
    }

    /// Inputs and the messages Node 20's `JSON.parse` gave for them.
    #[test]
    fn json_messages_match_node() {
        let cases = [
            (
                "{bad",
                "Expected property name or '}' in JSON at position 1",
            ),
            ("{\"json\":[1,", "Unexpected end of JSON input"),
            (
                "{\"a\":1} x",
                "Unexpected non-whitespace character after JSON at position 8",
            ),
            (
                "{\"a\" 1}",
                "Expected ':' after property name in JSON at position 5",
            ),
            (
                "{\"a\":1,}",
                "Expected double-quoted property name in JSON at position 7",
            ),
            (
                "[1 2]",
                "Expected ',' or ']' after array element in JSON at position 3",
            ),
            ("tru", "Unexpected end of JSON input"),
            ("\"abc", "Unterminated string in JSON at position 4"),
            (
                "{'a':1}",
                "Expected property name or '}' in JSON at position 1",
            ),
            ("[1,]", "Unexpected token ']', \"[1,]\" is not valid JSON"),
            (
                "{\"a\":1 \"b\":2}",
                "Expected ',' or '}' after property value in JSON at position 7",
            ),
            (
                "\"a\u{1}\"",
                "Bad control character in string literal in JSON at position 2",
            ),
            (
                "{\"a\":}",
                "Unexpected token '}', \"{\"a\":}\" is not valid JSON",
            ),
            ("01", "Unexpected number in JSON at position 1"),
            ("-", "No number after minus sign in JSON at position 1"),
            ("1.", "Unterminated fractional number in JSON at position 2"),
            (
                "{\"a\":\"\\x\"}",
                "Bad escaped character in JSON at position 7",
            ),
            ("[", "Unexpected end of JSON input"),
            ("{", "Expected property name or '}' in JSON at position 1"),
            (
                "{\"a\"",
                "Expected ':' after property name in JSON at position 4",
            ),
            ("{\"a\":", "Unexpected end of JSON input"),
            ("abc", "Unexpected token 'a', \"abc\" is not valid JSON"),
            (
                "{\"json\":{\"name\":\"Bob\"}}}",
                "Unexpected non-whitespace character after JSON at position 23",
            ),
            (
                "{\"averyveryveryveryveryverylongkey\": bad, \"another\": 1}",
                "Unexpected token 'b', ...\"longkey\": bad, \"anot\"... is not valid JSON",
            ),
            (
                "{\"a\":1}}",
                "Unexpected non-whitespace character after JSON at position 7",
            ),
            ("NaN", "\"NaN\" is not valid JSON"),
            (
                "[1,2,,]",
                "Unexpected token ',', \"[1,2,,]\" is not valid JSON",
            ),
            ("{,}", "Expected property name or '}' in JSON at position 1"),
        ];
        for (text, expected) in cases {
            let Err(err) = serde_json::from_str::<serde_json::Value>(text) else {
                panic!("{text:?} parsed");
            };
            assert_eq!(js_json_parse_message(text, &err), expected, "{text:?}");
        }
    }

    #[test]
    fn media_types() {
        assert!(media_type_is(b"application/json", "application/json"));
        assert!(media_type_is(
            b"Application/JSON; charset=utf-8",
            "application/json"
        ));
        assert!(!media_type_is(b"application/jsonx", "application/json"));
    }
}
