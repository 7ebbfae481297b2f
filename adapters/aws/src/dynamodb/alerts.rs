//! Alert rules, their states, and the all-or-nothing changes a tenant's worker makes
//! (docs/design.md, "Alerts"); deliveries are in [`super::deliveries`], the agenda in
//! [`super::agenda`].
//!
//! A tenant's rules, their count and their states share the partition `AL#{tenant}`, so
//! a creation moves the rule and the count in one transaction (the limit holds under
//! concurrent creations). Applying a matched event is another: its agenda entry goes, its
//! applied marker is written (a stream record read again finds it), each rule state it
//! moves is replaced at the version it was read at, and each notification is stored with
//! its first attempt on the agenda. Markers and deliveries expire through the table's TTL.

use crate::dynamodb::agenda::{attempt_key, flush_key, matched_key};
use crate::dynamodb::deliveries::delivery_item;
use crate::dynamodb::export_jobs::TTL;
use crate::dynamodb::values::{Item, get_n, get_s, key, n, s};
use crate::dynamodb::{Table, keys, store_error};
use crate::retry::retry;
use async_trait::async_trait;
use audit::domain::alert::{MAX_RULES_PER_TENANT, Rule};
use audit::domain::alerting::{Folded, RuleState};
use audit::domain::delivery::{DeadLetter, Summary};
use audit::domain::tenant::TenantId;
use audit::domain::timestamp::Timestamp;
use audit::ports::{AlertRules, AlertState, Applied, Matched, RuleChange, RuleWriteError, StoreError, StoredRule};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// How long a marker outlives its stream record: a stream keeps records 24 hours.
const MARKER_SECONDS: i64 = 2 * 24 * 3600;

/// Attribute names of the rule items (short: each is paid for on every write).
pub(super) mod attr {
    /// Rule: `Rule::to_stored()` as JSON text.
    pub const DOC: &str = "doc";
    /// Rule: `updated_at` text, what a replace is conditioned on.
    pub const UPDATED: &str = "ua";
    /// Rule summary: last attempt, last delivered (µs).
    pub const LAST_ATTEMPT: &str = "sa";
    pub const LAST_DELIVERED: &str = "so";
    /// Rule summary: last error and its time (µs).
    pub const LAST_ERROR: &str = "se";
    pub const LAST_ERROR_AT: &str = "sea";
    /// Rule summary: failed attempts, dead letters, last dead letter (JSON).
    pub const FAILED: &str = "sf";
    pub const DEAD: &str = "sd";
    pub const LAST_DEAD: &str = "sdl";
    /// Rule count.
    pub const COUNT: &str = "n";
    /// Rule state: JSON, and its version.
    pub const STATE: &str = "st";
    pub const VERSION: &str = "v";
}

/// The stored form of [`RuleState`] (times in µs).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateDoc {
    minutes: Vec<(i64, u32)>,
    last: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bucket: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    folded: Option<FoldedDoc>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FoldedDoc {
    count: u64,
    named: Vec<String>,
    flush: i64,
}

fn state_to_json(state: &RuleState) -> String {
    let doc = StateDoc {
        minutes: state.minutes.clone(),
        last: state.last_notified.map(Timestamp::micros),
        bucket: state.bucket.map(Timestamp::micros),
        folded: state.folded.as_ref().map(|f| FoldedDoc {
            count: f.count,
            named: f.named.clone(),
            flush: f.flush_at.micros(),
        }),
    };
    serde_json::to_string(&doc).unwrap_or_else(|_| unreachable!("integers and strings always serialize"))
}

fn state_from_json(text: &str) -> Result<RuleState, String> {
    let doc: StateDoc = serde_json::from_str(text).map_err(|e| format!("rule state: {e}"))?;
    let time = |m: i64| Timestamp::from_micros(m).map_err(|_| "rule state: bad time".to_owned());
    Ok(RuleState {
        minutes: doc.minutes,
        last_notified: doc.last.map(time).transpose()?,
        bucket: doc.bucket.map(time).transpose()?,
        folded: match doc.folded {
            Some(f) => Some(Folded { count: f.count, named: f.named, flush_at: time(f.flush)? }),
            None => None,
        },
    })
}

pub(super) fn corrupt(what: &str, sk: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("stored {what} {sk}: {why}"))
}

