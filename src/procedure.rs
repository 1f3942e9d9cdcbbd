//! One Rust type per procedure: its path, kind, guard, input, output and
//! handler, all checked by the compiler and walked by the TypeScript emitter.

use std::future::Future;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, RpcError};
use crate::role::Role;
use crate::service::{RequestMeta, Service};

/// Whether a procedure is read (`query`, GET), write (`mutation`, POST) or
/// a live stream of events (`subscription`, GET answered with SSE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Query,
    Mutation,
    Subscription,
}

impl Kind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Query => "query",
            Kind::Mutation => "mutation",
            Kind::Subscription => "subscription",
        }
    }
}

/// Who may call a procedure. Checked before the input is decoded, so an
/// anonymous caller learns nothing about the input schema (401, not 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Anyone; the service is not asked who is calling.
    Public,
    /// Any authenticated caller, whatever its role.
    Authenticated,
    /// An authenticated caller whose role is at least this one.
    Role(Role),
}

/// A typed procedure. Implement it on a unit struct and register the type
/// with [`crate::Router::procedure`].
pub trait Procedure<S: Service>: Send + Sync + 'static {
    /// Path inside the router it is registered on, e.g. `"me"`; nesting the
    /// router under `"auth"` makes it `auth.me`. May itself be dotted.
    const PATH: &'static str;
    const KIND: Kind;
    const GUARD: Guard;

    /// Decoded from the superjson envelope. Use [`NoInput`] for none.
    type Input: DeserializeOwned + ts_rs::TS + JsonSchema + Send + 'static;
    /// Serialised into the superjson envelope.
    type Output: Serialize + ts_rs::TS + JsonSchema + Send + 'static;
    /// What the handler fails with: usually the app's domain error enum, so
    /// handlers use `?` on it; the framework turns it into an [`RpcError`]
    /// (code, message, and a cause that is logged, never sent).
    type Error: Into<RpcError> + Send + 'static;
    /// A plain-JSON route serving the same procedure (see [`Rest`]); none
    /// by default.
    const REST: Option<Rest> = None;
    /// The error codes the handler itself may answer with (e.g. `CONFLICT`
    /// for a taken name), so the OpenAPI document lists every status an
    /// operation can give. Those the framework produces (bad input, the
    /// guard, timeouts, an unavailable service) are known without it.
    const ERRORS: &'static [ErrorCode] = &[];
    /// Whether a [`Guard::Public`] procedure's handler reads the caller's
    /// bearer token itself (a logout ends the session of the token it is
    /// sent; a refresh accepts an expired token the guard would refuse), so
    /// the OpenAPI document offers the bearer scheme on it. Guarded
    /// procedures always require the token.
    const BEARER: Bearer = Bearer::Unused;

    fn call(
        ctx: Ctx<S>,
        input: Self::Input,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;
}

/// How a public procedure uses a bearer token it reads itself (see
/// [`Procedure::BEARER`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bearer {
    /// Not read.
    Unused,
    /// Used when sent; the call also works without one.
    Optional,
    /// The call fails (401) without one.
    Required,
}

/// A REST route for a procedure: the same guard, input type, handler and
/// output as its tRPC call, but plain JSON in and out (`docs/protocol.md`,
/// "REST routes"). Path parameters (`/users/{id}`) fill the input field of
/// the same name; the input comes from the query string for `GET`, from the
/// JSON body otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rest {
    pub method: RestMethod,
    /// Below the REST prefix, starting with `/`, e.g. `/users/{id}/role`.
    pub path: &'static str,
    /// Whether a success is `201 Created` (a procedure that creates
    /// something) rather than `200 OK`.
    pub created: bool,
}

/// The HTTP methods a [`Rest`] route may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RestMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl RestMethod {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }
}

impl Rest {
    const fn new(method: RestMethod, path: &'static str) -> Self {
        Self {
            method,
            path,
            created: false,
        }
    }

    pub const fn get(path: &'static str) -> Self {
        Self::new(RestMethod::Get, path)
    }

    pub const fn post(path: &'static str) -> Self {
        Self::new(RestMethod::Post, path)
    }

    pub const fn put(path: &'static str) -> Self {
        Self::new(RestMethod::Put, path)
    }

    pub const fn patch(path: &'static str) -> Self {
        Self::new(RestMethod::Patch, path)
    }

    pub const fn delete(path: &'static str) -> Self {
        Self::new(RestMethod::Delete, path)
    }

    /// Answers `201 Created` on success.
    pub const fn created(self) -> Self {
        Self {
            created: true,
            ..self
        }
    }
}

