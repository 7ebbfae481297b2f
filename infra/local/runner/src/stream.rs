//! What Lambda's DynamoDB Streams event source mapping does, done against DynamoDB
//! Local's stream: with the template's `StartingPosition: LATEST`, the shards open when
//! the runner starts are read from their latest record on, shards found later from
//! their start; each batch is handed to the handler the `alerts` entry point runs, as the
//! JSON Lambda would deliver, and a batch that reports a failed record is read again from
//! that record.
//!
//! So a fresh runner does not replay the table's whole stream (every earlier run's and
//! test's events): it sees what is written after [`Stream::open`] returns.
//!
//! As Lambda does, it drops the records the mapping's filter does not pass before it
//! makes batches: the alerts' own writes (agendas, states, deliveries) and every other
//! non-event item never reach the handler, and a batch holds up to 100 new events.

use anyhow::Context;
use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

/// Records per batch handed over, as the deployed event source's batch size.
const BATCH: usize = 100;
/// Records per read (the most GetRecords returns): filtered before they are batched.
const READ: i32 = 1_000;
/// How long an idle shard waits before it is read again (Lambda polls about four times
/// a second).
const IDLE: Duration = Duration::from_millis(100);
/// How long a failed batch waits before it is read again.
const AFTER_FAILURE: Duration = Duration::from_secs(1);

/// The table's stream, positioned as a new event source mapping would be.
pub struct Stream {
    client: Client,
    arn: String,
    filter: Filter,
    /// Shards being read, in the order they were found (a parent before its children).
    shards: Vec<Shard>,
    /// Shards read to their end, or closed before the runner started.
    done: HashSet<String>,
}

/// Where a shard is read from next.
struct Shard {
    id: String,
    /// The iterator of the next read; `None`: to be asked for at `from`.
    iterator: Option<String>,
    from: Position,
}

#[derive(Clone)]
enum Position {
    Latest,
    TrimHorizon,
    /// The record a batch failed on, read again.
    At(String),
    /// After the last record handled.
    After(String),
}

impl Stream {
    /// Positions every shard open now at its latest record (each iterator is taken
    /// before this returns, so a record written afterwards is read) and leaves out the
    /// shards already closed: their records predate the runner.
    ///
    /// # Errors
    /// When the stream cannot be described or an open shard gives no iterator.
    pub async fn open(client: Client, arn: String, filter: Filter) -> anyhow::Result<Self> {
        let mut stream = Self { client, arn, filter, shards: Vec::new(), done: HashSet::new() };
        for (id, open) in stream.list().await.map_err(anyhow::Error::msg).context("describing the table's stream")? {
            if !open {
                stream.done.insert(id);
                continue;
            }
            let it = stream
                .iterator(&id, &Position::Latest)
                .await
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("positioning stream shard {id}"))?;
            stream.shards.push(Shard { id, iterator: Some(it), from: Position::Latest });
        }
        Ok(stream)
    }

    /// Shards the stream does not know yet, read from their start.
    async fn discover(&mut self) {
        match self.list().await {
            Ok(ids) => {
                for (id, _) in ids {
                    if !self.done.contains(&id) && !self.shards.iter().any(|s| s.id == id) {
                        self.shards.push(Shard { id, iterator: None, from: Position::TrimHorizon });
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "stream not described"),
        }
    }

    /// Every shard's id, and whether it is still open (has no ending sequence number).
    async fn list(&self) -> Result<Vec<(String, bool)>, String> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let d = self
                .client
                .describe_stream()
                .stream_arn(&self.arn)
                .set_exclusive_start_shard_id(start)
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?;
            let Some(desc) = d.stream_description else { return Ok(out) };
            for shard in desc.shards.unwrap_or_default() {
                let open = shard.sequence_number_range.as_ref().is_none_or(|r| r.ending_sequence_number.is_none());
                out.extend(shard.shard_id.map(|id| (id, open)));
            }
            start = desc.last_evaluated_shard_id;
            if start.is_none() {
                return Ok(out);
            }
        }
    }

    /// One read of shard `i`, its records handed to `handle`: whether the shard has ended,
    /// and whether it held records.
    async fn read<F, Fut>(&mut self, i: usize, handle: &F) -> (bool, bool)
    where
        F: Fn(Value) -> Fut,
        Fut: Future<Output = Option<String>>,
    {
        let (id, from) = (self.shards[i].id.clone(), self.shards[i].from.clone());
        let it = match self.shards[i].iterator.take() {
            Some(it) => it,
            None => match self.iterator(&id, &from).await {
                Ok(it) => it,
                Err(e) => {
                    tracing::warn!(error = %e, shard = %id, "no iterator for a stream shard");
                    return (false, false);
                }
            },
        };
        // A failed read (an expired iterator, a refused call) asks for a new iterator at the
        // same position next time.
        let page = match self.client.get_records().shard_iterator(it).limit(READ).send().await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = ?e, shard = %id, "stream read failed");
                return (false, false);
            }
        };
        let records = page.records.unwrap_or_default();
        let last = records.last().and_then(|r| r.dynamodb.as_ref()?.sequence_number.clone());
        if let Some(last) = last {
            let passed: Vec<Value> =
                records.iter().map(|r| record(r, &self.arn)).filter(|r| self.filter.passes(r)).collect();
            for batch in passed.chunks(BATCH) {
                if let Some(failed) = handle(json!({"Records": batch})).await {
                    tokio::time::sleep(AFTER_FAILURE).await;
                    self.shards[i].from = Position::At(failed);
                    return (false, true);
                }
            }
            self.shards[i].from = Position::After(last);
        }
        let held = !records.is_empty();
        match page.next_shard_iterator {
            Some(next) => {
                self.shards[i].iterator = Some(next);
                (false, held)
            }
            None => (true, held),
        }
    }

    async fn iterator(&self, shard: &str, from: &Position) -> Result<String, String> {
        let (kind, at) = match from {
            Position::Latest => (ShardIteratorType::Latest, None),
            Position::TrimHorizon => (ShardIteratorType::TrimHorizon, None),
            Position::At(seq) => (ShardIteratorType::AtSequenceNumber, Some(seq.clone())),
            Position::After(seq) => (ShardIteratorType::AfterSequenceNumber, Some(seq.clone())),
        };
        let it = self
            .client
            .get_shard_iterator()
            .stream_arn(&self.arn)
            .shard_id(shard)
            .shard_iterator_type(kind)
            .set_sequence_number(at)
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        it.shard_iterator.ok_or_else(|| "no iterator".to_owned())
    }
}

