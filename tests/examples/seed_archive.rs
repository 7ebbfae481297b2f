//! Benchmark helper: puts JSON-lines events of one tenant, on days past the online window,
//! straight into the stack's archive (bucket, registry, signing key) as the archive job
//! writes it: parts, chained manifest revisions, signed checkpoints. The events wait in an
//! in-memory table, one file at a time, instead of going through DynamoDB Local, so a
//! range of ten million events is set up in minutes. The archive code that runs is the
//! service's own (`Archiver`); only where it reads the events from differs.
//!
//! usage: seed_archive TENANT FILE...   (with the stack's environment; each file is
//! archived in one run and may be deleted once the next one starts)

use audit::domain::event::Event;
use audit::domain::tenant::TenantId;
use audit::domain::timestamp::Timestamp;
use audit::memory::MemoryStore;
use audit::ports::TenantRegistry;
use audit::usecases::archive::{ArchiveStores, Archiver, Options};
use audit_runtime::FromEnv;
use audit_runtime::config::{self, SigningKeys};
use std::io::BufRead;
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let tenant = args.next().ok_or_else(|| anyhow::anyhow!("usage: seed_archive TENANT FILE..."))?;
    let tenant = TenantId::parse(&tenant).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let aws = audit_aws::Aws::load().await;
    let table = aws.table(&config::table()?);
    let bucket = aws.bucket(&config::required(config::ARCHIVE_BUCKET)?);
    let signing = SigningKeys::from_env()?;
    let signer = aws.keys(&signing.current, &signing.retired);
    let options = Options {
        default_hot_days: config::hot_days()?,
        part_max_rows: config::number(config::ARCHIVE_PART_ROWS, 1_000_000, 1)?,
    };
    let now = Timestamp::now();
    table.register(&tenant, now).await?;
    for path in args {
        let started = std::time::Instant::now();
        let memory = Arc::new(MemoryStore::default());
        let mut rows = 0u64;
        for line in std::io::BufReader::new(std::fs::File::open(&path)?).lines() {
            let mut raw: serde_json::Value = serde_json::from_str(&line?)?;
            if let Some(o) = raw.as_object_mut() {
                o.remove("tenant_id");
            }
            let stored = Event::validate(raw, &tenant, now).map_err(|v| anyhow::anyhow!("{v:?}"))?.stamp(now);
            memory.insert(stored, 0);
            rows += 1;
        }
        let stores = ArchiveStores {
            registry: table.clone(),
            bucket: bucket.clone(),
            signer: signer.clone(),
            ..ArchiveStores::on(&memory, &bucket, &signer)
        };
        let report = Archiver::new(stores, options.clone()).run(now, Some(&tenant), None).await?;
        let committed: u64 = report.committed.iter().map(|c| c.rows).sum();
        anyhow::ensure!(report.failures.is_empty(), "{path}: {:?}", report.failures);
        anyhow::ensure!(committed == rows, "{path}: {committed} of {rows} events archived");
        println!(
            "{path}: {rows} events in {} part(s), {:.1} s",
            report.committed.len(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