/// A typed subscription: a procedure whose handler returns a stream of
/// events, served to `httpSubscriptionLink` as server-sent events (see
/// `docs/protocol.md`, "Subscriptions"). Register it with
/// [`crate::Router::subscription`].
///
/// The stream ends the subscription when it ends (the client gets
/// `return` and does not reconnect) or yields an error (sent as
/// `serialized-error`; the client reconnects only after an
/// INTERNAL_SERVER_ERROR). It is dropped as soon as the client goes away or
/// the server shuts down, so whatever it holds (a channel receiver, a
/// database listener) is released then.
pub trait Subscription<S: Service>: Send + Sync + 'static {
    /// Path inside the router it is registered on, as for [`Procedure`].
    const PATH: &'static str;
    const GUARD: Guard;
    /// Whether every event carries an id (tRPC's `tracked(id, data)`). The
    /// client then receives `{ id, data }` for each event, and on
    /// reconnecting sends the last id back, which the framework puts into
    /// the input's `lastEventId` field so the handler can resume after it.
    const TRACKED: bool;

    /// Decoded from the superjson envelope, with `lastEventId` merged in.
    type Input: DeserializeOwned + ts_rs::TS + JsonSchema + Send + 'static;
    /// The data of one event.
    type Output: Serialize + ts_rs::TS + JsonSchema + Send + 'static;
    type Error: Into<RpcError> + Send + 'static;
    /// The error codes the handler may answer with, as for
    /// [`Procedure::ERRORS`].
    const ERRORS: &'static [ErrorCode] = &[];

    /// Starts the subscription. An `Err` here (e.g. a resource that does
    /// not exist) is sent as the stream's only event.
    fn subscribe(
        ctx: Ctx<S>,
        input: Self::Input,
    ) -> impl Future<Output = Result<EventStream<Self::Output, Self::Error>, Self::Error>> + Send;
}

/// What a subscription handler returns: its events, in order.
pub type EventStream<T, E> = futures::stream::BoxStream<'static, Result<Event<T>, E>>;

/// One event of a subscription: its data and, for a tracked subscription,
/// the id a reconnecting client resumes after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<T> {
    pub id: Option<String>,
    pub data: T,
}

impl<T> Event<T> {
    /// An event without an id, for subscriptions that are not tracked.
    pub fn new(data: T) -> Self {
        Self { id: None, data }
    }

    /// An event with an id (tRPC's `tracked(id, data)`). Ids should grow
    /// with time so that "after this id" means something to the handler.
    pub fn tracked(id: impl Into<String>, data: T) -> Self {
        Self {
            id: Some(id.into()),
            data,
        }
    }
}

/// What a handler gets besides its input.
pub struct Ctx<S: Service> {
    pub service: Arc<S>,
    /// Set whenever the guard is not [`Guard::Public`].
    pub principal: Option<S::Principal>,
    pub request: Arc<RequestMeta>,
    /// The full dotted path of the call being served.
    pub path: Arc<str>,
}

impl<S: Service> Ctx<S> {
    /// The authenticated caller; always `Ok` inside a guarded procedure.
    pub fn principal(&self) -> Result<&S::Principal, RpcError> {
        self.principal.as_ref().ok_or_else(|| {
            RpcError::keyed(
                ErrorCode::Unauthorized,
                "authentication_required",
                "Authentication required",
            )
        })
    }
}

impl<S: Service> Clone for Ctx<S> {
    fn clone(&self) -> Self {
        Self {
            service: self.service.clone(),
            principal: self.principal.clone(),
            request: self.request.clone(),
            path: self.path.clone(),
        }
    }
}

/// The input of a procedure that takes none. Like a tRPC procedure without
/// an input parser it accepts and ignores anything, including `undefined`
/// and undecodable JSON; its TypeScript type is `void`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NoInput;

impl<'de> Deserialize<'de> for NoInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| NoInput)
    }
}

/// Types whose TypeScript form is a fixed keyword or literal, with no file
/// of their own.
macro_rules! ts_literal {
    ($ty:ty, $ts:literal) => {
        impl ts_rs::TS for $ty {
            type WithoutGenerics = Self;
            type OptionInnerType = Self;

            fn name(_: &ts_rs::Config) -> String {
                $ts.to_owned()
            }

            fn inline(_: &ts_rs::Config) -> String {
                $ts.to_owned()
            }
        }
    };
}

ts_literal!(NoInput, "void");

impl JsonSchema for NoInput {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "NoInput".into()
    }

    /// Anything (it is ignored), including nothing.
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "description": "No input: anything sent is ignored." })
    }

    fn inline_schema() -> bool {
        true
    }
}

/// `{ success: true }`-style outputs use this so the TypeScript type is the
/// literal `true`, not `boolean`. It serialises as `true` and only accepts
/// `true`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct True;

impl Serialize for True {
    fn serialize<Ser: serde::Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        s.serialize_bool(true)
    }
}

impl<'de> Deserialize<'de> for True {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if bool::deserialize(d)? {
            Ok(True)
        } else {
            Err(serde::de::Error::custom("expected `true`"))
        }
    }
}

ts_literal!(True, "true");

impl JsonSchema for True {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "True".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "const": true })
    }

    fn inline_schema() -> bool {
        true
    }
}
