//! The audit log's model crate: the event and its rules, the storage keys, and the
//! adapters every function shares. Domain rules live here once, with their tests.

pub mod api;
pub mod archive;
pub mod auth;
pub mod aws;
pub mod blob;
pub mod canonical;
pub mod config;
pub mod convert;
pub mod cursor;
pub mod error;
pub mod event;
pub mod export;
pub mod export_format;
pub mod filter;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod index_stream;
pub mod ingest;
pub mod item;
pub mod keys;
pub mod parquet_reader;
pub mod parquet_writer;
pub mod planner;
pub mod queue;
pub mod reader;
pub mod retry;
pub mod row;
pub mod scratch;
pub mod store;
pub mod telemetry;
pub mod tenant;
pub mod timestamp;
