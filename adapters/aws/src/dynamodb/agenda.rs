//! A tenant's alert agenda (`AQ#{tenant}`, [`keys::agenda_pk`]): matched events written
//! by the stream's intake, attempts and flushes written by the tenant's worker, sorted by
//! when each is due, so one consistent `Query` up to now reads what is due, in order,
//! and one `Limit 1` tells when the next thing is.
//!
//! A matched entry carries its event as the event item does (`d`, `h`, `ra`: read back by
//! [`item::from_item`], hash checked) and the ids of the rules it matched (`r`). A bulk
//! entry carries its rules' ids once (`r`) and its events (`e`, a list of maps, each
//! with the event's `d`, `h`, `ra` and `x`: the indexes in `r` of the rules it matched,
//! big-endian u16s).

use crate::dynamodb::item::{self, attr as event_attr};
use crate::dynamodb::values::{Item, b, key, n, s};
use crate::dynamodb::{Table, doc, keys, store_error};
use crate::retry::retry;
use async_trait::async_trait;
use audit::domain::event::StoredEvent;
use audit::domain::tenant::TenantId;
use audit::domain::timestamp::Timestamp;
use audit::ports::{AlertAgenda, AlertInbox, Bulk, Due, Matched, StoreError};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};

/// A matched entry's rule ids (L of S).
const RULES: &str = "r";
/// A bulk entry's events (L of M).
const EVENTS: &str = "e";
/// A bulk entry's event's rule indexes (B).
const INDEXES: &str = "x";

/// The sort key of an agenda entry due at `due`: the time first, zero-padded so keys
/// sort by it, then what it is.
fn sort_key(due: Timestamp, rest: &str) -> String {
    format!("{:019}#{rest}", due.micros().max(0))
}

pub(super) fn attempt_key(tenant: &TenantId, due: Timestamp, rule_id: &str, delivery_id: &str) -> Item {
    key(&keys::agenda_pk(tenant), &sort_key(due, &format!("A#{rule_id}#{delivery_id}")))
}

pub(super) fn flush_key(tenant: &TenantId, due: Timestamp, rule_id: &str) -> Item {
    key(&keys::agenda_pk(tenant), &sort_key(due, &format!("F#{rule_id}")))
}

/// An event's attributes as its item has them, for an agenda entry to carry.
fn event_attributes(event: &StoredEvent) -> Item {
    Item::from([
        (event_attr::DOC.into(), b(doc::encode(&event.doc))),
        (event_attr::HASH.into(), b(hex::decode(&event.hash).unwrap_or_default())),
        (event_attr::RECEIVED_AT.into(), n(event.received_at.micros())),
    ])
}

pub(super) fn matched_key(m: &Matched) -> Item {
    let e = &m.event;
    key(&keys::agenda_pk(&e.event.tenant_id), &sort_key(e.received_at, &format!("M#{}#{}", e.event.id, m.part)))
}

fn matched_item(m: &Matched) -> Item {
    let mut item = matched_key(m);
    item.extend(event_attributes(&m.event));
    item.insert(RULES.into(), AttributeValue::L(m.rules.iter().map(|r| s(r)).collect()));
    item
}

pub(super) fn bulk_key(bulk: &Bulk) -> Item {
    let first = bulk.events.first().map_or("", |(e, _)| e.event.id.as_str());
    key(&keys::agenda_pk(&bulk.tenant), &sort_key(bulk.due, &format!("B#{first}")))
}

fn bulk_item(bulk: &Bulk) -> Item {
    let mut item = bulk_key(bulk);
    item.insert(RULES.into(), AttributeValue::L(bulk.rules.iter().map(|r| s(r)).collect()));
    let events = bulk.events.iter().map(|(event, at)| {
        let mut m = event_attributes(event);
        m.insert(INDEXES.into(), b(at.iter().flat_map(|i| i.to_be_bytes()).collect()));
        AttributeValue::M(m)
    });
    item.insert(EVENTS.into(), AttributeValue::L(events.collect()));
    item
}

fn strings(item: &Item, name: &str) -> Option<Vec<String>> {
    item.get(name).and_then(|v| v.as_l().ok()).map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
}

fn corrupt(sk: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("agenda entry {sk}: {why}"))
}

