//! Export jobs: one item per job in the tenant's `EXPORTS#{tenant}` partition, sorted by
//! id (a UUIDv7, so by creation time). Every state change is a conditional update, so a
//! redelivered queue message never runs a finished job again.

use crate::export_format::Format;
use crate::item::Item;
use crate::retry::retry;
use crate::store::{Store, StoreError};
use crate::tenant::TenantId;
use crate::timestamp::Timestamp;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use std::collections::HashMap;

/// How long a finished file can be downloaded.
pub const DOWNLOAD_HOURS: i64 = 24;
/// A job `running` this long without finishing was cut short (its function timed out)
/// and may be claimed again.
pub const STALE_SECONDS: i64 = 20 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Queued,
    Running,
    Succeeded,
    Failed,
    Expired,
}

impl Status {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub tenant: TenantId,
    pub id: String,
    pub status: Status,
    pub format: Format,
    /// The filters, as a query string with the range fixed.
    pub query: String,
    /// The token's `sub`.
    pub requested_by: String,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
    pub truncated: Option<bool>,
    /// `(code, message)` of a failed job.
    pub error: Option<(String, String)>,
}

impl Job {
    #[must_use]
    pub fn new(tenant: TenantId, requested_by: &str, format: Format, query: String, now: Timestamp) -> Self {
        Self {
            tenant,
            id: uuid::Uuid::now_v7().to_string(),
            status: Status::Queued,
            format,
            query,
            requested_by: requested_by.to_owned(),
            created_at: now,
            started_at: None,
            completed_at: None,
            expires_at: None,
            rows: None,
            bytes: None,
            truncated: None,
            error: None,
        }
    }

    /// The file's object key in the export bucket.
    #[must_use]
    pub fn object_key(&self) -> String {
        format!("exports/{}/{}.{}", self.tenant, self.id, self.format.as_str())
    }

    /// The status as the API reports it: a finished file past its `expires_at` is expired.
    #[must_use]
    pub fn status_at(&self, now: Timestamp) -> Status {
        match (self.status, self.expires_at) {
            (Status::Succeeded, Some(at)) if now >= at => Status::Expired,
            (s, _) => s,
        }
    }

    /// The contract's view of the job.
    #[must_use]
    pub fn view(&self, now: Timestamp, download_url: Option<String>) -> Value {
        let t = |v: Option<Timestamp>| v.map(|t| t.to_string());
        json!({
            "id": self.id,
            "status": self.status_at(now).as_str(),
            "format": self.format.as_str(),
            "rows": self.rows,
            "bytes": self.bytes,
            "truncated": self.truncated,
            "created_at": self.created_at.to_string(),
            "completed_at": t(self.completed_at),
            "expires_at": t(self.expires_at),
            "download_url": download_url,
            "error": self.error.as_ref().map(|(code, message)| json!({"code": code, "message": message})),
        })
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn partition(tenant: &TenantId) -> String {
    format!("EXPORTS#{tenant}")
}

fn key(tenant: &TenantId, id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([(crate::keys::PK.into(), s(&partition(tenant))), (crate::keys::SK.into(), s(id))])
}

fn to_item(job: &Job) -> Item {
    let mut item = key(&job.tenant, &job.id);
    item.insert("status".into(), s(job.status.as_str()));
    item.insert("format".into(), s(job.format.as_str()));
    item.insert("query".into(), s(&job.query));
    item.insert("requested_by".into(), s(&job.requested_by));
    item.insert("created_at".into(), s(&job.created_at.to_string()));
    item
}

fn from_item(tenant: &TenantId, item: &Item) -> Option<Job> {
    let st = |k: &str| item.get(k).and_then(|v| v.as_s().ok());
    let time = |k: &str| st(k).and_then(|t| Timestamp::parse(t).ok());
    let num = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<u64>().ok());
    Some(Job {
        tenant: tenant.clone(),
        id: st(crate::keys::SK)?.clone(),
        status: Status::parse(st("status")?)?,
        format: Format::parse(st("format")?).ok()?,
        query: st("query")?.clone(),
        requested_by: st("requested_by").cloned().unwrap_or_default(),
        created_at: time("created_at")?,
        started_at: time("started_at"),
        completed_at: time("completed_at"),
        expires_at: time("expires_at"),
        rows: num("rows"),
        bytes: num("bytes"),
        truncated: item.get("truncated").and_then(|v| v.as_bool().ok()).copied(),
        error: st("error_code").map(|c| (c.clone(), st("error_message").cloned().unwrap_or_default())),
    })
}

/// The jobs table, seen from the export API and worker.
pub struct Jobs<'a> {
    pub store: &'a Store,
}

