//! Benchmark helper: loads JSON-lines events (each with `tenant_id`) straight into the
//! table as the service's own items, by BatchWriteItem with 16 batches in flight, so a
//! benchmark can set up a million events in minutes. Not an ingest path: it skips the
//! conditional writes that make ingest idempotent.
//!
//! usage: cargo run --release -p audit-tests --example bulk_load -- FILE  (with .local/env)

use audit::domain::event::Event;
use audit::domain::tenant::TenantId;
use audit::domain::timestamp::Timestamp;
use audit::ports::TenantRegistry;
use audit_aws::dynamodb::{Table, item::to_item};
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use futures::StreamExt;
use std::io::BufRead;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).ok_or_else(|| anyhow::anyhow!("usage: bulk_load FILE"))?;
    let table = std::env::var("AUDIT_TABLE")?;
    let sdk = audit_aws::sdk::sdk_config().await;
    let client = audit_aws::sdk::dynamodb(&sdk);
    let store = Table::new(client.clone(), &table);
    let now = Timestamp::now();
    let started = std::time::Instant::now();
    let mut tenants = std::collections::HashSet::new();
    let mut loaded = 0usize;
    let lines: Vec<String> = std::io::BufReader::new(std::fs::File::open(&path)?).lines().collect::<Result<_, _>>()?;
    for block in lines.chunks(25 * 64) {
        let mut requests = Vec::with_capacity(block.len());
        for line in block {
            let mut raw: serde_json::Value = serde_json::from_str(line)?;
            let tenant = raw
                .as_object_mut()
                .and_then(|o| o.remove("tenant_id"))
                .and_then(|t| t.as_str().and_then(|t| TenantId::parse(t).ok()))
                .ok_or_else(|| anyhow::anyhow!("a line without tenant_id"))?;
            if tenants.insert(tenant.clone()) {
                store.register(&tenant, now).await?;
            }
            let stored = Event::validate(raw, &tenant, now).map_err(|v| anyhow::anyhow!("{v:?}"))?.stamp(now);
            let item = to_item(&stored, 0, &stored.hash);
            requests
                .push(WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build()?).build());
        }
        let batches = requests.chunks(25).map(|b| {
            let (client, table) = (&client, &table);
            async move {
                let mut pending = b.to_vec();
                while !pending.is_empty() {
                    let out = client.batch_write_item().request_items(table.clone(), pending.clone()).send().await?;
                    pending = out.unprocessed_items().and_then(|u| u.get(table.as_str())).cloned().unwrap_or_default();
                }
                Ok::<(), anyhow::Error>(())
            }
        });
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(batches).buffer_unordered(16).collect().await;
        results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
        loaded += block.len();
    }
    eprintln!("loaded {loaded} events in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