/// An agenda item read back.
fn due_from_item(tenant: &TenantId, item: &Item) -> Result<Due, StoreError> {
    let sk = item.get(keys::SK).and_then(|v| v.as_s().ok()).map_or("?", String::as_str);
    let mut parts = sk.splitn(3, '#');
    let (Some(at), Some(kind), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(corrupt(sk, "not an agenda key"));
    };
    let due = at.parse::<i64>().ok().and_then(|m| Timestamp::from_micros(m).ok()).ok_or_else(|| corrupt(sk, "time"))?;
    match kind {
        "A" => {
            let (rule_id, delivery_id) = rest.split_once('#').ok_or_else(|| corrupt(sk, "attempt key"))?;
            Ok(Due::Attempt { rule_id: rule_id.to_owned(), delivery_id: delivery_id.to_owned(), due })
        }
        "F" => Ok(Due::Flush { rule_id: rest.to_owned(), due }),
        "M" => {
            let (id, part) = rest.rsplit_once('#').ok_or_else(|| corrupt(sk, "matched key"))?;
            let event = item::from_item(item).map_err(|e| corrupt(sk, e))?;
            if event.event.tenant_id != *tenant || event.event.id != id {
                return Err(corrupt(sk, "its event is another"));
            }
            let rules = strings(item, RULES).ok_or_else(|| corrupt(sk, "rules"))?;
            let part = part.parse().map_err(|_| corrupt(sk, "part"))?;
            Ok(Due::Matched(Box::new(Matched { event, rules, part })))
        }
        "B" => {
            let rules = strings(item, RULES).ok_or_else(|| corrupt(sk, "rules"))?;
            let list = item.get(EVENTS).and_then(|v| v.as_l().ok()).ok_or_else(|| corrupt(sk, "events"))?;
            let mut events = Vec::with_capacity(list.len());
            for m in list {
                let m = m.as_m().map_err(|_| corrupt(sk, "events"))?;
                let event = item::from_item(m).map_err(|e| corrupt(sk, e))?;
                let bytes = m.get(INDEXES).and_then(|v| v.as_b().ok()).ok_or_else(|| corrupt(sk, "indexes"))?.as_ref();
                let at: Vec<u16> = bytes.chunks_exact(2).map(|p| u16::from_be_bytes([p[0], p[1]])).collect();
                if bytes.len() % 2 != 0 || at.iter().any(|i| usize::from(*i) >= rules.len()) {
                    return Err(corrupt(sk, "indexes"));
                }
                if event.event.tenant_id != *tenant {
                    return Err(corrupt(sk, "an event of another tenant"));
                }
                events.push((event, at));
            }
            if events.first().map(|(e, _)| e.event.id.as_str()) != Some(rest) {
                return Err(corrupt(sk, "its events are not its key's"));
            }
            Ok(Due::Bulk(Box::new(Bulk { tenant: tenant.clone(), due, rules, events })))
        }
        _ => Err(corrupt(sk, "unknown kind")),
    }
}

#[async_trait]
impl AlertInbox for Table {
    async fn put(&self, matched: &[Matched]) -> Result<(), StoreError> {
        self.put_entries("BatchWriteItem agenda", matched.iter().map(matched_item)).await
    }

    async fn put_bulks(&self, bulks: &[Bulk]) -> Result<(), StoreError> {
        self.put_entries("BatchWriteItem agenda bulks", bulks.iter().map(bulk_item)).await
    }

    async fn unpacked(&self, bulk: &Bulk) -> Result<(), StoreError> {
        self.delete_entry("DeleteItem unpacked agenda entry", bulk_key(bulk)).await
    }
}

