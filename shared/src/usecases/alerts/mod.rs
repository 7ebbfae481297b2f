//! Alerts: the API's rules ([`rules`]), the stream's intake of matching events
//! ([`intake`]), and each tenant's work, done in turns ([`worker`]): judging matches,
//! folding what the rates hold back, and delivering.

pub mod intake;
pub mod rules;
pub mod worker;

pub use intake::Intake;
pub use rules::Rules;
pub use worker::Worker;

#[cfg(test)]
mod flow_tests;
