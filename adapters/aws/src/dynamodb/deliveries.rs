//! A rule's deliveries (docs/design.md, "Alerts"): one item per notification in the
//! partition `AD#{tenant}#{rule id}`, written by the change that decided it (the outbox,
//! [`super::alerts`]) with its first attempt on the tenant's agenda, and moved by each
//! attempt together with that agenda entry; each attempt also leaves its mark on the
//! rule's summary. Kept 30 days through the table's TTL, past every retry schedule.

use crate::dynamodb::agenda::attempt_key;
use crate::dynamodb::alerts::{Transacted, attr as rule_attr, built, corrupt, rule_key};
use crate::dynamodb::export_jobs::TTL;
use crate::dynamodb::values::{Item, get_n, get_s, key, n, s};
use crate::dynamodb::{Table, keys, store_error};
use crate::retry::retry;
use async_trait::async_trait;
use audit::domain::delivery::{Attempt, DeadLetter, Delivery, Status};
use audit::domain::tenant::TenantId;
use audit::domain::timestamp::Timestamp;
use audit::ports::{Deliveries, StoreError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use serde_json::{Value, json};
use std::collections::HashMap;

/// How long a delivery is kept after it was created: past every retry schedule.
const DELIVERY_SECONDS: i64 = 30 * 24 * 3600;

/// Attribute names of a delivery item.
mod attr {
    pub const BODY: &str = "body";
    /// The event ids, a JSON array.
    pub const EVENTS: &str = "ev";
    /// The status, snake_case.
    pub const STATUS: &str = "st";
    pub const ATTEMPTS: &str = "n";
    pub const ERROR: &str = "err";
    /// Created, µs.
    pub const CREATED: &str = "ca";
    /// When the next attempt is due, µs.
    pub const NEXT: &str = "next";
    /// The destination it was made for (its key).
    pub const DESTINATION: &str = "dst";
}

fn delivery_key(tenant: &TenantId, rule_id: &str, id: &str) -> Item {
    key(&keys::deliveries_pk(tenant, rule_id), id)
}

pub(super) fn dead_letter_json(d: &DeadLetter) -> String {
    json!({"id": d.id, "at": d.at.micros(), "attempts": d.attempts, "event_ids": d.event_ids, "error": d.error})
        .to_string()
}

pub(super) fn delivery_item(d: &Delivery) -> Item {
    let mut item = delivery_key(&d.tenant_id, &d.rule_id, &d.id);
    item.insert(attr::BODY.into(), s(&d.body));
    item.insert(attr::EVENTS.into(), s(&json!(d.event_ids).to_string()));
    item.insert(attr::DESTINATION.into(), s(&d.destination));
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
        destination: text(attr::DESTINATION)?.clone(),
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

#[async_trait]
impl Deliveries for Table {
    async fn delivery(&self, tenant: &TenantId, rule_id: &str, id: &str) -> Result<Option<Delivery>, StoreError> {
        let item = self.get_one("GetItem delivery", delivery_key(tenant, rule_id, id)).await?;
        item.map(|it| delivery_from_item(tenant, rule_id, &it)).transpose()
    }

    async fn record(&self, delivery: &Delivery, due: Timestamp, attempt: &Attempt) -> Result<(), StoreError> {
        let tenant = &delivery.tenant_id;
        let attempts = if attempt.sent { delivery.attempts.saturating_add(1) } else { delivery.attempts };
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
        // Only from where this attempt started: two workers on one attempt (a hold that
        // lapsed) record once, and a final status is never overwritten.
        d.values.insert(":prev".into(), n(delivery.attempts));
        d.values.insert(":delivered".into(), s(status_text(Status::Delivered)));
        d.values.insert(":dead".into(), s(status_text(Status::Dead)));
        d.names.insert("#pk".into(), keys::PK.into());
        let update = built(
            Update::builder()
                .table_name(&self.name)
                .set_key(Some(delivery_key(tenant, &delivery.rule_id, &delivery.id)))
                .update_expression(d.expression())
                .condition_expression("attribute_exists(#pk) AND #n = :prev AND #st <> :delivered AND #st <> :dead")
                .set_expression_attribute_names(Some(d.names.clone()))
                .set_expression_attribute_values(Some(d.values.clone()))
                .build(),
        )?;
        let entry = attempt_key(tenant, due, &delivery.rule_id, &delivery.id);
        let mut items = vec![
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder()
                .delete(built(Delete::builder().table_name(&self.name).set_key(Some(entry.clone())).build())?)
                .build(),
        ];
        if let Some(next) = attempt.next_at {
            let put = Put::builder().table_name(&self.name).set_item(Some(attempt_key(
                tenant,
                next,
                &delivery.rule_id,
                &delivery.id,
            )));
            items.push(TransactWriteItem::builder().put(built(put.build())?).build());
        }
        match self.transact("TransactWriteItems record attempt", items).await? {
            (Transacted::Done, _) => {}
            // Recorded already (by an attempt whose answer was lost, or another worker):
            // only this entry may be left.
            (Transacted::Failed(_), _) => return self.delete_entry("DeleteItem attempt entry", entry).await,
        }

        // The rule's summary, unless the rule is gone.
        let mut r = Change::default();
        if attempt.sent {
            r.set("#sa", rule_attr::LAST_ATTEMPT, ":at", n(attempt.at.micros()));
        }
        match &attempt.error {
            None => r.set("#so", rule_attr::LAST_DELIVERED, ":at", n(attempt.at.micros())),
            Some(e) => {
                r.set("#se", rule_attr::LAST_ERROR, ":err", s(e));
                r.set("#sea", rule_attr::LAST_ERROR_AT, ":at", n(attempt.at.micros()));
                if attempt.sent {
                    r.add("#sf", rule_attr::FAILED);
                }
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
            r.set("#sdl", rule_attr::LAST_DEAD, ":dl", s(&dead_letter_json(&dead)));
            r.add("#sd", rule_attr::DEAD);
        }
        self.update_existing("UpdateItem rule summary", rule_key(tenant, &delivery.rule_id), r, None).await.map(|_| ())
    }

    async fn forget(
        &self,
        tenant: &TenantId,
        rule_id: &str,
        delivery_id: &str,
        due: Timestamp,
    ) -> Result<(), StoreError> {
        self.delete_entry("DeleteItem attempt entry", attempt_key(tenant, due, rule_id, delivery_id)).await
    }

    async fn defer(&self, delivery: &Delivery, due: Timestamp, to: Timestamp) -> Result<(), StoreError> {
        let tenant = &delivery.tenant_id;
        let old = built(
            Delete::builder()
                .table_name(&self.name)
                .set_key(Some(attempt_key(tenant, due, &delivery.rule_id, &delivery.id)))
                .condition_expression("attribute_exists(pk)")
                .build(),
        )?;
        let new = built(
            Put::builder()
                .table_name(&self.name)
                .set_item(Some(attempt_key(tenant, to, &delivery.rule_id, &delivery.id)))
                .build(),
        )?;
        let items =
            vec![TransactWriteItem::builder().delete(old).build(), TransactWriteItem::builder().put(new).build()];
        // Cancelled: the entry moved already (by an attempt whose answer was lost).
        self.transact("TransactWriteItems defer attempt", items).await.map(|_| ())
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
#[path = "deliveries_tests.rs"]
mod tests;
