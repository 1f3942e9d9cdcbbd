//! `httpSubscriptionLink`: one subscription answered as server-sent events,
//! byte for byte as `@trpc/server` 11 writes them (`docs/protocol.md`,
//! "Subscriptions"): `connected` first, then one `data:` event per value
//! (with `id:` when tracked), `ping` while idle, and `return` at the end or
//! `serialized-error` on failure. Errors raised before the first value
//! (wrong method, guard, input, limits) are also sent in the stream with
//! HTTP 200, as tRPC does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use http::{HeaderValue, header};
use serde_json::Value;

use super::call::{Call, CallEnv, log_cause, timeout_error};
use super::config::SubscriptionConfig;
use super::exchange::append_headers;
use super::wire::{self, VARY};
use crate::envelope;
use crate::error::{ErrorCode, RpcError};
use crate::metrics::{SUBSCRIPTIONS_OPEN, record_call};
use crate::router::{RawEvent, RawEvents, RawInput};
use crate::service::{Principal, RequestMeta, Service};
use crate::shutdown::Shutdown;

/// Counts open subscriptions, in all and per caller, so one client cannot
/// hold every task and file the server has.
#[derive(Debug)]
pub(crate) struct SubscriptionGate {
    max_open: usize,
    max_per_caller: usize,
    open: Mutex<(usize, HashMap<String, usize>)>,
}

/// A place in the [`SubscriptionGate`], given back when dropped (the
/// stream ended, or the client went away).
pub(crate) struct Permit {
    gate: Arc<SubscriptionGate>,
    caller: String,
}

impl SubscriptionGate {
    pub fn new(config: &SubscriptionConfig) -> Arc<Self> {
        Arc::new(Self {
            max_open: config.max_open,
            max_per_caller: config.max_per_caller,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// A place for `caller`, or TOO_MANY_REQUESTS when the server or the
    /// caller has as many open as allowed.
    fn admit(self: &Arc<Self>, caller: String) -> Result<Permit, RpcError> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_caller) = &mut *open;
        let mine = per_caller.get(&caller).copied().unwrap_or(0);
        if *total >= self.max_open || mine >= self.max_per_caller {
            return Err(RpcError::keyed(
                ErrorCode::TooManyRequests,
                "too_many_subscriptions",
                "Too many open subscriptions",
            ));
        }
        *total += 1;
        per_caller.insert(caller.clone(), mine + 1);
        metrics::gauge!(SUBSCRIPTIONS_OPEN).increment(1.0);
        Ok(Permit {
            gate: self.clone(),
            caller,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_caller) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(mine) = per_caller.get_mut(&self.caller) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                per_caller.remove(&self.caller);
            }
        }
        metrics::gauge!(SUBSCRIPTIONS_OPEN).decrement(1.0);
    }
}

/// Who counts as one caller for the per-caller limit: the principal's
/// subject, else the client's address.
fn caller_key<P: Principal>(principal: Option<&P>, peer: Option<IpAddr>) -> String {
    match (principal.and_then(Principal::subject), peer) {
        (Some(subject), _) => format!("subject:{subject}"),
        (None, Some(ip)) => format!("ip:{ip}"),
        (None, None) => "anonymous".to_owned(),
    }
}

/// What the request says beside the call itself.
pub(crate) struct SseRequest {
    /// `Last-Event-ID` header, else `lastEventId` / `Last-Event-Id` in the
    /// URL: merged into the input as `lastEventId`.
    pub last_event_id: Option<String>,
    /// Set when served by [`crate::connections`].
    pub shutdown: Option<Shutdown>,
}