pub(super) fn rule_key(tenant: &TenantId, id: &str) -> Item {
    key(&keys::alerts_pk(tenant), &keys::rule_sk(id))
}

fn state_key(tenant: &TenantId, rule_id: &str) -> Item {
    key(&keys::alerts_pk(tenant), &keys::rule_state_sk(rule_id))
}

fn count_key(tenant: &TenantId) -> Item {
    key(&keys::alerts_pk(tenant), keys::RULE_COUNT_SK)
}

fn stored_doc(rule: &Rule) -> String {
    rule.to_stored().to_string()
}

fn rule_item(rule: &Rule) -> Item {
    let mut item = rule_key(&rule.tenant_id, &rule.id);
    item.insert(attr::DOC.into(), s(&stored_doc(rule)));
    item.insert(attr::UPDATED.into(), s(&rule.updated_at.to_string()));
    item
}

fn micros(item: &Item, name: &str, sk: &str) -> Result<Option<Timestamp>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(_) => get_n::<i64>(item, name)
            .and_then(|m| Timestamp::from_micros(m).ok())
            .map(Some)
            .ok_or_else(|| corrupt("rule", sk, format!("bad {name}"))),
    }
}

fn dead_letter_from_json(text: &str) -> Option<DeadLetter> {
    let v: Value = serde_json::from_str(text).ok()?;
    Some(DeadLetter {
        id: v.get("id")?.as_str()?.to_owned(),
        at: Timestamp::from_micros(v.get("at")?.as_i64()?).ok()?,
        attempts: u32::try_from(v.get("attempts")?.as_u64()?).ok()?,
        event_ids: serde_json::from_value(v.get("event_ids")?.clone()).ok()?,
        error: v.get("error")?.as_str()?.to_owned(),
    })
}

/// A rule item read back: the rule (which must be the one its key names) and its summary.
fn rule_from_item(tenant: &TenantId, item: &Item) -> Result<StoredRule, StoreError> {
    let sk = get_s(item, keys::SK).map_or("?", String::as_str);
    let doc = get_s(item, attr::DOC).ok_or_else(|| corrupt("rule", sk, "no doc"))?;
    let value: Value = serde_json::from_str(doc).map_err(|e| corrupt("rule", sk, e))?;
    let rule = Rule::from_stored(&value).map_err(|e| corrupt("rule", sk, e))?;
    if rule.tenant_id != *tenant || keys::rule_sk(&rule.id) != sk {
        return Err(corrupt("rule", sk, "its doc names another rule"));
    }
    let error = match (get_s(item, attr::LAST_ERROR), micros(item, attr::LAST_ERROR_AT, sk)?) {
        (Some(e), Some(at)) => Some((at, e.clone())),
        _ => None,
    };
    let last_dead_letter = match get_s(item, attr::LAST_DEAD) {
        None => None,
        Some(t) => Some(dead_letter_from_json(t).ok_or_else(|| corrupt("rule", sk, "bad last dead letter"))?),
    };
    let summary = Summary {
        last_attempt_at: micros(item, attr::LAST_ATTEMPT, sk)?,
        last_delivered_at: micros(item, attr::LAST_DELIVERED, sk)?,
        last_error: error,
        failed_attempts: get_n(item, attr::FAILED).unwrap_or(0),
        dead_letters: get_n(item, attr::DEAD).unwrap_or(0),
        last_dead_letter,
    };
    Ok(StoredRule { rule, summary })
}

/// How a transaction ended.
pub(super) enum Transacted {
    Done,
    /// Cancelled by conditions: for each item, whether its own condition failed.
    Failed(Vec<bool>),
}

/// Cancellation reasons that mean nothing was applied and the same request may succeed.
const TRANSIENT_CANCELLATIONS: &[&str] =
    &["TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"];

pub(super) fn built<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Refused(e.to_string()))
}

