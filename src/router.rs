//! The typed procedure registry and the dispatcher that runs one call:
//! guard, then input decoding, then the handler, then output encoding.
//!
//! Everything protocol-specific (URLs, batching, status codes) lives in
//! [`crate::http`]; this module is what every transport shares.

use std::any::TypeId;
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::value::RawValue;
use tokio::sync::OnceCell;

use crate::envelope;
use crate::error::{ErrorCode, Issue, RpcError};
use crate::procedure::{
    Bearer, Ctx, Event, Guard, Kind, NoInput, Procedure, Rest, RestMethod, Subscription,
};
use crate::service::{Principal, RequestMeta, Service};

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A call's input as the transport found it, before the superjson envelope
/// is unwrapped. Decoding is lazy, as in tRPC: a procedure without input
/// never fails on a malformed one.
#[derive(Debug)]
pub enum RawInput {
    /// No input was sent (no `input=`, an empty body, a missing batch key).
    Absent,
    /// A parsed JSON value, still in its `{"json": …, "meta": …}` envelope.
    Envelope(serde_json::Value),
    /// The input was not JSON; raised only if the procedure reads its input.
    Malformed(RpcError),
    /// Plain JSON without the envelope (a REST body with its path
    /// parameters merged in).
    Plain(serde_json::Value),
    /// A URL-encoded query string (a REST `GET`), decoded like a form.
    Form(String),
}

/// TypeScript facts about one procedure, for the `AppRouter` emitter.
#[derive(Clone, Copy)]
pub struct TsSignature {
    /// The TypeScript type of the input (`void` for [`NoInput`]).
    pub input: fn(&ts_rs::Config) -> String,
    /// The TypeScript type of the output.
    pub output: fn(&ts_rs::Config) -> String,
    /// Writes the input and output declarations and all they depend on.
    pub export: fn(&ts_rs::Config) -> Result<(), ts_rs::ExportError>,
    /// Whether the input may be left out: the input type decodes from an
    /// absent input (as `Option<…>` or `#[serde(from = "Option<…>")]` do),
    /// so the client may call `.query()` with no argument.
    pub optional_input: bool,
}

impl std::fmt::Debug for TsSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsSignature").finish_non_exhaustive()
    }
}

/// JSON Schema facts about one procedure, for the OpenAPI document.
#[derive(Clone, Copy)]
pub struct SchemaSignature {
    /// The input's schema (usually a `$ref` into the generator's
    /// definitions).
    pub input: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
    /// The output's schema (one event's data for a subscription).
    pub output: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
    /// The procedure type's own schema, whose `description` is its doc
    /// comment.
    pub procedure: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
}

impl std::fmt::Debug for SchemaSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaSignature").finish_non_exhaustive()
    }
}

impl SchemaSignature {
    fn of<I: schemars::JsonSchema, O: schemars::JsonSchema, P: schemars::JsonSchema>() -> Self {
        Self {
            input: |generator| generator.subschema_for::<I>(),
            output: |generator| generator.subschema_for::<O>(),
            procedure: |generator| P::json_schema(generator),
        }
    }
}

/// One registered procedure, type-erased.
pub struct Entry<S: Service> {
    pub path: Arc<str>,
    pub kind: Kind,
    pub guard: Guard,
    pub ts: TsSignature,
    /// The procedure's REST route, if it has one.
    pub rest: Option<Rest>,
    /// The error codes its handler declares ([`crate::Procedure::ERRORS`]).
    pub errors: &'static [ErrorCode],
    /// How a public procedure uses a bearer token ([`crate::Procedure::BEARER`]).
    pub bearer: Bearer,
    pub schema: SchemaSignature,
    handler: Handler<S>,
    /// Whether the input type is [`NoInput`]: such a procedure never reads
    /// its input, so the adapter need not parse it.
    reads_input: bool,
    /// Whether the output is `()`/[`NoInput`], sent as superjson `undefined`.
    void_output: bool,
}

impl<S: Service> Entry<S> {
    /// Whether this procedure decodes its input (false for [`NoInput`]).
    pub fn reads_input(&self) -> bool {
        self.reads_input
    }

    /// Whether the output is TypeScript `void` (`()` or [`NoInput`]); the
    /// adapter then answers with superjson's `undefined` instead of `null`.
    pub fn returns_void(&self) -> bool {
        self.void_output
    }
}

