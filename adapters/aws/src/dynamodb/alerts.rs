//! Alert rules, their threshold states, applied-event markers and deliveries (ALERTS.md,
//! "DynamoDB items").
//!
//! A tenant's rules, their count and their states share the partition `AL#{tenant}`, so
//! a creation moves the rule and the count in one transaction (the limit holds under
//! concurrent creations) and a match moves the marker, the state and the delivery in
//! another (a replayed stream record finds its marker; two batches racing on one state
//! see their versions differ). Markers and deliveries expire through the table's TTL.

use crate::dynamodb::export_jobs::TTL;
use crate::dynamodb::values::{Item, get_n, get_s, key, n, s};
use crate::dynamodb::{Table, keys, store_error};
use crate::retry::retry;
use async_trait::async_trait;
use audit::domain::alert::{MAX_RULES_PER_TENANT, Rule};
use audit::domain::delivery::{Attempt, DeadLetter, Delivery, Status, Summary};
use audit::domain::tenant::TenantId;
use audit::domain::timestamp::Timestamp;
use audit::ports::{AlertRules, AlertState, Commit, Deliveries, RuleWriteError, StoreError, StoredRule};
use audit::usecases::alerts::RuleState;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;

/// How long a marker outlives its stream record: a stream keeps records 24 hours.
const MARKER_SECONDS: i64 = 2 * 24 * 3600;
/// How long a delivery is kept after it was created: past every retry schedule.
const DELIVERY_SECONDS: i64 = 30 * 24 * 3600;

/// Attribute names of the alert items (short: each is paid for on every write).
mod attr {
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
    /// Delivery.
    pub const BODY: &str = "body";
    pub const EVENTS: &str = "ev";
    pub const STATUS: &str = "st";
    pub const ATTEMPTS: &str = "n";
    pub const ERROR: &str = "err";
    pub const CREATED: &str = "ca";
    pub const NEXT: &str = "next";
}

/// The stored form of [`RuleState`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateDoc {
    minutes: Vec<(i64, u32)>,
    last: Option<i64>,
}

fn state_to_json(state: &RuleState) -> String {
    let doc = StateDoc { minutes: state.minutes.clone(), last: state.last_notified.map(Timestamp::micros) };
    serde_json::to_string(&doc).unwrap_or_else(|_| unreachable!("integers always serialize"))
}

fn state_from_json(text: &str) -> Result<RuleState, String> {
    let doc: StateDoc = serde_json::from_str(text).map_err(|e| format!("rule state: {e}"))?;
    let last_notified =
        doc.last.map(Timestamp::from_micros).transpose().map_err(|_| "rule state: bad last".to_owned())?;
    Ok(RuleState { minutes: doc.minutes, last_notified })
}

fn corrupt(what: &str, sk: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("stored {what} {sk}: {why}"))
}

fn rule_key(tenant: &TenantId, id: &str) -> Item {
    key(&keys::alerts_pk(tenant), &keys::rule_sk(id))
}

fn state_key(tenant: &TenantId, rule_id: &str) -> Item {
    key(&keys::alerts_pk(tenant), &keys::rule_state_sk(rule_id))
}

fn count_key(tenant: &TenantId) -> Item {
    key(&keys::alerts_pk(tenant), keys::RULE_COUNT_SK)
}