impl Table {
    /// Writes agenda entries; an entry named twice (the same match twice) is written once,
    /// as one batch may not name a key twice.
    async fn put_entries(&self, what: &str, items: impl Iterator<Item = Item>) -> Result<(), StoreError> {
        let mut seen = std::collections::HashSet::new();
        let requests = items
            .filter(|item| {
                let key = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                seen.insert((key(keys::PK), key(keys::SK)))
            })
            .map(|item| {
                let put = PutRequest::builder().set_item(Some(item)).build();
                put.map(|p| WriteRequest::builder().put_request(p).build())
                    .map_err(|e| StoreError::Refused(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(what, requests).await
    }
}

#[async_trait]
impl AlertAgenda for Table {
    async fn due(&self, tenant: &TenantId, now: Timestamp, limit: usize) -> Result<Vec<Due>, StoreError> {
        let pk = keys::agenda_pk(tenant);
        // Every key due by now sorts below this one ('~' follows '#' and digits).
        let upper = sort_key(now, "~");
        let limit = i32::try_from(limit).unwrap_or(i32::MAX).max(1);
        let run = retry(&self.backoff, "Query agenda", || {
            self.client
                .query()
                .table_name(&self.name)
                .key_condition_expression("pk = :pk AND sk < :upper")
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":upper", s(&upper))
                .consistent_read(true)
                .limit(limit)
                .send()
        })
        .await;
        let out = run.result.map_err(|e| store_error(&e))?;
        out.items().iter().map(|item| due_from_item(tenant, item)).collect()
    }

    async fn next_due(&self, tenant: &TenantId) -> Result<Option<Timestamp>, StoreError> {
        let pk = keys::agenda_pk(tenant);
        let run = retry(&self.backoff, "Query agenda head", || {
            self.client
                .query()
                .table_name(&self.name)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(&pk))
                .projection_expression("sk")
                .consistent_read(true)
                .limit(1)
                .send()
        })
        .await;
        let out = run.result.map_err(|e| store_error(&e))?;
        let Some(sk) = out.items().first().and_then(|i| i.get(keys::SK)).and_then(|v| v.as_s().ok()) else {
            return Ok(None);
        };
        let at = sk.split('#').next().and_then(|t| t.parse::<i64>().ok());
        at.and_then(|m| Timestamp::from_micros(m).ok()).map(Some).ok_or_else(|| corrupt(sk, "time"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use audit::domain::event::Event;
    use audit::domain::fixtures::with;
    use serde_json::json;

    #[test]
    fn agenda_keys_sort_by_due_time_and_read_back() {
        let tenant = TenantId::parse("acme").unwrap_or_else(|_| unreachable!());
        let at = |s: i64| Timestamp::MIN.plus_seconds(1_700_000_000 + s);
        let sk = |i: &Item| i.get(keys::SK).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        let early = sk(&attempt_key(&tenant, at(5), "r1", "msg_1"));
        let late = sk(&flush_key(&tenant, at(60), "r1"));
        assert!(early < late && late < sort_key(at(61), "~") && early > sort_key(at(4), "~"));
        let value = with(json!({"id": "evt/1:@x", "action": "a.b"}));
        let event = Event::validate(value, &tenant, at(0)).unwrap_or_else(|v| panic!("{v:?}")).stamp(at(1));
        let m = Matched { event, rules: vec!["r1".into(), "r2".into()], part: 3 };
        let back = due_from_item(&tenant, &matched_item(&m)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, Due::Matched(Box::new(m.clone())));
        let other = TenantId::parse("other").unwrap_or_else(|_| unreachable!());
        assert!(due_from_item(&other, &matched_item(&m)).is_err(), "an entry of another tenant is refused");
        let second = Event::validate(with(json!({"id": "e2", "action": "a.b"})), &tenant, at(0));
        let second = second.unwrap_or_else(|v| panic!("{v:?}")).stamp(at(2));
        let bulk = Bulk {
            tenant: tenant.clone(),
            due: at(1),
            rules: vec!["r1".into(), "r2".into()],
            events: vec![(m.event.clone(), vec![1, 0]), (second, vec![0])],
        };
        let back = due_from_item(&tenant, &bulk_item(&bulk)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, Due::Bulk(Box::new(bulk.clone())));
        assert!(due_from_item(&other, &bulk_item(&bulk)).is_err(), "a bulk of another tenant is refused");
        let mut bad = bulk.clone();
        bad.events[1].1 = vec![2];
        assert!(due_from_item(&tenant, &bulk_item(&bad)).is_err(), "an index past the rules is refused");
        let back = due_from_item(&tenant, &attempt_key(&tenant, at(5), "r1", "msg_1"));
        assert_eq!(back.ok(), Some(Due::Attempt { rule_id: "r1".into(), delivery_id: "msg_1".into(), due: at(5) }));
    }
}
