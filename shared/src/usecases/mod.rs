//! Use cases: what the service does, written against the ports only, so every one runs
//! as well on the in-memory adapters (in seconds, in unit tests) as on AWS.
//!
//! May depend on: the domain, the ports and the formats. Never on a concrete adapter,
//! nor on HTTP or Lambda types: the functions' handlers parse a request, call one of
//! these, and map its result.

pub mod alerts;
pub mod archive;
pub mod consume;
pub mod convert;
pub mod counts;
pub mod export;
pub mod files;
pub mod ingest;
pub mod intake;
pub mod merge;
pub mod query;
pub mod turns;
pub mod verify;

#[cfg(test)]
mod read_tests;
#[cfg(test)]
mod tests;