type ErasedCall<S> = fn(Ctx<S>, RawInput) -> BoxFuture<'static, Result<Box<RawValue>, RpcError>>;
type ErasedSubscribe<S> = fn(Ctx<S>, RawInput) -> BoxFuture<'static, Result<RawEvents, RpcError>>;

/// A procedure's handler with its types erased: one answer, or a stream.
enum Handler<S: Service> {
    Call(ErasedCall<S>),
    Subscribe {
        subscribe: ErasedSubscribe<S>,
        tracked: bool,
    },
}

/// One event of a subscription, its data already plain JSON.
#[derive(Debug)]
pub struct RawEvent {
    pub id: Option<String>,
    pub data: Box<RawValue>,
}

/// A subscription's events, types erased; an `Err` ends the stream.
pub type RawEvents = futures::stream::BoxStream<'static, Result<RawEvent, RpcError>>;

impl<S: Service> std::fmt::Debug for Entry<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

fn erased_subscribe<S: Service, P: Subscription<S>>(
    ctx: Ctx<S>,
    raw: RawInput,
) -> BoxFuture<'static, Result<RawEvents, RpcError>> {
    use futures::StreamExt;
    Box::pin(async move {
        let input = decode_input::<P::Input>(raw)?;
        let events = P::subscribe(ctx, input).await.map_err(Into::into)?;
        let events = events.map(|event| {
            let Event { id, data } = event.map_err(Into::into)?;
            let data = serde_json::value::to_raw_value(&data).map_err(RpcError::internal)?;
            Ok(RawEvent { id, data })
        });
        Ok(events.boxed())
    })
}

fn erased_call<S: Service, P: Procedure<S>>(
    ctx: Ctx<S>,
    raw: RawInput,
) -> BoxFuture<'static, Result<Box<RawValue>, RpcError>> {
    Box::pin(async move {
        let input = decode_input::<P::Input>(raw)?;
        let output = P::call(ctx, input).await.map_err(Into::into)?;
        serde_json::value::to_raw_value(&output).map_err(RpcError::internal)
    })
}

/// Unwraps the envelope and deserialises the input type, turning serde's
/// complaint into a BAD_REQUEST with one issue naming the failing field.
fn decode_input<I: serde::de::DeserializeOwned + 'static>(raw: RawInput) -> Result<I, RpcError> {
    if TypeId::of::<I>() == TypeId::of::<NoInput>() {
        return serde_json::from_value(serde_json::Value::Null).map_err(RpcError::internal);
    }
    let value = match raw {
        RawInput::Absent => None,
        RawInput::Envelope(v) => envelope::decode(v)?,
        RawInput::Plain(v) => Some(v),
        RawInput::Malformed(e) => return Err(e),
        RawInput::Form(query) => {
            let form =
                serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
            return serde_path_to_error::deserialize(FormInput(form)).map_err(input_error);
        }
    };
    let value = value.unwrap_or(serde_json::Value::Null);
    serde_path_to_error::deserialize(value).map_err(input_error)
}

/// A query string read as an input: a map whose values parse as the
/// fields' types (`page=2` is a number), which also says "present" to an
/// input type that decodes from an optional object (as those that may be
/// left out do).
struct FormInput<'a>(serde_urlencoded::Deserializer<'a>);

impl<'de> serde::Deserializer<'de> for FormInput<'de> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self.0)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// serde's complaint about an input as a BAD_REQUEST with one issue naming
/// the failing field.
fn input_error<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> RpcError {
    let path: Vec<String> = e
        .path()
        .iter()
        .filter_map(|seg| match seg {
            serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
            serde_path_to_error::Segment::Map { key } => Some(key.clone()),
            serde_path_to_error::Segment::Enum { variant } => Some(variant.clone()),
            serde_path_to_error::Segment::Unknown => None,
        })
        .collect();
    let message = e.into_inner().to_string();
    let (key, detail) = serde_message_key(&message);
    let detail = detail.to_owned();
    RpcError::validation(vec![Issue::new(path, message).with_key(key)]).with_param("detail", detail)
}

