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
    last_event_id: Option<&'a str>,
    last_event_id_dashed: Option<&'a str>,
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
                "lastEventId" => &mut q.last_event_id,
                "Last-Event-Id" => &mut q.last_event_id_dashed,
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

    /// A subscription's resume point in the URL: `lastEventId`, else
    /// `Last-Event-Id` (the `Last-Event-ID` header goes first, see
    /// `http::sse`).
    pub fn last_event_id(&self) -> Option<Cow<'a, str>> {
        self.last_event_id
            .or(self.last_event_id_dashed)
            .map(search_param)
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
    fn media_types() {
        assert!(media_type_is(b"application/json", "application/json"));
        assert!(media_type_is(
            b"Application/JSON; charset=utf-8",
            "application/json"
        ));
        assert!(!media_type_is(b"application/jsonx", "application/json"));
    }
}
