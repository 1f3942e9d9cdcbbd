//! JavaScript's `JSON.parse` error messages, rebuilt from serde_json's.
//!
//! `@trpc/server` answers an unparsable input with the JavaScript engine's
//! own message as the 400 text (see `docs/protocol.md#errors`), and clients
//! may show or match it. Gatehouse parses with serde_json, so this module
//! translates serde_json's error into the exact V8 (Node 20+) wording.

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
}