/// Answers a (non-batched) call to a subscription procedure, in steps:
/// [`open`] it (a failure becomes the stream's one error), count the call,
/// then stream its events through an [`EventWriter`] under
/// [`stream_headers`].
pub(crate) async fn respond<S: Service>(
    env: CallEnv<S>,
    call: Call<S>,
    request: SseRequest,
    config: &SubscriptionConfig,
    gate: &Arc<SubscriptionGate>,
) -> Response {
    let started = std::time::Instant::now();
    let allow = call.refused.as_ref().map(|r| r.allow);
    let opened = match (&call.entry, call.refused) {
        // The adapter only sends known subscriptions here.
        (None, _) => Err(RpcError::internal_error()),
        (Some(_), Some(refusal)) => Err(refusal.error),
        (Some(entry), None) => open(&env, entry, call.input, &request, gate).await,
    };
    let (events, permit, code, status) = match opened {
        Ok((permit, events)) => (events, Some(permit), "OK", http::StatusCode::OK),
        Err(error) => {
            let (code, status) = (error.code.key(), error.http_status());
            (
                futures::stream::once(async { Err(error) }).boxed(),
                None,
                code,
                status,
            )
        }
    };
    let path_of = call.entry.as_ref().map(|e| &e.path);
    record_call(path_of, code, status, started.elapsed(), None);
    let stream = EventWriter {
        phase: Phase::Connected,
        events,
        ping: config.ping_interval.map(ping_timer),
        shutdown: request
            .shutdown
            .map(|s| -> BoxFuture<'static, ()> { Box::pin(s.wait()) }),
        connected: connected_event(config),
        service: env.scope.service.clone(),
        request: env.scope.request.clone(),
        path: call.path,
        _permit: permit,
    }
    .into_stream();
    let mut response = Response::new(Body::from_stream(stream));
    stream_headers(response.headers_mut(), allow);
    // Added while the subscription was opened (by the authenticator or the
    // handler's start); later additions cannot reach the sent head.
    append_headers(
        response.headers_mut(),
        env.scope.request.response_headers.take(),
    );
    response
}

/// Ticks every `every`, first after one interval; a late tick is not made
/// up in a burst but delays the next ones.
fn ping_timer(every: std::time::Duration) -> tokio::time::Interval {
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    timer
}

/// Opens the subscription under the request deadline: the resume point
/// merged into the input, the caller admitted by the gate once the service
/// has said who it is.
async fn open<S: Service>(
    env: &CallEnv<S>,
    entry: &Arc<crate::router::Entry<S>>,
    input: RawInput,
    request: &SseRequest,
    gate: &Arc<SubscriptionGate>,
) -> Result<(Permit, RawEvents), RpcError> {
    let input = match request.last_event_id.as_deref() {
        Some(id) if !id.is_empty() => with_last_event_id(input, id),
        _ => input,
    };
    let peer = env.scope.request.peer.map(|p| p.ip());
    let admit = |principal: Option<&S::Principal>| gate.admit(caller_key(principal, peer));
    let opening = env.scope.subscribe(entry, input, admit);
    match tokio::time::timeout_at(env.deadline, opening).await {
        Ok(result) => result,
        Err(_) => Err(timeout_error()),
    }
}

/// The head of an event stream: `text/event-stream`, kept out of caches
/// and proxy buffers, and `allow` for a call refused for its method.
fn stream_headers(headers: &mut http::HeaderMap, allow: Option<&'static str>) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    headers.insert(header::VARY, VARY);
    if let Some(allow) = allow {
        headers.insert(header::ALLOW, HeaderValue::from_static(allow));
    }
}

/// tRPC merges the resume point into an object input, or makes one of an
/// absent (or `null`) input; any other input is left as it is.
fn with_last_event_id(input: RawInput, id: &str) -> RawInput {
    let id_only = || {
        let mut map = serde_json::Map::new();
        map.insert("lastEventId".to_owned(), Value::String(id.to_owned()));
        map
    };
    match input {
        RawInput::Absent => RawInput::Envelope(envelope::encode(Value::Object(id_only()))),
        RawInput::Envelope(value) => match envelope::decode(value.clone()) {
            Ok(None | Some(Value::Null)) => {
                RawInput::Envelope(envelope::encode(Value::Object(id_only())))
            }
            Ok(Some(Value::Object(mut map))) => {
                map.insert("lastEventId".to_owned(), Value::String(id.to_owned()));
                RawInput::Envelope(envelope::encode(Value::Object(map)))
            }
            // Not an object, or not a valid envelope: decoding reports it.
            _ => RawInput::Envelope(value),
        },
        // Only tRPC requests reach a subscription.
        other @ (RawInput::Malformed(_) | RawInput::Plain(_) | RawInput::Form(_)) => other,
    }
}

/// `event: connected` with the client options as plain JSON.
fn connected_event(config: &SubscriptionConfig) -> Bytes {
    let options = match config.reconnect_after_inactivity {
        Some(after) => format!("{{\"reconnectAfterInactivityMs\":{}}}", after.as_millis()),
        None => "{}".to_owned(),
    };
    Bytes::from(format!("event: connected\ndata: {options}\n\n\n"))
}

const PING: &[u8] = b"event: ping\ndata: \n\n\n";
const RETURN: &[u8] = b"event: return\ndata: \n\n\n";

/// One value: `data: {"json":…}`, then `id:` for a tracked one.
fn data_event(event: &RawEvent) -> Bytes {
    let id_len = event.id.as_ref().map_or(0, |id| id.len() + 5);
    let mut out = Vec::with_capacity(event.data.get().len() + id_len + 20);
    out.extend_from_slice(b"data: ");
    envelope::write_output(&mut out, &event.data, false);
    out.push(b'\n');
    if let Some(id) = &event.id {
        out.extend_from_slice(b"id: ");
        // An id is one line; a line break would end the field early.
        out.extend(id.bytes().filter(|b| *b != b'\n' && *b != b'\r'));
        out.push(b'\n');
    }
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// `event: serialized-error` with the superjson-serialized error shape.
fn error_event(error: &RpcError, path: &str) -> Bytes {
    let mut out = Vec::with_capacity(224);
    out.extend_from_slice(b"event: serialized-error\ndata: {\"json\":");
    wire::write_shape(&mut out, error, Some(path));
    out.extend_from_slice(b"}\n\n\n");
    Bytes::from(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connected,
    Streaming,
    Done,
}

/// The response body's state. Dropping it (the client went away, or the
/// connection was closed) drops the handler's stream and the permit.
struct EventWriter<S: Service> {
    phase: Phase,
    events: RawEvents,
    ping: Option<tokio::time::Interval>,
    shutdown: Option<BoxFuture<'static, ()>>,
    connected: Bytes,
    service: Arc<S>,
    request: Arc<RequestMeta>,
    path: Arc<str>,
    _permit: Option<Permit>,
}

impl<S: Service> EventWriter<S> {
    fn into_stream(self) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
        futures::stream::unfold(self, |mut writer| async move {
            let chunk = writer.next_chunk().await?;
            Some((Ok(chunk), writer))
        })
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        match self.phase {
            Phase::Done => None,
            Phase::Connected => {
                self.phase = Phase::Streaming;
                Some(self.connected.clone())
            }
            Phase::Streaming => Some(self.streaming().await),
        }
    }

    async fn streaming(&mut self) -> Bytes {
        let shutdown = async {
            match self.shutdown.as_mut() {
                Some(signal) => signal.await,
                None => std::future::pending().await,
            }
        };
        let ping = async {
            match self.ping.as_mut() {
                Some(timer) => timer.tick().await,
                None => std::future::pending().await,
            }
        };
        let next = tokio::select! {
            biased;
            () = shutdown => None,
            event = self.events.next() => Some(event),
            _ = ping => return Bytes::from_static(PING),
        };
        match next {
            // The server is stopping, or the handler ended its stream.
            None | Some(None) => {
                self.phase = Phase::Done;
                Bytes::from_static(RETURN)
            }
            Some(Some(Ok(event))) => {
                if let Some(timer) = self.ping.as_mut() {
                    timer.reset();
                }
                data_event(&event)
            }
            Some(Some(Err(mut error))) => {
                self.phase = Phase::Done;
                log_cause(&error, Some(&self.path), &self.request.request_id);
                self.service.finalize_error(&self.request, &mut error);
                error_event(&error, &self.path)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decoded(input: RawInput) -> Value {
        match input {
            RawInput::Envelope(v) => v,
            RawInput::Absent => json!("absent"),
            RawInput::Malformed(_) => json!("malformed"),
            RawInput::Plain(_) | RawInput::Form(_) => json!("not tRPC"),
        }
    }

    #[test]
    fn the_resume_point_is_merged_like_trpc_does() {
        let merged = |input| decoded(with_last_event_id(input, "7"));
        assert_eq!(
            merged(RawInput::Absent),
            json!({"json": {"lastEventId": "7"}})
        );
        assert_eq!(
            merged(RawInput::Envelope(
                json!({"json": null, "meta": {"values": ["undefined"], "v": 1}})
            )),
            json!({"json": {"lastEventId": "7"}})
        );
        assert_eq!(
            merged(RawInput::Envelope(
                json!({"json": {"room": "a", "lastEventId": "3"}})
            )),
            json!({"json": {"room": "a", "lastEventId": "7"}})
        );
        assert_eq!(
            merged(RawInput::Envelope(json!({"json": 5}))),
            json!({"json": 5})
        );
    }

    #[test]
    fn events_are_written_as_trpc_writes_them() {
        let event = RawEvent {
            id: Some("4\nx".to_owned()),
            data: serde_json::value::to_raw_value(&json!({"i": 1})).expect("json"),
        };
        assert_eq!(
            &data_event(&event)[..],
            b"data: {\"json\":{\"i\":1}}\nid: 4x\n\n\n"
        );
        let error = RpcError::new(ErrorCode::Unauthorized, "gone");
        assert_eq!(
            std::str::from_utf8(&error_event(&error, "a.b")).expect("utf-8"),
            "event: serialized-error\ndata: {\"json\":{\"message\":\"gone\",\"code\":-32001,\"data\":{\"code\":\"UNAUTHORIZED\",\"httpStatus\":401,\"path\":\"a.b\"}}}\n\n\n"
        );
    }

    #[test]
    fn the_gate_counts_per_caller_and_in_all() {
        let gate = SubscriptionGate::new(&SubscriptionConfig {
            max_open: 3,
            max_per_caller: 2,
            ..SubscriptionConfig::default()
        });
        let a1 = gate.admit("a".into()).expect("room");
        let _a2 = gate.admit("a".into()).expect("room");
        assert!(gate.admit("a".into()).is_err(), "third for one caller");
        let _b1 = gate.admit("b".into()).expect("room");
        assert!(gate.admit("c".into()).is_err(), "fourth in all");
        drop(a1);
        assert!(gate.admit("c".into()).is_ok(), "a place was given back");
    }
}
