//! The request and response plumbing every transport of `http/` shares
//! and that is about neither the protocol nor one call: the request's
//! [`RequestMeta`] (with its request id), reading a body under a limit, and
//! appending the headers a request's calls added. It sits low so that the
//! adapter, REST, SSE and the call step use it without using each other.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::BodyExt;

use crate::error::{ErrorCode, RpcError};
use crate::service::RequestMeta;

/// Appends `added` (what a request's calls put into its
/// [`crate::ResponseHeaders`]) to the response's headers, every value kept.
pub(crate) fn append_headers(headers: &mut HeaderMap, added: HeaderMap) {
    let mut name = None;
    for (next, value) in added {
        // `HeaderMap`'s iterator names a header once, before its first value.
        if next.is_some() {
            name = next;
        }
        if let Some(name) = &name {
            headers.append(name.clone(), value);
        }
    }
}

/// The request without its body, for the service and the procedures;
/// takes the headers out of the request.
pub(crate) fn request_meta(
    method: &Method,
    headers: &mut HeaderMap,
    extensions: &http::Extensions,
    connection_params: Vec<(String, String)>,
) -> RequestMeta {
    RequestMeta {
        method: method.clone(),
        request_id: request_id(headers),
        peer: extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0),
        headers: std::mem::take(headers),
        connection_params,
        response_headers: Default::default(),
    }
}

/// The request's `x-request-id` (set by [`crate::server::app`]'s layers,
/// which replace a client's unacceptable one), or a new one when the router
/// is served without them and the client's is missing or unacceptable.
fn request_id(headers: &HeaderMap) -> String {
    match headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
        Some(id) if crate::service::is_acceptable_request_id(id.as_bytes()) => id.to_owned(),
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

/// Reads at most `limit` bytes; more is PAYLOAD_TOO_LARGE for the calls
/// that read their input.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, RpcError> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => {
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(RpcError::from_code(ErrorCode::PayloadTooLarge))
            } else {
                tracing::debug!(%error, "could not read the request body");
                Err(RpcError::keyed(
                    ErrorCode::BadRequest,
                    "body_unreadable",
                    "Could not read the request body",
                ))
            }
        }
    }
}
