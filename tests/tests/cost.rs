//! The cost model (`audit_aws::dynamodb::cost`) against DynamoDB Local: the table the
//! local stack made from template.yaml has the indexes and projections the model assumes,
//! and the write units DynamoDB Local reports for putting an event and for turning it
//! into a tombstone are the ones the model computes, item and index by index.

mod common;

use audit::domain::event::{Event, StoredEvent};
use audit::domain::tenant::TenantId;
use audit::domain::timestamp::Timestamp;
use audit::ports::{EventArchiver, Moved};
use audit_aws::dynamodb::cost::{self, Cost, Projection, TableShape};
use audit_aws::dynamodb::item::to_item;
use aws_sdk_dynamodb::types::{ConsumedCapacity, ProjectionType, ReturnConsumedCapacity};
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn stored(tenant: &TenantId, raw: Value) -> StoredEvent {
    Event::validate(raw, tenant, Timestamp::now()).unwrap_or_else(|v| panic!("{v:?}")).stamp(Timestamp::now())
}

/// Units per table and per index, as DynamoDB Local reported them.
fn units(c: Option<&ConsumedCapacity>) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    let Some(c) = c else { return out };
    out.insert("table".to_owned(), c.table().and_then(|t| t.capacity_units()).unwrap_or(0.0) as u32);
    for (name, i) in c.global_secondary_indexes().into_iter().flatten() {
        out.insert(name.clone(), i.capacity_units().unwrap_or(0.0) as u32);
    }
    out
}

/// [`units`] of a `ConsumedCapacity` as DynamoDB's JSON answer holds it.
fn json_units(c: &Value) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    out.insert("table".to_owned(), c["Table"]["CapacityUnits"].as_f64().unwrap_or(0.0) as u32);
    for (name, i) in c["GlobalSecondaryIndexes"].as_object().into_iter().flatten() {
        out.insert(name.clone(), i["CapacityUnits"].as_f64().unwrap_or(0.0) as u32);
    }
    out
}

fn modelled(c: &Cost) -> BTreeMap<String, u32> {
    c.parts.iter().map(|p| (p.name.clone(), p.write_units)).collect()
}

#[tokio::test]
async fn the_table_has_the_indexes_and_projections_the_model_assumes() {
    let client = dynamodb(None).await;
    let table = client.describe_table().table_name(env("AUDIT_TABLE")).send().await.unwrap_or_else(|e| panic!("{e}"));
    let gsis = table.table().map(|t| t.global_secondary_indexes().to_vec()).unwrap_or_default();
    let model = TableShape::events();
    assert_eq!(gsis.len(), model.indexes.len());
    for index in &model.indexes {
        let gsi = gsis.iter().find(|g| g.index_name() == Some(index.name.as_str()));
        let gsi = gsi.unwrap_or_else(|| panic!("no index {} in the table", index.name));
        let key: Vec<String> = gsi.key_schema().iter().map(|k| k.attribute_name().to_owned()).collect();
        assert_eq!(key, index.keys, "{}", index.name);
        let p = gsi.projection().unwrap_or_else(|| panic!("{}: no projection", index.name));
        assert_eq!(p.projection_type(), Some(&ProjectionType::Include), "{}", index.name);
        let mut got: Vec<String> = p.non_key_attributes().to_vec();
        got.sort();
        let Projection::Include(mut want) = index.projection.clone() else { panic!("{}", index.name) };
        want.sort();
        assert_eq!(got, want, "{}", index.name);
    }
}

#[tokio::test]
async fn dynamodb_local_charges_the_write_units_the_model_computes() {
    let client = dynamodb(None).await;
    let capacity = proxy::start_with(env("AWS_ENDPOINT_URL_DYNAMODB"), proxy::Mode::Capacity).await;
    let archiver = store(Some(&capacity.url)).await;
    let tenant = new_tenant();
    let big = "x".repeat(3_000);
    let events = [
        json!({"action": "auth.login", "actor": {"type": "member", "id": "u-1"}}),
        json!({
            "action": "knowledge.create",
            "actor": {"type": "member", "id": "u-0-33", "name": "Member 33", "email": "member33@tenant0.example"},
            "resource": {"type": "escalation_rule", "id": "escalation_rule-641502", "name": "escalation_rule 1502"},
            "workspace": {"id": "ws-0-2", "name": "Workspace 1"},
            "source": {"ip": "88.191.217.197", "user_agent": "curl/8.5.0"},
            "request_id": "req-7f19f38b95be14e1",
            "description": "Member 33 performed knowledge.create on escalation_rule escalation_rule-641502",
            "changes": [{"field": "field_0", "old": 603, "new": 298}],
            "metadata": {"changes": {}, "client": "api"}
        }),
        json!({"action": "file.upload", "actor": {"type": "api_key", "id": "k-1"},
               "resource": {"type": "file", "id": "f-1"}, "metadata": {"blob": big}}),
    ];
    for (i, raw) in events.into_iter().enumerate() {
        let mut raw = raw;
        raw["id"] = json!(format!("cost-{i}"));
        let e = stored(&tenant, raw);
        let model = cost::event(&e, 0, &e.hash);
        let put = client
            .put_item()
            .table_name(env("AUDIT_TABLE"))
            .set_item(Some(to_item(&e, 0, &e.hash)))
            .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
            .send()
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(units(put.consumed_capacity()), modelled(&model), "event {i}: {model:?}");

        // The archive's tombstone, made by the archive's own code (through a proxy that
        // asks DynamoDB Local what it consumed): one UpdateItem that removes the doc and
        // every index key.
        let (model_units, _) = cost::tombstone(&e, 0, &e.hash, "2026-01-01", "part-00000.parquet");
        let moved = Moved { id: e.event.id.clone(), date: "2026-01-01".into(), part: "part-00000.parquet".into() };
        archiver.tombstone(&tenant, &[moved]).await.unwrap_or_else(|err| panic!("{err}"));
        let consumed = capacity.consumed();
        assert_eq!(consumed.len(), 1, "one write per tombstone: {consumed:?}");
        let reported: u32 = json_units(&consumed[0]).values().sum();
        assert_eq!(reported, model_units, "tombstone of event {i}");
    }
}