impl Jobs<'_> {
    /// # Errors
    /// [`StoreError`].
    pub async fn create(&self, job: &Job) -> Result<(), StoreError> {
        let item = to_item(job);
        let run = retry(self.store.backoff(), "PutItem export job", || {
            self.store
                .client()
                .put_item()
                .table_name(self.store.table())
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(pk)")
                .send()
        })
        .await;
        run.result.map(|_| ()).map_err(|e| StoreError::from_sdk(&e))
    }

    /// The tenant's job `id`, if it exists.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<Job>, StoreError> {
        let run = retry(self.store.backoff(), "GetItem export job", || {
            self.store
                .client()
                .get_item()
                .table_name(self.store.table())
                .set_key(Some(key(tenant, id)))
                .consistent_read(true)
                .send()
        })
        .await;
        let out = run.result.map_err(|e| StoreError::from_sdk(&e))?;
        Ok(out.item().and_then(|it| from_item(tenant, it)))
    }

    /// The tenant's jobs created since `since`, newest first.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn list(&self, tenant: &TenantId, since: Timestamp) -> Result<Vec<Job>, StoreError> {
        // UUIDv7 ids start with the creation time in milliseconds, as hex.
        let ms = u64::try_from(since.micros() / 1000).unwrap_or(0);
        let lower = format!("{:08x}-{:04x}", ms >> 16, ms & 0xffff);
        let mut jobs = Vec::new();
        let mut start = None;
        loop {
            let run = retry(self.store.backoff(), "Query export jobs", || {
                self.store
                    .client()
                    .query()
                    .table_name(self.store.table())
                    .key_condition_expression("pk = :pk AND sk >= :lower")
                    .expression_attribute_values(":pk", s(&partition(tenant)))
                    .expression_attribute_values(":lower", s(&lower))
                    .scan_index_forward(false)
                    .set_exclusive_start_key(start.clone())
                    .send()
            })
            .await;
            let out = run.result.map_err(|e| StoreError::from_sdk(&e))?;
            jobs.extend(out.items().iter().filter_map(|it| from_item(tenant, it)));
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(jobs);
            }
        }
    }

    /// Moves a queued job (or one whose run was cut short) to running; `false` when
    /// another delivery has it or it is finished.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn claim(&self, tenant: &TenantId, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let stale = now.plus_seconds(-STALE_SECONDS).to_string();
        self.update(
            tenant,
            id,
            "SET #st = :running, started_at = :now",
            "#st = :queued OR (#st = :running AND started_at < :stale)",
            &[
                (":running", s("running")),
                (":queued", s("queued")),
                (":now", s(&now.to_string())),
                (":stale", s(&stale)),
            ],
        )
        .await
    }

    /// Records a finished file.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn succeed(
        &self,
        tenant: &TenantId,
        id: &str,
        rows: u64,
        bytes: u64,
        truncated: bool,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.update(
            tenant,
            id,
            "SET #st = :done, #rows = :rows, #bytes = :bytes, truncated = :tr, completed_at = :now, expires_at = :exp",
            "#st = :running",
            &[
                (":done", s("succeeded")),
                (":running", s("running")),
                (":rows", n(rows)),
                (":bytes", n(bytes)),
                (":tr", AttributeValue::Bool(truncated)),
                (":now", s(&now.to_string())),
                (":exp", s(&now.plus_seconds(DOWNLOAD_HOURS * 3600).to_string())),
            ],
        )
        .await
    }

    /// Records why a job failed.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn fail(&self, tenant: &TenantId, id: &str, code: &str, message: &str) -> Result<bool, StoreError> {
        self.update(
            tenant,
            id,
            "SET #st = :failed, error_code = :code, error_message = :msg, completed_at = :now",
            "#st = :running OR #st = :queued",
            &[
                (":failed", s("failed")),
                (":running", s("running")),
                (":queued", s("queued")),
                (":code", s(code)),
                (":msg", s(message)),
                (":now", s(&Timestamp::now().to_string())),
            ],
        )
        .await
    }

    /// Records that a finished file's time is up and its object is gone.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn expire(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        self.update(
            tenant,
            id,
            "SET #st = :expired",
            "#st = :done",
            &[(":expired", s("expired")), (":done", s("succeeded"))],
        )
        .await
    }

    async fn update(
        &self,
        tenant: &TenantId,
        id: &str,
        set: &str,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<bool, StoreError> {
        let mut names = HashMap::from([("#st".to_owned(), "status".to_owned())]);
        if set.contains("#rows") {
            names.insert("#rows".into(), "rows".into());
            names.insert("#bytes".into(), "bytes".into());
        }
        let values: HashMap<String, AttributeValue> =
            values.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        let run = retry(self.store.backoff(), "UpdateItem export job", || {
            self.store
                .client()
                .update_item()
                .table_name(self.store.table())
                .set_key(Some(key(tenant, id)))
                .update_expression(set)
                .condition_expression(format!("attribute_exists(pk) AND ({condition})"))
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .send()
        })
        .await;
        match run.result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                // An ambiguous first attempt may have applied the change itself.
                Ok(run.ambiguous)
            }
            Err(e) => Err(StoreError::from_sdk(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_job_expires_at_its_time() {
        let now = Timestamp::now();
        let tenant = TenantId::parse("acme").unwrap_or_else(|_| unreachable!());
        let mut job = Job::new(tenant, "u", Format::Csv, String::new(), now);
        job.status = Status::Succeeded;
        job.expires_at = Some(now.plus_seconds(10));
        assert_eq!(job.status_at(now), Status::Succeeded);
        assert_eq!(job.status_at(now.plus_seconds(10)), Status::Expired);
        assert_eq!(job.view(now.plus_seconds(11), None)["status"], "expired");
        assert!(job.object_key().starts_with("exports/acme/") && job.object_key().ends_with(".csv"));
    }

    #[test]
    fn the_listing_bound_sorts_like_uuid_v7_ids() {
        let before = Timestamp::now();
        let ms = u64::try_from(before.micros() / 1000).unwrap_or(0);
        let lower = format!("{:08x}-{:04x}", ms >> 16, ms & 0xffff);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let id = uuid::Uuid::now_v7().to_string();
        assert!(id.as_str() >= lower.as_str(), "{id} < {lower}");
    }
}
