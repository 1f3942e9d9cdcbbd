//! Gatehouse: a tRPC-compatible RPC framework for axum.
//!
//! Procedures are Rust types ([`Procedure`]) registered on a [`Router`]; the
//! [`http`] adapter speaks the tRPC v11 HTTP protocol with the superjson
//! envelope so the unmodified `@trpc/client` can call them, and the
//! [`typescript`] emitter writes the matching `AppRouter` type. The framework
//! knows roles but nothing about users or tokens: an application supplies a
//! [`Service`] that says who is calling.

pub mod connections;
pub mod docs;
pub mod envelope;
pub mod error;
pub mod http;
pub mod metrics;
pub mod openapi;
pub mod procedure;
pub mod role;
pub mod router;
pub mod server;
pub mod service;
pub mod shutdown;
mod type_export;
pub mod typescript;

pub use error::{ErrorCode, Issue, RpcError};
pub use procedure::{
    Bearer, Ctx, Event, EventStream, Guard, Kind, NoInput, Procedure, Rest, RestMethod,
    Subscription, True,
};
pub use role::Role;
pub use router::{RawInput, Registry, RequestScope, Router, RouterError};
pub use service::{Principal, RequestMeta, ResponseHeaders, Service};
