//! The parts of export jobs: one item per part ever claimed, in the job's own partition
//! `EXPORTS#{tenant}#{job}` (sort key the index, zero-padded), apart from the tenant's
//! jobs. A claim is an `UpdateItem` that creates the item or takes it over (queued, or
//! running so long its run was cut short) and bumps `attempt`; every later change is
//! conditional on that attempt, so a stalled run that wakes up can change nothing. Files
//! and the cursor are JSON text. Items carry the table's TTL, as jobs do.

use crate::dynamodb::export_jobs::TTL;
use crate::dynamodb::values::{Item, get_n, get_s, key, n, s};
use crate::dynamodb::{Table, keys, store_error};
use crate::retry::retry;
use audit::domain::export::{STALE_SECONDS, keep_until};
use audit::domain::export_part::{Cursor, FileEntry, Part, PartStatus, Range};
use audit::domain::tenant::TenantId;
use audit::domain::timestamp::Timestamp;
use audit::ports::StoreError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use std::collections::HashMap;

fn part_key(tenant: &TenantId, id: &str, index: u32) -> Item {
    key(&keys::export_parts_pk(tenant, id), &format!("{index:05}"))
}

fn from_item(item: &Item) -> Option<Part> {
    let time = |k: &str| get_s(item, k).and_then(|t| Timestamp::parse(t).ok());
    let files: Vec<FileEntry> = match get_s(item, "files") {
        Some(text) => serde_json::from_str(text).ok()?,
        None => Vec::new(),
    };
    let cursor: Option<Cursor> = get_s(item, "cursor").and_then(|c| serde_json::from_str(c).ok());
    Some(Part {
        index: get_s(item, keys::SK)?.parse().ok()?,
        range: Range { from: time("from")?, to: time("to")? },
        status: PartStatus::parse(get_s(item, "status")?)?,
        attempt: get_n(item, "attempt")?,
        started_at: time("started_at"),
        files,
        cursor,
        writing: get_n(item, "writing").unwrap_or(0),
        truncated: item.get("truncated").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
    })
}

fn names(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

impl Table {
    pub(crate) async fn job_parts(&self, tenant: &TenantId, id: &str) -> Result<Vec<Part>, StoreError> {
        let mut parts = Vec::new();
        let mut start = None;
        loop {
            let run = retry(&self.backoff, "Query export parts", || {
                self.client
                    .query()
                    .table_name(&self.name)
                    .key_condition_expression("pk = :pk")
                    .expression_attribute_values(":pk", s(&keys::export_parts_pk(tenant, id)))
                    .consistent_read(true)
                    .set_exclusive_start_key(start.clone())
                    .send()
            })
            .await;
            let out = run.result.map_err(|e| store_error(&e))?;
            parts.extend(out.items().iter().filter_map(from_item));
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(parts);
            }
        }
    }

    pub(crate) async fn claim_job_part(
        &self,
        tenant: &TenantId,
        id: &str,
        index: u32,
        range: Range,
        now: Timestamp,
    ) -> Result<Option<Part>, StoreError> {
        let stale = now.plus_seconds(-STALE_SECONDS).to_string();
        let values: HashMap<String, AttributeValue> = [
            (":running", s(PartStatus::Running.as_str())),
            (":queued", s(PartStatus::Queued.as_str())),
            (":now", s(&now.to_string())),
            (":stale", s(&stale)),
            (":zero", n(0)),
            (":one", n(1)),
            (":from", s(&range.from.to_string())),
            (":to", s(&range.to.to_string())),
            (":ttl", n(keep_until(now))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let names = names(&[("#st", "status"), ("#from", "from"), ("#to", "to"), ("#ttl", TTL)]);
        let run = retry(&self.backoff, "UpdateItem claim export part", || {
            self.client
                .update_item()
                .table_name(&self.name)
                .set_key(Some(part_key(tenant, id, index)))
                .update_expression(
                    "SET #st = :running, attempt = if_not_exists(attempt, :zero) + :one, started_at = :now, \
                     #from = if_not_exists(#from, :from), #to = if_not_exists(#to, :to), writing = :zero, #ttl = :ttl",
                )
                .condition_expression(
                    "attribute_not_exists(pk) OR #st = :queued OR (#st = :running AND started_at < :stale)",
                )
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .return_values(ReturnValue::AllNew)
                .send()
        })
        .await;
        match run.result {
            Ok(out) => Ok(out.attributes.as_ref().and_then(from_item)),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                if !run.ambiguous {
                    return Ok(None);
                }
                // An unanswered first attempt may have claimed it: ours if it bears our time.
                let mine = self.job_parts(tenant, id).await?.into_iter().find(|p| p.index == index);
                Ok(mine.filter(|p| p.status == PartStatus::Running && p.started_at == Some(now)))
            }
            Err(e) => Err(store_error(&e)),
        }
    }

    pub(crate) async fn save_job_part(&self, tenant: &TenantId, id: &str, part: &Part) -> Result<bool, StoreError> {
        let files = serde_json::to_string(&part.files).map_err(|e| StoreError::Refused(e.to_string()))?;
        let mut values: HashMap<String, AttributeValue> = [
            (":st", s(part.status.as_str())),
            (":running", s(PartStatus::Running.as_str())),
            (":files", s(&files)),
            (":writing", n(part.writing)),
            (":tr", AttributeValue::Bool(part.truncated)),
            (":a", n(part.attempt)),
            (":ttl", n(keep_until(Timestamp::now()))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut set = "SET #st = :st, files = :files, writing = :writing, truncated = :tr, #ttl = :ttl".to_owned();
        match &part.cursor {
            Some(c) => {
                values.insert(":cursor".into(), s(&serde_json::to_string(c).unwrap_or_default()));
                set.push_str(", #cursor = :cursor");
            }
            None => set.push_str(" REMOVE #cursor"),
        }
        let names = names(&[("#st", "status"), ("#cursor", "cursor"), ("#ttl", TTL)]);
        let run = retry(&self.backoff, "UpdateItem export part", || {
            self.client
                .update_item()
                .table_name(&self.name)
                .set_key(Some(part_key(tenant, id, part.index)))
                .update_expression(&set)
                .condition_expression("attempt = :a AND #st = :running")
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .send()
        })
        .await;
        match run.result {
            Ok(_) => Ok(true),
            // An unanswered first attempt may have applied it itself.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(run.ambiguous)
            }
            Err(e) => Err(store_error(&e)),
        }
    }
}
