//! The domain: what an audit event is and every rule about it, with no I/O.
//!
//! May depend on: the standard library and plain data crates (serde, serde_json, time,
//! sha2/hmac, uuid, base64). Never on AWS, HTTP or Lambda types, nor on the rest of this
//! crate: `domain_stays_free_of_aws_and_http` (in `lib.rs`) fails if it does. The one
//! description of an event's fields is [`fields`]; a new event field starts in
//! [`event`] (the struct and its validation) and [`fields`] (its column and JSON path);
//! a new read filter starts in [`filter`].

pub mod alert;
pub mod alerting;
pub mod breaker;
pub mod budget;
pub mod canonical;
pub mod catalog;
pub mod cursor;
pub mod delivery;
pub mod egress;
pub mod error;
pub mod event;
pub mod export;
pub mod export_dispatch;
pub mod export_request;
pub mod fields;
pub mod filter;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod incoming;
pub mod ingest;
pub mod manifest;
pub mod number;
pub mod own;
pub mod plan;
pub mod rate;
pub mod retention;
pub mod row;
pub mod tenant;
pub mod timestamp;
pub mod turn;
pub mod webhook;
