//! Log streams (`/v1/streams`): every event of a tenant pushed, in order and numbered,
//! to a destination of its own (an HTTPS collector, Splunk HEC, Datadog, an S3 bucket in
//! its account). This module holds what a stream is and what it shows; the bodies of
//! `POST`/`PATCH` are parsed in [`parse`], the payloads each destination takes are built
//! in [`payload`].
//!
//! Every event a stream carries has the stream's sequence number, contiguous from 1, so
//! a receiver sees a gap at once; a batch is re-sent with the same numbers until it is
//! delivered, and numbers come again only when the tenant asks for a replay.

pub mod parse;
pub mod payload;

use crate::domain::egress::WebhookUrl;
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use serde_json::{Value, json};

/// Most streams one tenant may have.
pub const MAX_STREAMS_PER_TENANT: usize = 5;
/// Largest `POST`/`PATCH` body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
pub const MAX_NAME_CHARS: usize = 128;
/// Most events in one batch.
pub const MAX_BATCH_EVENTS: usize = 500;
/// Most bytes of events (their JSON, before compression) in one batch.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// Longest a matching event waits for its batch to fill before the batch goes anyway.
pub const MAX_BATCH_DELAY_MILLIS: i64 = 1000;
/// How long an undelivered event waits for a paused destination, at least: nothing
/// older is dropped; this is the promise (the buffer keeps going past it).
pub const BUFFER_DAYS: i64 = 7;

/// A credential as the tenant sent it (a HEC token, a Datadog API key, a signing
/// secret): held only long enough to seal it, never shown, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Plain(pub String);

impl std::fmt::Debug for Plain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Plain(<redacted>)")
    }
}

/// A credential sealed by the deployment's key ([`crate::ports::Sealer`]): what is
/// stored. Its text is ciphertext, useless without the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed(pub String);

/// Where a stream's batches go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// gzip NDJSON batches, `POST`ed and signed per Standard Webhooks with the stream's
    /// secret.
    Https { url: WebhookUrl },
    /// A Splunk HTTP Event Collector: its event endpoint and token.
    SplunkHec { url: WebhookUrl, token: Sealed },
    /// Datadog's Logs intake v2: `https://http-intake.logs.{site}/api/v2/logs`, or an
    /// intake URL of the tenant's (a proxy, a private link endpoint).
    Datadog { site: Option<String>, url: WebhookUrl, api_key: Sealed },
    /// A bucket in the tenant's own account, which grants the stream function's role
    /// `s3:PutObject`: gzip NDJSON objects under a time-ordered key.
    S3 { bucket: String, region: String, prefix: String, expected_bucket_owner: String },
}

impl Destination {
    /// The destination's type, as the API names it.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Destination::Https { .. } => "https",
            Destination::SplunkHec { .. } => "splunk_hec",
            Destination::Datadog { .. } => "datadog",
            Destination::S3 { .. } => "s3",
        }
    }

    /// As the API shows it: never a credential (a HEC token or API key shows as
    /// `"token_set": true`), and a URL by scheme and host only (its path or query may hold
    /// the receiver's own token).
    #[must_use]
    pub fn to_json(&self) -> Value {
        let origin =
            |url: &WebhookUrl| crate::domain::alert::Destination::Webhook(url.clone()).redacted()["url"].clone();
        match self {
            Destination::Https { url } => json!({"type": "https", "url": origin(url)}),
            Destination::SplunkHec { url, .. } => json!({"type": "splunk_hec", "url": origin(url), "token_set": true}),
            Destination::Datadog { site, url, .. } => {
                json!({"type": "datadog", "site": site, "url": origin(url), "api_key_set": true})
            }
            Destination::S3 { bucket, region, prefix, expected_bucket_owner } => json!({
                "type": "s3", "bucket": bucket, "region": region, "prefix": prefix,
                "expected_bucket_owner": expected_bucket_owner,
            }),
        }
    }
}

/// A stream as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStream {
    /// A UUIDv7, made by the server.
    pub id: String,
    pub tenant_id: TenantId,
    pub name: String,
    /// A disabled stream keeps its place: events still gather for it, undelivered.
    pub enabled: bool,
    pub destination: Destination,
    /// The Standard Webhooks signing secret (`whsec_...`, sealed), for `https`.
    pub secret: Option<Sealed>,
    /// Events from this time (`occurred_at`), stored before the stream was created, are
    /// sent first: the backfill.
    pub backfill_from: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl LogStream {
    /// The stream as the API shows it (no credential, no secret).
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "enabled": self.enabled,
            "destination": self.destination.to_json(),
            "backfill_from": self.backfill_from.map(|t| t.to_string()),
            "created_at": self.created_at.to_string(),
            "updated_at": self.updated_at.to_string(),
        })
    }
}

/// Where a stream's delivery stands (kept by the stream worker, shown by the API).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// The last sequence number given to an event (0: none yet).
    pub assigned: u64,
    /// The last sequence number delivered: every number up to it has been.
    pub delivered: u64,
    pub last_delivered_at: Option<Timestamp>,
    /// The last failed attempt: when and why (never a credential, never a URL's path).
    pub last_error: Option<(Timestamp, String)>,
    /// Failed attempts in a row.
    pub failures: u32,
    /// Paused after a failure: since when, and until when (the next attempt).
    pub paused_since: Option<Timestamp>,
    pub paused_until: Option<Timestamp>,
    /// The backfill, until it is done.
    pub backfill: Option<Backfill>,
    /// A replay the tenant asked for: numbers from `next` up to `until` are sent again.
    pub replay: Option<Replay>,
}

/// A backfill in progress: events with `occurred_at` from `from` and received before
/// `until` (the stream's creation), read from `position` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backfill {
    pub from: Timestamp,
    pub until: Timestamp,
    /// Where the reading stands, opaque to all but the reader.
    pub position: Option<String>,
    /// Events put in the stream's buffer so far.
    pub queued: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    pub next: u64,
    pub until: u64,
}

impl Progress {
    /// What `GET /v1/streams/{id}` shows, `lag_seconds` being how long the oldest
    /// undelivered event has waited (0 when none waits).
    #[must_use]
    pub fn to_json(&self, lag_seconds: u64) -> Value {
        let time = |t: Option<Timestamp>| t.map(|t| t.to_string());
        json!({
            "last_delivered_seq": self.delivered,
            "last_delivered_at": time(self.last_delivered_at),
            "lag_seconds": lag_seconds,
            "last_error": self.last_error.as_ref().map(|(_, e)| e),
            "last_error_at": time(self.last_error.as_ref().map(|(t, _)| *t)),
            "paused_since": time(self.paused_since),
            "paused_until": time(self.paused_until),
            "backfill": self.backfill.as_ref().map(|b| json!({"from": b.from.to_string(), "queued": b.queued, "done": false})),
            "replay": self.replay.map(|r| json!({"next_seq": r.next, "until_seq": r.until})),
        })
    }
}