/// Reads the stream for ever, handing each batch to `handle`, which answers the
/// sequence number of the first record it did not finish, if any.
pub async fn follow<F, Fut>(mut stream: Stream, handle: F)
where
    F: Fn(Value) -> Fut,
    Fut: Future<Output = Option<String>>,
{
    loop {
        stream.discover().await;
        let mut busy = false;
        let mut i = 0;
        while i < stream.shards.len() {
            let (ended, read) = stream.read(i, &handle).await;
            busy |= read;
            if ended {
                let shard = stream.shards.remove(i);
                stream.done.insert(shard.id);
            } else {
                i += 1;
            }
        }
        if !busy {
            tokio::time::sleep(IDLE).await;
        }
    }
}
/// An event source mapping's filter, as much of Lambda's pattern syntax as the template
/// uses: a pattern's keys name fields of the record, its lists the values (strings, or
/// `{"prefix": ...}`) a field may have; a record passes when any pattern matches it, or
/// when there are none. Any other form is refused as the runner starts, so the runner
/// never filters otherwise than Lambda without saying so.
pub struct Filter(Vec<Value>);

impl Filter {
    /// `patterns`: a JSON list of pattern strings, as provision.py prints them.
    ///
    /// # Errors
    /// Not such a list, or a pattern this filter does not understand.
    pub fn parse(patterns: &str) -> anyhow::Result<Self> {
        let patterns: Vec<String> = serde_json::from_str(patterns).context("a JSON list of patterns")?;
        let patterns = patterns
            .iter()
            .map(|p| serde_json::from_str::<Value>(p).with_context(|| format!("pattern {p}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        patterns.iter().try_for_each(understood)?;
        Ok(Self(patterns))
    }

    /// Whether `record` (in Lambda's JSON form) reaches the handler.
    #[must_use]
    pub fn passes(&self, record: &Value) -> bool {
        self.0.is_empty() || self.0.iter().any(|p| matches(p, record))
    }
}

fn understood(pattern: &Value) -> anyhow::Result<()> {
    match pattern {
        Value::Object(fields) if !fields.is_empty() => fields.values().try_for_each(understood),
        Value::Array(values) if !values.is_empty() => values.iter().try_for_each(|v| match v {
            Value::String(_) => Ok(()),
            Value::Object(o) if o.len() == 1 && o.get("prefix").is_some_and(Value::is_string) => Ok(()),
            other => Err(anyhow::anyhow!("a filter value the local runner does not apply: {other}")),
        }),
        other => Err(anyhow::anyhow!("a filter pattern the local runner does not apply: {other}")),
    }
}

fn matches(pattern: &Value, field: &Value) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(k, p)| field.get(k).is_some_and(|f| matches(p, f))),
        Value::Array(values) => field.as_str().is_some_and(|s| {
            values.iter().any(|v| match v {
                Value::String(exact) => exact == s,
                Value::Object(o) => o.get("prefix").and_then(Value::as_str).is_some_and(|p| s.starts_with(p)),
                _ => false,
            })
        }),
        _ => false,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_templates_filter_passes_new_events_only_and_odd_patterns_are_refused() {
        let pattern = r#"{"eventName": ["INSERT"], "dynamodb": {"Keys": {"pk": {"S": [{"prefix": "EV#"}]}}}}"#;
        let filter = Filter::parse(&serde_json::to_string(&[pattern]).unwrap_or_default());
        let filter = filter.unwrap_or_else(|e| panic!("{e:#}"));
        let rec = |name: &str, pk: &str| json!({"eventName": name, "dynamodb": {"Keys": {"pk": {"S": pk}}}});
        assert!(filter.passes(&rec("INSERT", "EV#acme#e1")));
        assert!(!filter.passes(&rec("MODIFY", "EV#acme#e1")), "an archive's tombstone");
        assert!(!filter.passes(&rec("INSERT", "AQ#acme")), "the alerts' own writes");
        assert!(Filter::parse("[]").is_ok_and(|f| f.passes(&rec("REMOVE", "X"))), "no patterns: every record");
        for odd in [r#"{"eventName": [{"anything-but": "X"}]}"#, r#"{"eventName": "INSERT"}"#, r#"{"a": []}"#] {
            assert!(Filter::parse(&serde_json::to_string(&[odd]).unwrap_or_default()).is_err(), "{odd}");
        }
    }
}
