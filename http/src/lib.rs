//! The HTTP edge every API function shares: bearer tokens ([`auth`]), the contract's
//! error body for every error the use cases give ([`error`]), `/healthz` ([`health`]),
//! what fits in a Lambda invocation ([`limits`]), and the request's note for its log
//! line ([`request`]). Each function's own routes
//! live in its crate; they parse a request, call a use case and map its result through
//! these.
//!
//! May depend on: `audit` (domain, ports, use cases), axum and the token libraries.
//! Never on an AWS adapter: routers are built on ports, so tests drive them in memory.

pub mod auth;
pub mod error;
pub mod health;
pub mod limits;
pub mod request;

pub use auth::{Caller, Scope, Verifier};
pub use error::{ApiError, caller};