fn names(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

impl Table {
    /// Runs one TransactWriteItems, again while it is cancelled by a conflicting
    /// transaction or throttling (nothing was applied then). Also says whether an
    /// attempt may have been applied before failing (then a condition failing
    /// afterwards may be that attempt's own doing).
    pub(super) async fn transact(
        &self,
        what: &str,
        items: Vec<TransactWriteItem>,
    ) -> Result<(Transacted, bool), StoreError> {
        let mut ambiguous = false;
        let mut attempt = 1;
        loop {
            let run = retry(&self.backoff, what, || {
                self.client.transact_write_items().set_transact_items(Some(items.clone())).send()
            })
            .await;
            ambiguous |= run.ambiguous;
            let err = match run.result {
                Ok(_) => return Ok((Transacted::Done, ambiguous)),
                Err(err) => err,
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(c)) = err.as_service_error() else {
                return Err(store_error(&err));
            };
            let codes: Vec<&str> = c.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None")).collect();
            if codes.contains(&"ConditionalCheckFailed") {
                return Ok((
                    Transacted::Failed(codes.iter().map(|c| *c == "ConditionalCheckFailed").collect()),
                    ambiguous,
                ));
            }
            if !codes.iter().any(|c| TRANSIENT_CANCELLATIONS.contains(c)) {
                return Err(StoreError::Refused(format!("{what} cancelled: {codes:?}")));
            }
            if attempt >= self.backoff.attempts {
                return Err(StoreError::Unavailable(format!("{what} kept being cancelled: {codes:?}")));
            }
            tracing::debug!(what, attempt, ?codes, "transaction cancelled, retrying");
            tokio::time::sleep(self.backoff.delay(attempt)).await;
            attempt += 1;
        }
    }
}

#[async_trait]
impl AlertRules for Table {
    async fn create(&self, rule: &Rule) -> Result<(), RuleWriteError> {
        let put = built(
            Put::builder()
                .table_name(&self.name)
                .set_item(Some(rule_item(rule)))
                .condition_expression("attribute_not_exists(pk)")
                .build(),
        )?;
        let count = built(
            Update::builder()
                .table_name(&self.name)
                .set_key(Some(count_key(&rule.tenant_id)))
                .update_expression("ADD #n :one")
                .condition_expression("attribute_not_exists(#n) OR #n < :max")
                .expression_attribute_names("#n", attr::COUNT)
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":max", n(MAX_RULES_PER_TENANT))
                .build(),
        )?;
        let items =
            vec![TransactWriteItem::builder().put(put).build(), TransactWriteItem::builder().update(count).build()];
        match self.transact("TransactWriteItems create rule", items).await? {
            (Transacted::Done, _) => Ok(()),
            // Rule ids are fresh UUIDs: an existing one is an earlier attempt's own.
            (Transacted::Failed(f), true) if f.first() == Some(&true) => Ok(()),
            (Transacted::Failed(f), _) if f.get(1) == Some(&true) => Err(RuleWriteError::Limit),
            (Transacted::Failed(_), _) => Err(StoreError::Refused(format!("rule {} exists already", rule.id)).into()),
        }
    }

    async fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<StoredRule>, StoreError> {
        let item = self.get_one("GetItem rule", rule_key(tenant, id)).await?;
        item.map(|it| rule_from_item(tenant, &it)).transpose()
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<StoredRule>, StoreError> {
        let items = self.query_partition(&keys::alerts_pk(tenant), Some(keys::RULE_SK_PREFIX)).await?;
        items.iter().map(|it| rule_from_item(tenant, it)).collect()
    }

    async fn replace(&self, rule: &Rule, expected: Timestamp) -> Result<bool, StoreError> {
        let doc = stored_doc(rule);
        let updated = rule.updated_at.to_string();
        let run = retry(&self.backoff, "UpdateItem rule", || {
            self.client
                .update_item()
                .table_name(&self.name)
                .set_key(Some(rule_key(&rule.tenant_id, &rule.id)))
                .update_expression("SET #doc = :doc, #ua = :ua")
                .condition_expression("#ua = :expected")
                .expression_attribute_names("#doc", attr::DOC)
                .expression_attribute_names("#ua", attr::UPDATED)
                .expression_attribute_values(":doc", s(&doc))
                .expression_attribute_values(":ua", s(&updated))
                .expression_attribute_values(":expected", s(&expected.to_string()))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
        })
        .await;
        match run.result {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                // After an attempt that may have applied, the rule as it stands tells.
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => Ok(run.ambiguous
                    && c.item().is_some_and(|old| {
                        get_s(old, attr::UPDATED) == Some(&updated) && get_s(old, attr::DOC) == Some(&doc)
                    })),
                _ => Err(store_error(&e)),
            },
        }
    }

    async fn delete(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        let rule = built(
            Delete::builder()
                .table_name(&self.name)
                .set_key(Some(rule_key(tenant, id)))
                .condition_expression("attribute_exists(pk)")
                .build(),
        )?;
        let count = built(
            Update::builder()
                .table_name(&self.name)
                .set_key(Some(count_key(tenant)))
                .update_expression("ADD #n :minus_one")
                .expression_attribute_names("#n", attr::COUNT)
                .expression_attribute_values(":minus_one", n(-1))
                .build(),
        )?;
        let state = built(Delete::builder().table_name(&self.name).set_key(Some(state_key(tenant, id))).build())?;
        let items = vec![
            TransactWriteItem::builder().delete(rule).build(),
            TransactWriteItem::builder().update(count).build(),
            TransactWriteItem::builder().delete(state).build(),
        ];
        match self.transact("TransactWriteItems delete rule", items).await? {
            (Transacted::Done, _) => Ok(true),
            // Gone: deleted meanwhile, or by an attempt of ours whose answer was lost.
            (Transacted::Failed(_), ambiguous) => Ok(ambiguous),
        }
    }
}

