//! What Lambda's DynamoDB Streams event source mapping does, done against DynamoDB
//! Local's stream: every shard read from its start, each batch handed to the handler the
//! `alerts` entry point runs, as the JSON Lambda would deliver, and a batch that reports
//! a failed record read again from that record.

use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

/// Records per read, as the deployed event source's batch size.
const BATCH: i32 = 100;
/// How long an idle shard waits before it is read again (Lambda polls about four times
/// a second).
const IDLE: Duration = Duration::from_millis(100);
/// How long a failed batch waits before it is read again.
const AFTER_FAILURE: Duration = Duration::from_secs(1);

/// The table's stream, as [`follow`] reads it.
pub struct Stream {
    pub client: Client,
    pub arn: String,
}

/// Reads the stream for ever, handing each batch to `handle`, which answers the
/// sequence number of the first record it did not finish, if any.
pub async fn follow<F, Fut>(stream: Stream, handle: F)
where
    F: Fn(Value) -> Fut,
    Fut: Future<Output = Option<String>>,
{
    // Shard id -> where to read next; shards read to their end are remembered as done.
    let mut open: HashMap<String, String> = HashMap::new();
    let mut done: HashSet<String> = HashSet::new();
    loop {
        match shards(&stream).await {
            Ok(ids) => {
                let new: Vec<String> =
                    ids.into_iter().filter(|id| !open.contains_key(id) && !done.contains(id)).collect();
                for id in new {
                    match iterator(&stream, &id, ShardIteratorType::TrimHorizon, None).await {
                        Ok(it) => {
                            open.insert(id, it);
                        }
                        Err(e) => tracing::warn!(error = %e, shard = %id, "no iterator for a stream shard"),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "stream not described"),
        }
        let mut busy = false;
        for (id, it) in open.clone() {
            let read = stream.client.get_records().shard_iterator(it).limit(BATCH).send().await;
            let page = match read {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = ?e, shard = %id, "stream read failed");
                    open.remove(&id);
                    continue;
                }
            };
            let records = page.records.unwrap_or_default();
            if !records.is_empty() {
                busy = true;
                let event = json!({"Records": records.iter().map(|r| record(r, &stream.arn)).collect::<Vec<_>>()});
                if let Some(failed) = handle(event).await {
                    tokio::time::sleep(AFTER_FAILURE).await;
                    match iterator(&stream, &id, ShardIteratorType::AtSequenceNumber, Some(failed)).await {
                        Ok(it) => {
                            open.insert(id, it);
                        }
                        Err(e) => tracing::warn!(error = %e, shard = %id, "no iterator to retry from"),
                    }
                    continue;
                }
            }
            match page.next_shard_iterator {
                Some(next) => {
                    open.insert(id, next);
                }
                None => {
                    open.remove(&id);
                    done.insert(id);
                }
            }
        }
        if !busy {
            tokio::time::sleep(IDLE).await;
        }
    }
}

async fn shards(stream: &Stream) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let d = stream
            .client
            .describe_stream()
            .stream_arn(&stream.arn)
            .set_exclusive_start_shard_id(start)
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let Some(desc) = d.stream_description else { return Ok(out) };
        out.extend(desc.shards.unwrap_or_default().into_iter().filter_map(|s| s.shard_id));
        start = desc.last_evaluated_shard_id;
        if start.is_none() {
            return Ok(out);
        }
    }
}

async fn iterator(stream: &Stream, shard: &str, kind: ShardIteratorType, at: Option<String>) -> Result<String, String> {
    let it = stream
        .client
        .get_shard_iterator()
        .stream_arn(&stream.arn)
        .shard_id(shard)
        .shard_iterator_type(kind)
        .set_sequence_number(at)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    it.shard_iterator.ok_or_else(|| "no iterator".to_owned())
}

/// One record as Lambda's stream event carries it.
fn record(r: &Record, arn: &str) -> Value {
    let d = r.dynamodb.as_ref();
    let image = |m: Option<&HashMap<String, AttributeValue>>| m.map(map);
    json!({
        "eventID": r.event_id,
        "eventName": r.event_name.as_ref().map(|n| n.as_str().to_owned()),
        "eventSource": "aws:dynamodb",
        "eventSourceARN": arn,
        "dynamodb": {
            "Keys": image(d.and_then(|d| d.keys.as_ref())),
            "NewImage": image(d.and_then(|d| d.new_image.as_ref())),
            "SequenceNumber": d.and_then(|d| d.sequence_number.clone()),
            "StreamViewType": d.and_then(|d| d.stream_view_type.as_ref()).map(|v| v.as_str().to_owned()),
        },
    })
}

fn map(m: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), value(v))).collect::<Map<_, _>>())
}

/// An attribute in DynamoDB's JSON form (`{"S": ...}`, `{"B": base64}`, ...).
fn value(v: &AttributeValue) -> Value {
    let b64 = |b: &aws_sdk_dynamodbstreams::primitives::Blob| Value::String(STANDARD.encode(b.as_ref()));
    match v {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::B(b) => json!({"B": b64(b)}),
        AttributeValue::Ss(l) => json!({"SS": l}),
        AttributeValue::Ns(l) => json!({"NS": l}),
        AttributeValue::Bs(l) => json!({"BS": l.iter().map(b64).collect::<Vec<_>>()}),
        AttributeValue::M(m) => json!({"M": map(m)}),
        AttributeValue::L(l) => json!({"L": l.iter().map(value).collect::<Vec<_>>()}),
        AttributeValue::Null(n) => json!({"NULL": n}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        _ => Value::Null,
    }
}