/// A stable key for one of serde's input complaints (its `de::Error`
/// constructors) and the detail after serde's fixed words, so services can
/// translate them without matching text.
fn serde_message_key(message: &str) -> (&'static str, &str) {
    const KEYS: [(&str, &str); 6] = [
        ("missing field ", "missing_field"),
        ("unknown field ", "unknown_field"),
        ("unknown variant ", "unknown_variant"),
        ("invalid type: ", "invalid_type"),
        ("invalid value: ", "invalid_value"),
        ("invalid length ", "invalid_length"),
    ];
    KEYS.iter()
        .find_map(|(prefix, key)| Some((*key, message.strip_prefix(prefix)?)))
        .unwrap_or(("invalid_input", message))
}

/// Collects procedures; [`Router::build`] checks it and freezes it.
pub struct Router<S: Service> {
    entries: Vec<Entry<S>>,
    _service: PhantomData<fn() -> S>,
}

impl<S: Service> Default for Router<S> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            _service: PhantomData,
        }
    }
}

impl<S: Service> Router<S> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `P` at `P::PATH`. `P` derives `schemars::JsonSchema` so
    /// that its doc comment describes it in the OpenAPI document.
    pub fn procedure<P: Procedure<S> + schemars::JsonSchema>(mut self) -> Self {
        self.entries.push(Entry {
            path: Arc::from(P::PATH),
            kind: P::KIND,
            guard: P::GUARD,
            ts: TsSignature {
                input: <P::Input as ts_rs::TS>::name,
                output: <P::Output as ts_rs::TS>::name,
                export: export_pair::<P::Input, P::Output>,
                optional_input: may_be_left_out::<P::Input>(),
            },
            rest: P::REST,
            errors: P::ERRORS,
            bearer: P::BEARER,
            schema: SchemaSignature::of::<P::Input, P::Output, P>(),
            handler: Handler::Call(erased_call::<S, P>),
            reads_input: reads_input::<P::Input>(),
            void_output: TypeId::of::<P::Output>() == TypeId::of::<()>()
                || TypeId::of::<P::Output>() == TypeId::of::<NoInput>(),
        });
        self
    }

    /// Registers subscription `P` at `P::PATH` (`P` derives
    /// `schemars::JsonSchema`, as for [`Router::procedure`]).
    pub fn subscription<P: Subscription<S> + schemars::JsonSchema>(mut self) -> Self {
        self.entries.push(Entry {
            path: Arc::from(P::PATH),
            kind: Kind::Subscription,
            guard: P::GUARD,
            ts: TsSignature {
                input: <P::Input as ts_rs::TS>::name,
                output: if P::TRACKED {
                    tracked_name::<P::Output>
                } else {
                    <P::Output as ts_rs::TS>::name
                },
                export: export_pair::<P::Input, P::Output>,
                optional_input: may_be_left_out::<P::Input>(),
            },
            rest: None,
            errors: P::ERRORS,
            bearer: Bearer::Unused,
            schema: SchemaSignature::of::<P::Input, P::Output, P>(),
            handler: Handler::Subscribe {
                subscribe: erased_subscribe::<S, P>,
                tracked: P::TRACKED,
            },
            reads_input: reads_input::<P::Input>(),
            void_output: false,
        });
        self
    }

    /// Mounts every procedure of `other` under `namespace.` (e.g. `auth`).
    pub fn nest(mut self, namespace: &str, other: Router<S>) -> Self {
        for mut entry in other.entries {
            entry.path = Arc::from(format!("{namespace}.{}", entry.path));
            self.entries.push(entry);
        }
        self
    }

    /// Adds every procedure of `other` at its own path.
    pub fn merge(mut self, other: Router<S>) -> Self {
        self.entries.extend(other.entries);
        self
    }

    /// Freezes the router, refusing duplicate or malformed paths so that a
    /// mistake fails at start-up rather than shadowing a procedure.
    pub fn build(self) -> Result<Registry<S>, RouterError> {
        let mut map = HashMap::with_capacity(self.entries.len());
        let mut order = Vec::with_capacity(self.entries.len());
        for entry in self.entries {
            let path = entry.path.clone();
            if path.is_empty()
                || path
                    .split('.')
                    .any(|seg| seg.is_empty() || seg.contains([',', '/']))
            {
                return Err(RouterError::InvalidPath(path.to_string()));
            }
            if entry.kind == Kind::Subscription
                && !matches!(entry.handler, Handler::Subscribe { .. })
            {
                return Err(RouterError::SubscriptionAsProcedure(path.to_string()));
            }
            if map.contains_key(&path) {
                return Err(RouterError::DuplicatePath(path.to_string()));
            }
            order.push(path.clone());
            map.insert(path, Arc::new(entry));
        }
        // A path that is also a namespace (`a` and `a.b`) cannot be typed as a
        // TypeScript router record, so refuse it too.
        for path in &order {
            let prefix = format!("{path}.");
            if let Some(child) = order.iter().find(|p| p.starts_with(&prefix)) {
                return Err(RouterError::PathIsNamespace {
                    path: path.to_string(),
                    child: child.to_string(),
                });
            }
        }
        check_rest_routes(order.iter().filter_map(|p| map.get(p)))?;
        Ok(Registry { map, order })
    }
}

