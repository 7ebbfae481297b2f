//! The bodies of `POST /v1/streams` and `PATCH /v1/streams/{id}`: every rule of a
//! stream's settings, each broken one reported with its field and reason.
//!
//! (Skeleton: the stream API's engineer fills it in.)

use crate::domain::egress::{Egress, WebhookUrl};
use crate::domain::event::{Reason, Violation};
use crate::domain::log_stream::Plain;
use crate::domain::timestamp::Timestamp;

/// A destination as the tenant sent it: credentials in the clear, to be sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewDestination {
    Https { url: WebhookUrl },
    SplunkHec { url: WebhookUrl, token: Plain },
    Datadog { site: Option<String>, url: WebhookUrl, api_key: Plain },
    S3 { bucket: String, region: String, prefix: String, expected_bucket_owner: String },
}

/// A `POST` body, once defaults apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStream {
    pub name: String,
    pub enabled: bool,
    pub destination: NewDestination,
    pub backfill_from: Option<Timestamp>,
}

/// A `PATCH` body: each field given replaces the stream's; `rotate_secret: true` starts
/// a rotation of an `https` stream's signing secret.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamPatch {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub destination: Option<NewDestination>,
    pub rotate_secret: bool,
}

/// Parses a `POST /v1/streams` body at `now`.
///
/// # Errors
/// Every broken rule, each naming its field.
pub fn parse_new(_body: &[u8], _egress: Egress, _now: Timestamp) -> Result<NewStream, Vec<Violation>> {
    Err(vec![Violation { field: String::new(), reason: Reason::InvalidValue, message: "not built yet".into() }])
}

/// Parses a `PATCH /v1/streams/{id}` body.
///
/// # Errors
/// Every broken rule, and an empty body.
pub fn parse_patch(_body: &[u8], _egress: Egress) -> Result<StreamPatch, Vec<Violation>> {
    Err(vec![Violation { field: String::new(), reason: Reason::InvalidValue, message: "not built yet".into() }])
}
