//! Export jobs: one item per job in the tenant's `EXPORTS#{tenant}` partition, sorted by
//! id (a UUIDv7, so by creation time). Every state change is a conditional update written
//! from the rules in `audit::domain::export` (`Job::claimable` and its siblings). Each
//! item carries the table's TTL attribute, set when the job is created and again when it
//! finishes, so records expire after their files ([`keep_until`]).
//!
//! The tenant's dispatch record (`audit::domain::export_dispatch`) is the item `#dispatch`
//! of the same partition: `active` and `running` maps (id or holder to microseconds) and
//! `version`, replaced whole by a `PutItem` conditional on the version read. Its sort key
//! sorts before every job id (a UUIDv7 begins with a digit), so listings never meet it.

use crate::dynamodb::values::{Item, get_n, get_s, key, n, s};
use crate::dynamodb::{Table, keys, store_error};
use crate::retry::retry;
use async_trait::async_trait;
use audit::domain::export::{DOWNLOAD_HOURS, Format, Job, Produced, STALE_SECONDS, Status, id_lower_bound, keep_until};
use audit::domain::export_dispatch::Dispatch;
use audit::domain::export_part::{Part, Range};
use audit::domain::tenant::TenantId;
use audit::domain::timestamp::Timestamp;
use audit::ports::{ExportJobs, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// The table's TTL attribute (`TimeToLiveSpecification` in template.yaml): seconds since
/// the epoch. `TTL` is a reserved word, so expressions name it `#ttl`.
pub const TTL: &str = "ttl";

/// The dispatch record's sort key.
const DISPATCH: &str = "#dispatch";

fn job_key(tenant: &TenantId, id: &str) -> Item {
    key(&keys::export_jobs_pk(tenant), id)
}

fn times(map: &std::collections::BTreeMap<String, Timestamp>) -> AttributeValue {
    AttributeValue::M(map.iter().map(|(k, t)| (k.clone(), n(t.micros()))).collect())
}

fn read_times(item: &Item, name: &str) -> std::collections::BTreeMap<String, Timestamp> {
    let Some(AttributeValue::M(m)) = item.get(name) else { return Default::default() };
    m.iter()
        .filter_map(|(k, v)| {
            let micros = v.as_n().ok()?.parse::<i64>().ok()?;
            Some((k.clone(), Timestamp::from_micros(micros).ok()?))
        })
        .collect()
}

fn to_item(job: &Job) -> Item {
    let mut item = job_key(&job.tenant, &job.id);
    item.insert("status".into(), s(job.status.as_str()));
    item.insert("format".into(), s(job.format.as_str()));
    item.insert("query".into(), s(&job.query));
    item.insert("requested_by".into(), s(&job.requested_by));
    item.insert("created_at".into(), s(&job.created_at.to_string()));
    item.insert(TTL.into(), n(keep_until(job.created_at)));
    item
}

fn from_item(tenant: &TenantId, item: &Item) -> Option<Job> {
    let st = |k: &str| get_s(item, k);
    let time = |k: &str| st(k).and_then(|t| Timestamp::parse(t).ok());
    let num = |k: &str| get_n::<u64>(item, k);
    Some(Job {
        tenant: tenant.clone(),
        id: st(keys::SK)?.clone(),
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
        plan: st("plan").and_then(|p| plan_from(p)),
        files: num("files").and_then(|f| u32::try_from(f).ok()),
    })
}

/// A job's plan as stored: JSON `[[from, to], ...]`.
fn plan_text(parts: &[Range]) -> String {
    let pairs: Vec<[String; 2]> = parts.iter().map(|r| [r.from.to_string(), r.to.to_string()]).collect();
    serde_json::to_string(&pairs).unwrap_or_default()
}

fn plan_from(text: &str) -> Option<Vec<Range>> {
    let pairs: Vec<[String; 2]> = serde_json::from_str(text).ok()?;
    pairs.iter().map(|[f, t]| Some(Range { from: Timestamp::parse(f).ok()?, to: Timestamp::parse(t).ok()? })).collect()
}

#[async_trait]
impl ExportJobs for Table {
    async fn create(&self, job: &Job) -> Result<(), StoreError> {
        let item = to_item(job);
        let run = retry(&self.backoff, "PutItem export job", || {
            self.client
                .put_item()
                .table_name(&self.name)
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(pk)")
                .send()
        })
        .await;
        run.result.map(|_| ()).map_err(|e| store_error(&e))
    }

    async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<Job>, StoreError> {
        let item = self.get_one("GetItem export job", job_key(tenant, id)).await?;
        Ok(item.and_then(|it| from_item(tenant, &it)))
    }

    async fn list(
        &self,
        tenant: &TenantId,
        since: Timestamp,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        let lower = id_lower_bound(since);
        let mut jobs = Vec::new();
        // Newest first from the job before `before`: the key need not be an item's.
        let mut start = before.map(|b| job_key(tenant, b));
        while jobs.len() < limit {
            let left = i32::try_from(limit - jobs.len()).unwrap_or(i32::MAX);
            let run = retry(&self.backoff, "Query export jobs", || {
                self.client
                    .query()
                    .table_name(&self.name)
                    .key_condition_expression("pk = :pk AND sk >= :lower")
                    .expression_attribute_values(":pk", s(&keys::export_jobs_pk(tenant)))
                    .expression_attribute_values(":lower", s(&lower))
                    .scan_index_forward(false)
                    .limit(left)
                    .set_exclusive_start_key(start.clone())
                    .send()
            })
            .await;
            let out = run.result.map_err(|e| store_error(&e))?;
            jobs.extend(out.items().iter().filter_map(|it| from_item(tenant, it)));
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(jobs)
    }

    async fn dispatch(&self, tenant: &TenantId) -> Result<Dispatch, StoreError> {
        let item = self.get_one("GetItem export dispatch", job_key(tenant, DISPATCH)).await?;
        Ok(item.map_or_else(Dispatch::default, |item| Dispatch {
            active: read_times(&item, "active"),
            running: read_times(&item, "running"),
            version: get_n(&item, "version").unwrap_or(0),
        }))
    }

    async fn put_dispatch(&self, tenant: &TenantId, next: &Dispatch, expected: u64) -> Result<bool, StoreError> {
        let mut item = job_key(tenant, DISPATCH);
        // An empty map is left out (read back as empty): DynamoDB Local's stream shows an
        // empty map without its type, which the SDK cannot read, and the stream's
        // consumers would stall behind the record.
        for (name, map) in [("active", &next.active), ("running", &next.running)] {
            if !map.is_empty() {
                item.insert(name.into(), times(map));
            }
        }
        item.insert("version".into(), n(next.version));
        let run = retry(&self.backoff, "PutItem export dispatch", || {
            let put = self.client.put_item().table_name(&self.name).set_item(Some(item.clone()));
            if expected == 0 {
                put.condition_expression("attribute_not_exists(pk)")
            } else {
                put.condition_expression("#ver = :v")
                    .expression_attribute_names("#ver", "version")
                    .expression_attribute_values(":v", n(expected))
            }
            .send()
        })
        .await;
        match run.result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                // An ambiguous first attempt may have written it itself.
                Ok(run.ambiguous)
            }
            Err(e) => Err(store_error(&e)),
        }
    }

    async fn claim(&self, tenant: &TenantId, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let stale = now.plus_seconds(-STALE_SECONDS).to_string();
        self.job_update(
            tenant,
            id,
            "SET #st = :running, started_at = :now",
            "#st = :queued OR (#st = :running AND started_at < :stale)",
            &[
                (":running", s(Status::Running.as_str())),
                (":queued", s(Status::Queued.as_str())),
                (":now", s(&now.to_string())),
                (":stale", s(&stale)),
            ],
        )
        .await
    }

    async fn succeed(&self, tenant: &TenantId, id: &str, p: Produced, now: Timestamp) -> Result<bool, StoreError> {
        self.job_update(
            tenant,
            id,
            "SET #st = :done, #rows = :rows, #bytes = :bytes, truncated = :tr, files = :files, completed_at = :now, expires_at = :exp, #ttl = :ttl",
            "#st = :running",
            &[
                (":done", s(Status::Succeeded.as_str())),
                (":running", s(Status::Running.as_str())),
                (":rows", n(p.rows)),
                (":bytes", n(p.bytes)),
                (":tr", AttributeValue::Bool(p.truncated)),
                (":files", n(p.files)),
                (":now", s(&now.to_string())),
                (":exp", s(&now.plus_seconds(DOWNLOAD_HOURS * 3600).to_string())),
                (":ttl", n(keep_until(now))),
            ],
        )
        .await
    }

    async fn fail(
        &self,
        tenant: &TenantId,
        id: &str,
        code: &str,
        message: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.job_update(
            tenant,
            id,
            "SET #st = :failed, error_code = :code, error_message = :msg, completed_at = :now, #ttl = :ttl",
            "#st = :running OR #st = :queued",
            &[
                (":failed", s(Status::Failed.as_str())),
                (":running", s(Status::Running.as_str())),
                (":queued", s(Status::Queued.as_str())),
                (":code", s(code)),
                (":msg", s(message)),
                (":now", s(&now.to_string())),
                (":ttl", n(keep_until(now))),
            ],
        )
        .await
    }

    async fn set_plan(&self, tenant: &TenantId, id: &str, parts: &[Range]) -> Result<bool, StoreError> {
        self.job_update(
            tenant,
            id,
            "SET #plan = :plan",
            "#st = :running AND attribute_not_exists(#plan)",
            &[(":plan", s(&plan_text(parts))), (":running", s(Status::Running.as_str()))],
        )
        .await
    }

    async fn parts(&self, tenant: &TenantId, id: &str) -> Result<Vec<Part>, StoreError> {
        self.job_parts(tenant, id).await
    }

    async fn claim_part(
        &self,
        tenant: &TenantId,
        id: &str,
        index: u32,
        range: Range,
        now: Timestamp,
    ) -> Result<Option<Part>, StoreError> {
        self.claim_job_part(tenant, id, index, range, now).await
    }

    async fn save_part(&self, tenant: &TenantId, id: &str, part: &Part) -> Result<bool, StoreError> {
        self.save_job_part(tenant, id, part).await
    }

    async fn expire(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        self.job_update(
            tenant,
            id,
            "SET #st = :expired",
            "#st = :done",
            &[(":expired", s(Status::Expired.as_str())), (":done", s(Status::Succeeded.as_str()))],
        )
        .await
    }
}

impl Table {
    /// One conditional change of a job; `false` when its state does not allow it.
    async fn job_update(
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
        if set.contains("#ttl") {
            names.insert("#ttl".into(), TTL.into());
        }
        if set.contains("#plan") {
            names.insert("#plan".into(), "plan".into());
        }
        let values: HashMap<String, AttributeValue> =
            values.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        let run = retry(&self.backoff, "UpdateItem export job", || {
            self.client
                .update_item()
                .table_name(&self.name)
                .set_key(Some(job_key(tenant, id)))
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
            Err(e) => Err(store_error(&e)),
        }
    }
}