/// The transaction items of one rule change: its state at the version it was read, and
/// what it sets going (a delivery with its first attempt, a flush scheduled or cancelled).
fn change_items(table: &str, tenant: &TenantId, c: &RuleChange) -> Result<Vec<TransactWriteItem>, StoreError> {
    let st = s(&state_to_json(&c.next));
    let state = if c.version == 0 {
        let mut item = state_key(tenant, &c.rule_id);
        item.insert(attr::STATE.into(), st);
        item.insert(attr::VERSION.into(), n(1));
        let put =
            Put::builder().table_name(table).set_item(Some(item)).condition_expression("attribute_not_exists(pk)");
        TransactWriteItem::builder().put(built(put.build())?).build()
    } else {
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(state_key(tenant, &c.rule_id)))
            .update_expression("SET #st = :st, #v = :next")
            .condition_expression("#v = :v")
            .set_expression_attribute_names(Some(names(&[("#st", attr::STATE), ("#v", attr::VERSION)])))
            .expression_attribute_values(":st", st)
            .expression_attribute_values(":v", n(c.version))
            .expression_attribute_values(":next", n(c.version.saturating_add(1)));
        TransactWriteItem::builder().update(built(update.build())?).build()
    };
    let mut items = vec![state];
    if let Some(d) = &c.delivery {
        if d.tenant_id != *tenant || d.rule_id != c.rule_id {
            return Err(StoreError::Refused(format!("a delivery of another rule committed to {}", c.rule_id)));
        }
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(delivery_item(d)))
            .condition_expression("attribute_not_exists(pk)");
        items.push(TransactWriteItem::builder().put(built(put.build())?).build());
        let first =
            Put::builder().table_name(table).set_item(Some(attempt_key(tenant, d.created_at, &d.rule_id, &d.id)));
        items.push(TransactWriteItem::builder().put(built(first.build())?).build());
    }
    if let Some(at) = c.schedule_flush {
        let put = Put::builder().table_name(table).set_item(Some(flush_key(tenant, at, &c.rule_id)));
        items.push(TransactWriteItem::builder().put(built(put.build())?).build());
    }
    if let Some(at) = c.cancel_flush {
        let delete = Delete::builder().table_name(table).set_key(Some(flush_key(tenant, at, &c.rule_id)));
        items.push(TransactWriteItem::builder().delete(built(delete.build())?).build());
    }
    Ok(items)
}

/// Which rules' states refused a cancelled transaction: the items of `changes` start at
/// `offset`, each rule's state first.
fn state_conflicts(
    failed: &[bool],
    offset: usize,
    changes: &[RuleChange],
    table: &str,
    tenant: &TenantId,
) -> Vec<String> {
    let mut at = offset;
    let mut out = Vec::new();
    for c in changes {
        if failed.get(at).copied().unwrap_or(false) {
            out.push(c.rule_id.clone());
        }
        at += change_items(table, tenant, c).map_or(1, |i| i.len());
    }
    out
}

