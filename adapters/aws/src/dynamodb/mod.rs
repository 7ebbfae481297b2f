//! The DynamoDB adapter: one table holds the events and their indexes, the tenant
//! registry (with each tenant's settings and archive state), the catalogs, the export
//! jobs, and the alert rules with their states and deliveries. [`Table`] implements every
//! table-backed port; the key design ([`keys`]), the item mapping ([`item`]) and the
//! expressions ([`expr`]) stay in here, and [`stream`] reads the table's stream records.
//!
//! Every call goes through [`crate::retry`], which retries throttling and 5xx with
//! backoff and tells an idempotent write whether an earlier attempt may have applied.

pub mod agenda;
pub mod alerts;
pub mod archive_registry;
pub mod catalogs;
pub mod cost;
pub mod deliveries;
pub mod doc;
pub mod events;
pub mod export_jobs;
pub mod export_parts;
pub mod expr;
pub mod item;
pub mod keys;
pub mod stream;
pub mod tenants;
pub mod terms;
pub mod turns;
pub mod values;

use crate::retry::{Backoff, Class, HasStatus, classify, retry};
use async_trait::async_trait;
use audit::domain::tenant::{TenantId, TenantSettings};
use audit::ports::{Health, StoreError};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{KeysAndAttributes, WriteRequest};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;
use values::{Item, s};

/// The table, with what this process remembers of it.
pub struct Table {
    client: Client,
    name: String,
    backoff: Backoff,
    /// Each tenant's settings and when they were read.
    settings: Mutex<HashMap<TenantId, (Instant, TenantSettings)>>,
    /// Tenants this process has registered.
    registered: Mutex<HashSet<TenantId>>,
}

impl Table {
    #[must_use]
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
            backoff: Backoff::default(),
            settings: Mutex::new(HashMap::new()),
            registered: Mutex::new(HashSet::new()),
        }
    }

    /// Replaces the retry policy (the default suits Lambda's 30 s budget).
    #[must_use]
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every item of one partition (a catalog, a directory, the tenant registry),
    /// optionally those whose sort key starts with `prefix`.
    async fn query_partition(&self, pk: &str, prefix: Option<&str>) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let run = retry(&self.backoff, "Query partition", || {
                let mut q = self
                    .client
                    .query()
                    .table_name(&self.name)
                    .expression_attribute_names("#pk", keys::PK)
                    .expression_attribute_values(":pk", s(pk))
                    .set_exclusive_start_key(start.clone());
                q = match prefix {
                    Some(p) => q
                        .key_condition_expression("#pk = :pk AND begins_with(#sk, :p)")
                        .expression_attribute_names("#sk", keys::SK)
                        .expression_attribute_values(":p", s(p)),
                    None => q.key_condition_expression("#pk = :pk"),
                };
                q.send()
            })
            .await;
            let page = run.result.map_err(|e| store_error(&e))?;
            out.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(out);
            }
        }
    }
}

impl Table {
    /// Writes `requests` (puts and deletes) with BatchWriteItem, 25 at a time, retrying
    /// what DynamoDB leaves unprocessed. One batch may not name a key twice: the caller
    /// sends each item once.
    pub(crate) async fn batch_write(&self, what: &str, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        for chunk in requests.chunks(25) {
            let mut left = chunk.to_vec();
            let mut attempt = 0;
            while !left.is_empty() {
                let items = HashMap::from([(self.name.clone(), left.clone())]);
                let run = retry(&self.backoff, what, || {
                    self.client.batch_write_item().set_request_items(Some(items.clone())).send()
                })
                .await;
                let out = run.result.map_err(|e| store_error(&e))?;
                left = out.unprocessed_items.and_then(|mut u| u.remove(&self.name)).unwrap_or_default();
                if !left.is_empty() {
                    attempt += 1;
                    if attempt >= self.backoff.attempts {
                        return Err(StoreError::Unavailable(format!("{what}: {} items left unprocessed", left.len())));
                    }
                    tokio::time::sleep(self.backoff.delay(attempt)).await;
                }
            }
        }
        Ok(())
    }

    /// Reads the attributes `fields` of the items at `keys` with BatchGetItem, 100 at a
    /// time, retrying what DynamoDB leaves unprocessed; the items found, in no particular
    /// order.
    pub(crate) async fn batch_read(
        &self,
        what: &str,
        keys: Vec<Item>,
        consistent: bool,
        fields: &[&str],
    ) -> Result<Vec<Item>, StoreError> {
        let projection = (0..fields.len()).map(|i| format!("#f{i}")).collect::<Vec<_>>().join(", ");
        let names: HashMap<String, String> =
            fields.iter().enumerate().map(|(i, f)| (format!("#f{i}"), (*f).to_string())).collect();
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let mut left = chunk.to_vec();
            let mut attempt = 0;
            while !left.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(left.clone()))
                    .consistent_read(consistent)
                    .projection_expression(&projection)
                    .set_expression_attribute_names(Some(names.clone()))
                    .build()
                    .map_err(|e| StoreError::Refused(e.to_string()))?;
                let run = retry(&self.backoff, what, || {
                    self.client.batch_get_item().request_items(&self.name, request.clone()).send()
                })
                .await;
                let out = run.result.map_err(|e| store_error(&e))?;
                found.extend(out.responses().and_then(|r| r.get(&self.name)).into_iter().flatten().cloned());
                left = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.name))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
                if !left.is_empty() {
                    attempt += 1;
                    if attempt >= self.backoff.attempts {
                        return Err(StoreError::Unavailable(format!("{what} kept returning unprocessed keys")));
                    }
                    tokio::time::sleep(self.backoff.delay(attempt)).await;
                }
            }
        }
        Ok(found)
    }
}

/// A failed SDK call as the ports see it: unavailable (retry later) or refused.
pub(crate) fn store_error<E, R>(err: &SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: HasStatus + std::fmt::Debug,
{
    let text = match err {
        SdkError::ServiceError(s) => {
            format!("{}: {}", s.err().code().unwrap_or("?"), s.err().message().unwrap_or(""))
        }
        other => format!("{other:?}"),
    };
    if classify(err) == Class::Permanent { StoreError::Refused(text) } else { StoreError::Unavailable(text) }
}

impl Table {
    /// One item, read consistently (what was just written must be seen), retried.
    pub(super) async fn get_one(&self, what: &str, key: Item) -> Result<Option<Item>, StoreError> {
        let run = retry(&self.backoff, what, || {
            self.client.get_item().table_name(&self.name).set_key(Some(key.clone())).consistent_read(true).send()
        })
        .await;
        Ok(run.result.map_err(|e| store_error(&e))?.item)
    }
}

#[async_trait]
impl Health for Table {
    async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(values::key(keys::TENANTS_PK, "-")))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(&e))
    }
}
