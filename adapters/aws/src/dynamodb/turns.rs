//! Tenants' turns ([`audit::domain::turn`]): one item per kind and tenant,
//! `TURN#{kind}#{tenant}` / `T`, holding the turn's token (`tok`), when it is due
//! (`due`, µs), until when a worker holds it (`hold`, µs), the work noted (`v`), and what
//! the tenant's slices keep (`st`). Every change is one conditional `UpdateItem`.

use crate::dynamodb::values::{Item, get_n, get_s, key, n, s};
use crate::dynamodb::{Table, keys, store_error};
use crate::retry::retry;
use async_trait::async_trait;
use audit::domain::tenant::TenantId;
use audit::domain::timestamp::Timestamp;
use audit::domain::turn::{DUE_SLACK_MICROS, LOST_AFTER_SECONDS};
use audit::ports::{Noted, Passed, StoreError, Take, TurnStore};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use std::collections::HashMap;

mod attr {
    pub const TOKEN: &str = "tok";
    pub const DUE: &str = "due";
    pub const HOLD: &str = "hold";
    pub const VERSION: &str = "v";
    pub const STATE: &str = "st";
    /// The last token passed on: a message with it, or an older one, is stale.
    pub const LAST: &str = "last";
}

/// How one conditional update ended.
enum Updated {
    /// Applied: the item after it (with `ReturnValues` ALL_NEW).
    Done(Option<Item>),
    /// The condition failed: the item as it stood (none: there is no item).
    Refused(Option<Item>),
}

fn turn_key(kind: &str, tenant: &TenantId) -> Item {
    key(&keys::turn_pk(kind, tenant), keys::TURN_SK)
}