#[async_trait]
impl AlertState for Table {
    async fn state(&self, tenant: &TenantId, rule_id: &str) -> Result<(RuleState, u64), StoreError> {
        let Some(item) = self.get_one("GetItem rule state", state_key(tenant, rule_id)).await? else {
            return Ok((RuleState::default(), 0));
        };
        let sk = keys::rule_state_sk(rule_id);
        let text = get_s(&item, attr::STATE).ok_or_else(|| corrupt("rule state", &sk, "no state"))?;
        let version = get_n(&item, attr::VERSION).ok_or_else(|| corrupt("rule state", &sk, "no version"))?;
        Ok((state_from_json(text).map_err(|e| corrupt("rule state", &sk, e))?, version))
    }

    async fn apply(&self, matched: &Matched, changes: &[RuleChange]) -> Result<Applied, StoreError> {
        let tenant = &matched.event.event.tenant_id;
        let entry = built(
            Delete::builder()
                .table_name(&self.name)
                .set_key(Some(matched_key(matched)))
                .condition_expression("attribute_exists(pk)")
                .build(),
        )?;
        let mut marker = key(&keys::applied_pk(tenant), &format!("{}#{}", matched.event.event.id, matched.part));
        marker.insert(TTL.into(), n(Timestamp::now().plus_seconds(MARKER_SECONDS).micros().div_euclid(1_000_000)));
        let marker = built(
            Put::builder()
                .table_name(&self.name)
                .set_item(Some(marker))
                .condition_expression("attribute_not_exists(pk)")
                .build(),
        )?;
        let mut items =
            vec![TransactWriteItem::builder().delete(entry).build(), TransactWriteItem::builder().put(marker).build()];
        for c in changes {
            items.extend(change_items(&self.name, tenant, c)?);
        }
        match self.transact("TransactWriteItems apply matched event", items).await? {
            (Transacted::Done, _) => Ok(Applied::Done),
            // Our own earlier attempt may have applied it, its answer lost: either way it is done.
            (Transacted::Failed(f), _) if f.first() == Some(&true) => Ok(Applied::Gone),
            (Transacted::Failed(f), _) if f.get(1) == Some(&true) => {
                // Applied before (a record read again): the entry goes, nothing else.
                self.delete_entry("DeleteItem replayed agenda entry", matched_key(matched)).await?;
                Ok(Applied::Replayed)
            }
            (Transacted::Failed(f), _) => {
                let conflicts = state_conflicts(&f, 2, changes, &self.name, tenant);
                if conflicts.is_empty() {
                    // A delivery that exists already: decided before, by a marker since expired.
                    self.delete_entry("DeleteItem replayed agenda entry", matched_key(matched)).await?;
                    Ok(Applied::Replayed)
                } else {
                    Ok(Applied::Conflict(conflicts))
                }
            }
        }
    }

    async fn flush(
        &self,
        tenant: &TenantId,
        rule_id: &str,
        due: Timestamp,
        change: Option<&RuleChange>,
    ) -> Result<Applied, StoreError> {
        let entry = built(
            Delete::builder()
                .table_name(&self.name)
                .set_key(Some(flush_key(tenant, due, rule_id)))
                .condition_expression("attribute_exists(pk)")
                .build(),
        )?;
        let mut items = vec![TransactWriteItem::builder().delete(entry).build()];
        let changes: Vec<RuleChange> = change.into_iter().cloned().collect();
        for c in &changes {
            items.extend(change_items(&self.name, tenant, c)?);
        }
        match self.transact("TransactWriteItems flush", items).await? {
            (Transacted::Done, _) => Ok(Applied::Done),
            (Transacted::Failed(f), _) if f.first() == Some(&true) => Ok(Applied::Gone),
            (Transacted::Failed(f), _) => {
                let conflicts = state_conflicts(&f, 1, &changes, &self.name, tenant);
                if conflicts.is_empty() { Ok(Applied::Replayed) } else { Ok(Applied::Conflict(conflicts)) }
            }
        }
    }
}

impl Table {
    /// Deletes one item, whether or not it is there.
    pub(super) async fn delete_entry(&self, what: &str, key: Item) -> Result<(), StoreError> {
        let run = retry(&self.backoff, what, || {
            self.client.delete_item().table_name(&self.name).set_key(Some(key.clone())).send()
        })
        .await;
        run.result.map(|_| ()).map_err(|e| store_error(&e))
    }
}

#[cfg(test)]
#[path = "alerts_tests.rs"]
mod tests;