fn delivery_key(tenant: &TenantId, rule_id: &str, id: &str) -> Item {
    key(&keys::deliveries_pk(tenant, rule_id), id)
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

fn dead_letter_json(d: &DeadLetter) -> String {
    json!({"id": d.id, "at": d.at.micros(), "attempts": d.attempts, "event_ids": d.event_ids, "error": d.error})
        .to_string()
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

fn delivery_item(d: &Delivery) -> Item {
    let mut item = delivery_key(&d.tenant_id, &d.rule_id, &d.id);
    item.insert(attr::BODY.into(), s(&d.body));
    item.insert(attr::EVENTS.into(), s(&json!(d.event_ids).to_string()));
    item.insert(attr::STATUS.into(), s(status_text(d.status)));
    item.insert(attr::ATTEMPTS.into(), n(d.attempts));
    if let Some(e) = &d.last_error {
        item.insert(attr::ERROR.into(), s(e));
    }
    item.insert(attr::CREATED.into(), n(d.created_at.micros()));
    item.insert(TTL.into(), n(d.created_at.plus_seconds(DELIVERY_SECONDS).micros().div_euclid(1_000_000)));
    item
}

fn status_text(status: Status) -> &'static str {
    match status {
        Status::Pending => "pending",
        Status::Retrying => "retrying",
        Status::Delivered => "delivered",
        Status::Dead => "dead",
    }
}

fn delivery_from_item(tenant: &TenantId, rule_id: &str, item: &Item) -> Result<Delivery, StoreError> {
    let id = get_s(item, keys::SK).ok_or_else(|| corrupt("delivery", "?", "no sort key"))?;
    let bad = |what: &str| corrupt("delivery", id, format!("bad {what}"));
    let text = |name: &str| get_s(item, name).ok_or_else(|| bad(name));
    let status = serde_json::from_value(Value::String(text(attr::STATUS)?.clone())).map_err(|_| bad(attr::STATUS))?;
    Ok(Delivery {
        id: id.clone(),
        tenant_id: tenant.clone(),
        rule_id: rule_id.to_owned(),
        event_ids: serde_json::from_str(text(attr::EVENTS)?).map_err(|_| bad(attr::EVENTS))?,
        body: text(attr::BODY)?.clone(),
        created_at: get_n::<i64>(item, attr::CREATED)
            .and_then(|m| Timestamp::from_micros(m).ok())
            .ok_or_else(|| bad(attr::CREATED))?,
        status,
        attempts: get_n(item, attr::ATTEMPTS).ok_or_else(|| bad(attr::ATTEMPTS))?,
        last_error: get_s(item, attr::ERROR).cloned(),
    })
}

/// How a transaction ended.
enum Transacted {
    Done,
    /// Cancelled by conditions: for each item, whether its own condition failed.
    Failed(Vec<bool>),
}

/// Cancellation reasons that mean nothing was applied and the same request may succeed.
const TRANSIENT_CANCELLATIONS: &[&str] =
    &["TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"];

fn built<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
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
    async fn transact(&self, what: &str, items: Vec<TransactWriteItem>) -> Result<(Transacted, bool), StoreError> {
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

    async fn get_one(&self, what: &str, key: Item) -> Result<Option<Item>, StoreError> {
        let run = retry(&self.backoff, what, || {
            self.client.get_item().table_name(&self.name).set_key(Some(key.clone())).consistent_read(true).send()
        })
        .await;
        Ok(run.result.map_err(|e| store_error(&e))?.item)
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

    async fn commit(
        &self,
        tenant: &TenantId,
        rule_id: &str,
        event_id: &str,
        version: u64,
        next: &RuleState,
        delivery: Option<&Delivery>,
    ) -> Result<Commit, StoreError> {
        if delivery.is_some_and(|d| d.tenant_id != *tenant || d.rule_id != rule_id) {
            return Err(StoreError::Refused(format!("a delivery of another rule committed to {rule_id}")));
        }
        let mut marker = key(&keys::applied_pk(tenant, rule_id), event_id);
        marker.insert(TTL.into(), n(Timestamp::now().plus_seconds(MARKER_SECONDS).micros().div_euclid(1_000_000)));
        let marker = built(
            Put::builder()
                .table_name(&self.name)
                .set_item(Some(marker))
                .condition_expression("attribute_not_exists(pk)")
                .build(),
        )?;
        let st = s(&state_to_json(next));
        let state = if version == 0 {
            let mut item = state_key(tenant, rule_id);
            item.insert(attr::STATE.into(), st);
            item.insert(attr::VERSION.into(), n(1));
            let put = Put::builder().table_name(&self.name).set_item(Some(item));
            TransactWriteItem::builder().put(built(put.condition_expression("attribute_not_exists(pk)").build())?)
        } else {
            let update = Update::builder()
                .table_name(&self.name)
                .set_key(Some(state_key(tenant, rule_id)))
                .update_expression("SET #st = :st, #v = :next")
                .condition_expression("#v = :v")
                .set_expression_attribute_names(Some(names(&[("#st", attr::STATE), ("#v", attr::VERSION)])))
                .expression_attribute_values(":st", st)
                .expression_attribute_values(":v", n(version))
                .expression_attribute_values(":next", n(version.saturating_add(1)));
            TransactWriteItem::builder().update(built(update.build())?)
        };
        let mut items = vec![TransactWriteItem::builder().put(marker).build(), state.build()];
        if let Some(d) = delivery {
            let put = Put::builder()
                .table_name(&self.name)
                .set_item(Some(delivery_item(d)))
                .condition_expression("attribute_not_exists(pk)");
            items.push(TransactWriteItem::builder().put(built(put.build())?).build());
        }
        Ok(match self.transact("TransactWriteItems commit rule state", items).await? {
            (Transacted::Done, _) => Commit::Done,
            (Transacted::Failed(f), _) => match f.as_slice() {
                [true, ..] => Commit::Replayed,
                [_, true, ..] => Commit::Conflict,
                // A delivery's id is the rule's and the event's: it exists only if this
                // event was applied already.
                _ => Commit::Replayed,
            },
        })
    }
}

#[async_trait]
impl Deliveries for Table {
    async fn delivery(&self, tenant: &TenantId, rule_id: &str, id: &str) -> Result<Option<Delivery>, StoreError> {
        let item = self.get_one("GetItem delivery", delivery_key(tenant, rule_id, id)).await?;
        item.map(|it| delivery_from_item(tenant, rule_id, &it)).transpose()
    }

    async fn record(&self, delivery: &Delivery, attempt: &Attempt) -> Result<(), StoreError> {
        let attempts = delivery.attempts.saturating_add(1);
        // The delivery: where it stands. An expired one is not brought back.
        let mut d = Change::default();
        d.set("#st", attr::STATUS, ":st", s(status_text(attempt.status)));
        d.set("#n", attr::ATTEMPTS, ":n", n(attempts));
        if let Some(e) = &attempt.error {
            d.set("#err", attr::ERROR, ":err", s(e));
        }
        match attempt.next_at {
            Some(next) => d.set("#next", attr::NEXT, ":next", n(next.micros())),
            None => d.remove("#next", attr::NEXT),
        }
        let key = delivery_key(&delivery.tenant_id, &delivery.rule_id, &delivery.id);
        // Only from where this attempt started: two attempts of one delivery at once (a
        // replayed stream record beside its queued first attempt) record once, and a
        // final status is never overwritten.
        d.values.insert(":prev".into(), n(delivery.attempts));
        d.values.insert(":delivered".into(), s(status_text(Status::Delivered)));
        d.values.insert(":dead".into(), s(status_text(Status::Dead)));
        let guard = "#n = :prev AND #st <> :delivered AND #st <> :dead";
        if !self.update_existing("UpdateItem delivery", key, d, Some(guard)).await? {
            return Ok(());
        }

        // The rule's summary, unless the rule is gone.
        let mut r = Change::default();
        r.set("#sa", attr::LAST_ATTEMPT, ":at", n(attempt.at.micros()));
        match &attempt.error {
            None => r.set("#so", attr::LAST_DELIVERED, ":at", n(attempt.at.micros())),
            Some(e) => {
                r.set("#se", attr::LAST_ERROR, ":err", s(e));
                r.set("#sea", attr::LAST_ERROR_AT, ":at", n(attempt.at.micros()));
                r.add("#sf", attr::FAILED);
            }
        }
        if attempt.status == Status::Dead {
            let dead = DeadLetter {
                id: delivery.id.clone(),
                at: attempt.at,
                attempts,
                event_ids: delivery.event_ids.clone(),
                error: attempt.error.clone().unwrap_or_default(),
            };
            r.set("#sdl", attr::LAST_DEAD, ":dl", s(&dead_letter_json(&dead)));
            r.add("#sd", attr::DEAD);
        }
        self.update_existing("UpdateItem rule summary", rule_key(&delivery.tenant_id, &delivery.rule_id), r, None)
            .await
            .map(|_| ())
    }
}

/// An update expression, built a clause at a time.
#[derive(Default)]
struct Change {
    set: Vec<String>,
    add: Vec<String>,
    remove: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Change {
    fn set(&mut self, name: &str, attribute: &str, placeholder: &str, value: AttributeValue) {
        self.set.push(format!("{name} = {placeholder}"));
        self.names.insert(name.into(), attribute.into());
        self.values.insert(placeholder.into(), value);
    }

    /// Adds one to a counter.
    fn add(&mut self, name: &str, attribute: &str) {
        self.add.push(format!("{name} :one"));
        self.names.insert(name.into(), attribute.into());
        self.values.insert(":one".into(), n(1));
    }

    fn remove(&mut self, name: &str, attribute: &str) {
        self.remove.push(name.into());
        self.names.insert(name.into(), attribute.into());
    }

    fn expression(&self) -> String {
        let clauses = [("SET", &self.set), ("ADD", &self.add), ("REMOVE", &self.remove)];
        let parts = clauses.iter().filter(|(_, c)| !c.is_empty()).map(|(k, c)| format!("{k} {}", c.join(", ")));
        parts.collect::<Vec<_>>().join(" ")
    }
}

impl Table {
    /// Applies `change` to the item at `key` if it exists; nothing when it does not.
    /// Applies `change` to an item that exists (and meets `guard`); `false` when it does
    /// not.
    async fn update_existing(
        &self,
        what: &str,
        key: Item,
        mut change: Change,
        guard: Option<&str>,
    ) -> Result<bool, StoreError> {
        change.names.insert("#pk".into(), keys::PK.into());
        let update = change.expression();
        let condition = match guard {
            Some(g) => format!("attribute_exists(#pk) AND {g}"),
            None => "attribute_exists(#pk)".to_owned(),
        };
        let run = retry(&self.backoff, what, || {
            self.client
                .update_item()
                .table_name(&self.name)
                .set_key(Some(key.clone()))
                .update_expression(&update)
                .condition_expression(&condition)
                .set_expression_attribute_names(Some(change.names.clone()))
                .set_expression_attribute_values(Some(change.values.clone()))
                .send()
        })
        .await;
        match run.result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(UpdateItemError::is_conditional_check_failed_exception) => {
                // After an attempt that may have applied, the change is in.
                Ok(run.ambiguous)
            }
            Err(e) => Err(store_error(&e)),
        }
    }
}

#[cfg(test)]
#[path = "alerts_tests.rs"]
mod tests;