/// Every REST route must be a `/`-separated path of non-empty segments,
/// each a literal or one `{name}` parameter, and no two may be the same
/// method and shape (`/users/{id}` and `/users/{key}` clash).
fn check_rest_routes<'a, S: Service + 'a>(
    entries: impl Iterator<Item = &'a Arc<Entry<S>>>,
) -> Result<(), RouterError> {
    let mut seen: HashMap<(RestMethod, String), Arc<str>> = HashMap::new();
    for entry in entries {
        let Some(rest) = entry.rest else { continue };
        let invalid = || RouterError::InvalidRestPath {
            procedure: entry.path.to_string(),
            path: rest.path.to_owned(),
        };
        let Some(rest_path) = rest.path.strip_prefix('/') else {
            return Err(invalid());
        };
        let mut shape = String::new();
        for segment in rest_path.split('/') {
            let param = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
            let ok = match param {
                Some(name) => {
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                }
                None => !segment.is_empty() && !segment.contains(['{', '}', '?', '#']),
            };
            if !ok {
                return Err(invalid());
            }
            shape.push('/');
            shape.push_str(if param.is_some() { "{}" } else { segment });
        }
        if let Some(other) = seen.insert((rest.method, shape), entry.path.clone()) {
            return Err(RouterError::DuplicateRestRoute {
                route: format!("{} {}", rest.method.as_str(), rest.path),
                first: other.to_string(),
                second: entry.path.to_string(),
            });
        }
    }
    Ok(())
}

/// Whether a procedure decodes its input (every input type but [`NoInput`]).
fn reads_input<I: 'static>() -> bool {
    TypeId::of::<I>() != TypeId::of::<NoInput>()
}

/// Whether an input may be left out: it is read, and decodes from an absent
/// input (as `Option<…>` or `#[serde(from = "Option<…>")]` do).
fn may_be_left_out<I: serde::de::DeserializeOwned + 'static>() -> bool {
    reads_input::<I>() && serde_json::from_value::<I>(serde_json::Value::Null).is_ok()
}

/// What the client's `onData` receives from a tracked subscription:
/// `httpSubscriptionLink` hands over `{ id, data }` for events with an id.
fn tracked_name<T: ts_rs::TS>(cfg: &ts_rs::Config) -> String {
    format!("{{ id: string; data: {} }}", T::name(cfg))
}

fn export_pair<I: ts_rs::TS + 'static, O: ts_rs::TS + 'static>(
    cfg: &ts_rs::Config,
) -> Result<(), ts_rs::ExportError> {
    crate::type_export::export_type::<I>(cfg)?;
    crate::type_export::export_type::<O>(cfg)
}

/// Why a router could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("procedure path {0:?} is registered twice")]
    DuplicatePath(String),
    #[error("procedure path {0:?} is not a dotted name (empty segment, ',' or '/')")]
    InvalidPath(String),
    #[error(
        "procedure {0:?} has KIND = Subscription but a one-answer handler; implement Subscription and register it with Router::subscription"
    )]
    SubscriptionAsProcedure(String),
    #[error(
        "procedure {procedure:?} has REST path {path:?}, which is not /-separated segments, each a literal or one {{name}}"
    )]
    InvalidRestPath { procedure: String, path: String },
    #[error("REST route {route} is declared by both {first:?} and {second:?}")]
    DuplicateRestRoute {
        route: String,
        first: String,
        second: String,
    },
    #[error("procedure path {path:?} is also the namespace of {child:?}")]
    PathIsNamespace { path: String, child: String },
}

/// The frozen set of procedures, shared by every request.
pub struct Registry<S: Service> {
    map: HashMap<Arc<str>, Arc<Entry<S>>>,
    order: Vec<Arc<str>>,
}

