//! CPU cost of the ingest path per event: JSON parse, validation, RFC 8785 hash, item
//! mapping. One thread, so the figure is events/s per core.
//!
//! usage: cargo bench -p audit-aws --bench ingest_cpu [-- FILE.jsonl]
//! (default: events/sample-events.jsonl; each line's tenant_id becomes the token tenant)

use audit::domain::event::Event;
use audit::domain::tenant::{TenantId, shard_of};
use audit::domain::timestamp::Timestamp;
use audit_aws::dynamodb::item::to_item;
use std::time::Instant;

/// Ingest and queries allocate many small strings; mimalloc handles that far better than
/// the system allocator (see the ingest_cpu benchmark).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RUNS: usize = 7;

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/sample-events.jsonl").to_owned());
    // Bodies as a client would send them: without tenant_id, which comes from the token.
    let mut bodies = Vec::new();
    for line in std::fs::read_to_string(&path)?.lines().filter(|l| !l.trim().is_empty()) {
        let mut v: serde_json::Value = serde_json::from_str(line)?;
        let tenant = v.as_object_mut().and_then(|o| o.remove("tenant_id"));
        let tenant = TenantId::parse(tenant.as_ref().and_then(|t| t.as_str()).unwrap_or("t"))?;
        bodies.push((tenant, serde_json::to_vec(&v)?));
    }
    let now = Timestamp::now();
    let mut rates = Vec::with_capacity(RUNS);
    let mut checksum = 0usize;
    for _ in 0..RUNS {
        let start = Instant::now();
        for (tenant, body) in &bodies {
            let raw: serde_json::Value = serde_json::from_slice(body)?;
            let accepted = Event::validate(raw, tenant, now).map_err(|v| anyhow::anyhow!("{v:?}"))?;
            let shard = shard_of(&accepted.event.id, 1);
            let stored = accepted.stamp(now);
            let item = to_item(&stored, shard, &stored.hash);
            checksum = checksum.wrapping_add(item.len());
        }
        rates.push(bodies.len() as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    // The share of that which is JSON parsing alone, for where to look next.
    let mut parse_rates = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        for (_, body) in &bodies {
            let raw: serde_json::Value = serde_json::from_slice(body)?;
            checksum = checksum.wrapping_add(raw.as_object().map_or(0, serde_json::Map::len));
        }
        parse_rates.push(bodies.len() as f64 / start.elapsed().as_secs_f64());
    }
    parse_rates.sort_by(f64::total_cmp);
    println!(
        "ingest_cpu: {} events from {path}, {RUNS} runs: median {:.0} events/s per core (min {:.0}, max {:.0}); \
         JSON parsing alone {:.0} events/s [{checksum}]",
        bodies.len(),
        rates[RUNS / 2],
        rates[0],
        rates[RUNS - 1],
        parse_rates[RUNS / 2]
    );
    Ok(())
}
