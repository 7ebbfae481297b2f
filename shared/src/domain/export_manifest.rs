//! The signed manifest of an export: what was asked (format, filters, range), every file
//! with its rows, bytes, SHA-256 and first and last time, the totals, and the archive
//! chain's head the export was read against; signed as [`crate::domain::signing`] says.
//! Stored beside the files as `manifest.json`, so an auditor holding the manifest, the
//! files and the public keys checks that the download is whole and unaltered without
//! asking the service.

use crate::domain::export::Job;
use crate::domain::export_part::FileEntry;
use crate::domain::export_request::filters_json;
use crate::domain::manifest::ChainHead;
use crate::domain::signing::{self, Kind, Signature};
use crate::domain::timestamp::Timestamp;
use serde_json::{Value, json};

pub const VERSION: u32 = 1;

/// The manifest of `job`, finished at `completed_at` with `files` (in order), unsigned.
#[must_use]
pub fn unsigned(
    job: &Job,
    files: &[FileEntry],
    truncated: bool,
    archive_head: Option<&ChainHead>,
    completed_at: Timestamp,
) -> Value {
    let (range, filters) = filters_json(&job.query);
    let listed: Vec<Value> = files
        .iter()
        .map(|f| {
            json!({"name": f.name, "rows": f.rows, "bytes": f.bytes, "sha256": f.sha256, "first": f.first, "last": f.last})
        })
        .collect();
    json!({
        "version": VERSION,
        "export_id": job.id,
        "tenant_id": job.tenant.as_str(),
        "request": {
            "format": job.format.as_str(),
            "filters": filters,
            "from": range.0,
            "to": range.1,
        },
        "created_at": job.created_at.to_string(),
        "completed_at": completed_at.to_string(),
        "files": listed,
        "rows": files.iter().map(|f| f.rows).sum::<u64>(),
        "bytes": files.iter().map(|f| f.bytes).sum::<u64>(),
        "truncated": truncated,
        "archive_head": archive_head.map(|h| json!({"seq": h.seq, "sha256": h.sha256})),
    })
}

/// The message the manifest's signature covers.
#[must_use]
pub fn message(manifest: &Value) -> Vec<u8> {
    signing::message(Kind::ExportManifest, manifest)
}

/// The manifest with its signature, as stored: pretty JSON, a final newline.
#[must_use]
pub fn signed_bytes(mut manifest: Value, signature: &Signature) -> Vec<u8> {
    if let Some(map) = manifest.as_object_mut() {
        map.insert("signature".into(), serde_json::to_value(signature).unwrap_or(Value::Null));
    }
    let mut out = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    out.push(b'\n');
    out
}