fn names() -> HashMap<String, String> {
    [
        ("#tok", attr::TOKEN),
        ("#due", attr::DUE),
        ("#hold", attr::HOLD),
        ("#v", attr::VERSION),
        ("#st", attr::STATE),
        ("#last", attr::LAST),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

impl Table {
    /// One conditional update of a turn item; only the names and values it uses are sent
    /// (DynamoDB refuses unused ones).
    async fn turn_update(
        &self,
        what: &str,
        kind: &str,
        tenant: &TenantId,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Updated, StoreError> {
        let used = |placeholder: &str| update.contains(placeholder) || condition.contains(placeholder);
        let names: HashMap<String, String> = names().into_iter().filter(|(k, _)| used(k)).collect();
        let values: HashMap<String, AttributeValue> =
            values.into_iter().filter(|(k, _)| used(k)).map(|(k, v)| (k.to_owned(), v)).collect();
        let key = turn_key(kind, tenant);
        let run = retry(&self.backoff, what, || {
            self.client
                .update_item()
                .table_name(&self.name)
                .set_key(Some(key.clone()))
                .update_expression(update)
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values((!values.is_empty()).then(|| values.clone()))
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
        })
        .await;
        match run.result {
            Ok(out) => Ok(Updated::Done(out.attributes)),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => Ok(Updated::Refused(c.item.clone())),
                _ => Err(store_error(&e)),
            },
        }
    }
}

fn token(item: Option<&Item>) -> Option<String> {
    item.and_then(|i| get_s(i, attr::TOKEN)).cloned()
}

#[async_trait]
impl TurnStore for Table {
    async fn note(&self, kind: &str, tenant: &TenantId, now: Timestamp) -> Result<Noted, StoreError> {
        let soon = now.micros() + DUE_SLACK_MICROS;
        let lost = now.plus_seconds(-LOST_AFTER_SECONDS).micros();
        let updated = self
            .turn_update(
                "UpdateItem note turn work",
                kind,
                tenant,
                "ADD #v :one",
                "attribute_exists(#tok) AND #due <= :soon AND (#due > :lost OR #hold > :now)",
                vec![(":one", n(1)), (":soon", n(soon)), (":lost", n(lost)), (":now", n(now.micros()))],
            )
            .await?;
        Ok(match updated {
            Updated::Done(_) => Noted::Live,
            // An ambiguous first attempt that applied counts the work twice: harmless,
            // the count only tells whether work came during a slice.
            Updated::Refused(old) => Noted::Replace { token: token(old.as_ref()) },
        })
    }

    async fn install(
        &self,
        kind: &str,
        tenant: &TenantId,
        replaced: Option<&str>,
        new: &str,
        due: Timestamp,
    ) -> Result<bool, StoreError> {
        let condition = if replaced.is_some() { "#tok = :old" } else { "attribute_not_exists(#tok)" };
        let updated = self
            .turn_update(
                "UpdateItem install turn",
                kind,
                tenant,
                "SET #tok = :new, #due = :due REMOVE #hold ADD #v :one",
                condition,
                vec![
                    (":new", s(new)),
                    (":due", n(due.micros())),
                    (":one", n(1)),
                    (":old", s(replaced.unwrap_or_default())),
                ],
            )
            .await?;
        Ok(match updated {
            Updated::Done(_) => true,
            // Ours already, from an attempt whose answer was lost.
            Updated::Refused(old) => token(old.as_ref()).as_deref() == Some(new),
        })
    }

    async fn take(
        &self,
        kind: &str,
        tenant: &TenantId,
        token_: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Take, StoreError> {
        let updated = self
            .turn_update(
                "UpdateItem take turn",
                kind,
                tenant,
                "SET #hold = :until",
                "#tok = :tok AND #due <= :soon AND (attribute_not_exists(#hold) OR #hold < :now)",
                vec![
                    (":until", n(until.micros())),
                    (":tok", s(token_)),
                    (":soon", n(now.micros() + DUE_SLACK_MICROS)),
                    (":now", n(now.micros())),
                ],
            )
            .await?;
        match updated {
            Updated::Done(item) => {
                let item = item.unwrap_or_default();
                Ok(Take::Held {
                    version: get_n(&item, attr::VERSION).unwrap_or(0),
                    state: get_s(&item, attr::STATE).cloned(),
                })
            }
            Updated::Refused(old) => {
                let current = token(old.as_ref());
                let last = old.as_ref().and_then(|o| get_s(o, attr::LAST)).cloned();
                let Some(old) = old.filter(|_| current.as_deref() == Some(token_)) else {
                    return Ok(Take::Stale { current: current.max(last) });
                };
                let due = get_n::<i64>(&old, attr::DUE).unwrap_or(0);
                if due > now.micros() + DUE_SLACK_MICROS {
                    return Ok(Take::NotYet(Timestamp::from_micros(due).unwrap_or(now)));
                }
                // Held: by another worker, or by an attempt of ours whose answer was lost
                // (its hold lapses and the message comes back).
                Ok(Take::Busy)
            }
        }
    }

    async fn pass(
        &self,
        kind: &str,
        tenant: &TenantId,
        token_: &str,
        next: Option<(&str, Timestamp)>,
        state: Option<&str>,
        version: Option<u64>,
    ) -> Result<Passed, StoreError> {
        let mut set = vec!["#last = :tok"];
        let mut remove = vec!["#hold"];
        match next {
            Some(_) => set.extend(["#tok = :new", "#due = :due"]),
            None => remove.extend(["#tok", "#due"]),
        }
        match state {
            Some(_) => set.push("#st = :st"),
            None => remove.push("#st"),
        }
        let update = format!("SET {} REMOVE {}", set.join(", "), remove.join(", "));
        let condition = if version.is_some() { "#tok = :tok AND #v = :v" } else { "#tok = :tok" };
        let updated = self
            .turn_update(
                "UpdateItem pass turn",
                kind,
                tenant,
                &update,
                condition,
                vec![
                    (":new", s(next.map_or("", |(t, _)| t))),
                    (":due", n(next.map_or(0, |(_, d)| d.micros()))),
                    (":st", s(state.unwrap_or_default())),
                    (":tok", s(token_)),
                    (":v", n(version.unwrap_or_default())),
                ],
            )
            .await?;
        Ok(match updated {
            Updated::Done(_) => Passed::Done,
            Updated::Refused(old) => {
                let current = token(old.as_ref());
                if current.as_deref() == Some(token_) {
                    Passed::Moved
                } else if next.is_some_and(|(t, _)| current.as_deref() == Some(t))
                    || (next.is_none() && current.is_none())
                {
                    // Passed already, by an attempt whose answer was lost.
                    Passed::Done
                } else {
                    Passed::Lost
                }
            }
        })
    }
}