impl<S: Service> Registry<S> {
    pub fn get(&self, path: &str) -> Option<&Arc<Entry<S>>> {
        self.map.get(path)
    }

    /// Every procedure, in registration order (stable output for emitters).
    pub fn entries(&self) -> impl Iterator<Item = &Arc<Entry<S>>> {
        self.order.iter().filter_map(|p| self.map.get(p))
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// tRPC's per-call refusal of a subscription inside a batch.
pub fn cannot_batch_subscriptions() -> RpcError {
    RpcError::keyed(
        ErrorCode::BadRequest,
        "subscription_in_batch",
        "Cannot batch subscription calls",
    )
}

/// A tracked subscription promised an id on every event; one without ends
/// the stream with an internal error rather than reach a client whose
/// types say `{ id, data }`.
fn require_ids(events: RawEvents, path: Arc<str>) -> RawEvents {
    use futures::StreamExt;
    events
        .map(move |event| match event {
            Ok(RawEvent { id: None, .. }) => Err(RpcError::internal(format!(
                "tracked subscription {path} yielded an event without an id"
            ))),
            other => other,
        })
        .boxed()
}

/// The error that ends a subscription when the caller's credentials expire
/// ([`Principal::expires_at`]): `UNAUTHORIZED`, key `credentials_expired`.
pub fn credentials_expired() -> RpcError {
    RpcError::keyed(
        ErrorCode::Unauthorized,
        "credentials_expired",
        "Credentials expired",
    )
}

/// `events` until `at`, then [`credentials_expired`] and the end; an end or
/// error of `events` before then ends it as usual. Once `at` has passed no
/// further event is delivered, even one that is ready at that instant.
fn until_expiry(events: RawEvents, at: SystemTime) -> RawEvents {
    use futures::StreamExt;
    // The wall-clock instant as a timer deadline (tokio's clock is
    // monotonic); an instant already past fires at once.
    let left = at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    let expiry = Box::pin(tokio::time::sleep(left));
    futures::stream::unfold(Some((events, expiry)), |state| async move {
        let (mut events, mut expiry) = state?;
        tokio::select! {
            biased;
            () = &mut expiry => Some((Err(credentials_expired()), None)),
            event = events.next() => match event {
                Some(Ok(event)) => Some((Ok(event), Some((events, expiry)))),
                Some(Err(error)) => Some((Err(error), None)),
                None => None,
            },
        }
    })
    .boxed()
}

/// Per-HTTP-request state shared by the calls of one batch: the request's
/// metadata and the caller, authenticated at most once.
pub struct RequestScope<S: Service> {
    pub service: Arc<S>,
    pub request: Arc<RequestMeta>,
    principal: OnceCell<Result<Option<S::Principal>, RpcError>>,
}

impl<S: Service> RequestScope<S> {
    pub fn new(service: Arc<S>, request: Arc<RequestMeta>) -> Self {
        Self {
            service,
            request,
            principal: OnceCell::new(),
        }
    }

    async fn principal(&self) -> Result<Option<S::Principal>, RpcError> {
        self.principal
            .get_or_init(|| self.service.authenticate(&self.request))
            .await
            .clone()
    }

    /// Runs the guard, then the procedure. Returns the output as plain JSON
    /// (the caller wraps it in the envelope and the tRPC result shape).
    pub async fn call(&self, entry: &Entry<S>, input: RawInput) -> Result<Box<RawValue>, RpcError> {
        let principal = self.guard(entry.guard).await?;
        let Handler::Call(call) = entry.handler else {
            // Transports send subscriptions to `subscribe`; inside a batch
            // they are refused before getting here.
            return Err(cannot_batch_subscriptions());
        };
        call(self.ctx(entry, principal), input).await
    }

    /// Runs the guard and starts subscription `entry`. `admit` is asked
    /// between the guard and the handler, with the authenticated caller,
    /// so limits apply before the handler allocates anything.
    pub async fn subscribe<T>(
        &self,
        entry: &Entry<S>,
        input: RawInput,
        admit: impl FnOnce(Option<&S::Principal>) -> Result<T, RpcError>,
    ) -> Result<(T, RawEvents), RpcError> {
        let principal = self.guard(entry.guard).await?;
        let admitted = admit(principal.as_ref())?;
        let Handler::Subscribe { subscribe, tracked } = entry.handler else {
            return Err(RpcError::internal_error());
        };
        let expires_at = principal.as_ref().and_then(Principal::expires_at);
        let events = subscribe(self.ctx(entry, principal), input).await?;
        let events = if tracked {
            require_ids(events, entry.path.clone())
        } else {
            events
        };
        let events = match expires_at {
            Some(at) => until_expiry(events, at),
            None => events,
        };
        Ok((admitted, events))
    }

    fn ctx(&self, entry: &Entry<S>, principal: Option<S::Principal>) -> Ctx<S> {
        Ctx {
            service: self.service.clone(),
            principal,
            request: self.request.clone(),
            path: entry.path.clone(),
        }
    }

    /// Calls procedure `P` from Rust, without HTTP or JSON (tRPC's
    /// `createCaller`): the same guard as over HTTP, then the handler with
    /// the typed input, returning the typed output. For tests, jobs and
    /// server-side rendering; the caller is whoever `request` authenticates
    /// as. `Ctx::path` is `P::PATH` (the router's namespace is not known
    /// here).
    pub async fn invoke<P: Procedure<S>>(&self, input: P::Input) -> Result<P::Output, RpcError> {
        let principal = self.guard(P::GUARD).await?;
        let ctx = Ctx {
            service: self.service.clone(),
            principal,
            request: self.request.clone(),
            path: Arc::from(P::PATH),
        };
        P::call(ctx, input).await.map_err(Into::into)
    }

    /// The guard of every call: who the caller is, and whether their role
    /// suffices.
    async fn guard(&self, guard: Guard) -> Result<Option<S::Principal>, RpcError> {
        match guard {
            Guard::Public => Ok(None),
            Guard::Authenticated | Guard::Role(_) => {
                let Some(principal) = self.principal().await? else {
                    return Err(RpcError::keyed(
                        ErrorCode::Unauthorized,
                        "authentication_required",
                        "Authentication required",
                    ));
                };
                if let Guard::Role(required) = guard
                    && !principal.role().satisfies(required)
                {
                    return Err(RpcError::keyed(
                        ErrorCode::Forbidden,
                        "role_required",
                        format!("This procedure requires the {required} role"),
                    )
                    .with_param("role", required.as_str()));
                }
                Ok(Some(principal))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn event(n: u32) -> Result<RawEvent, RpcError> {
        Ok(RawEvent {
            id: Some(n.to_string()),
            data: serde_json::value::to_raw_value(&n).expect("json"),
        })
    }

    fn id(item: Option<Result<RawEvent, RpcError>>) -> Result<Option<String>, RpcError> {
        item.map_or(Ok(None), |event| event.map(|e| e.id))
    }

    #[tokio::test]
    async fn a_stream_ends_with_unauthorized_when_the_credentials_expire() {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let at = SystemTime::now() + Duration::from_millis(150);
        let mut events = until_expiry(rx.boxed(), at);
        tx.unbounded_send(event(1)).expect("send");
        assert_eq!(id(events.next().await).expect("event"), Some("1".into()));
        // Nothing more until the expiry, then the error and the end; an
        // event ready at that moment is not delivered.
        tokio::time::sleep(Duration::from_millis(200)).await;
        tx.unbounded_send(event(2)).expect("send");
        let error = id(events.next().await).expect_err("expired");
        assert_eq!(error.code, ErrorCode::Unauthorized);
        assert_eq!(error.key, Some("credentials_expired"));
        assert!(events.next().await.is_none(), "ended");
    }

    #[tokio::test]
    async fn a_stream_that_ends_before_the_expiry_ends_as_it_did() {
        let at = SystemTime::now() + Duration::from_secs(60);
        let inner = futures::stream::iter([event(1), Err(RpcError::internal_error()), event(3)]);
        let mut events = until_expiry(inner.boxed(), at);
        assert_eq!(id(events.next().await).expect("event"), Some("1".into()));
        let error = id(events.next().await).expect_err("the stream's own error");
        assert_eq!(error.code, ErrorCode::InternalServerError);
        assert!(events.next().await.is_none(), "ended after its error");
        let mut done = until_expiry(futures::stream::iter([event(1)]).boxed(), at);
        assert!(done.next().await.is_some());
        assert!(
            done.next().await.is_none(),
            "no expiry error after a normal end"
        );
    }
}
