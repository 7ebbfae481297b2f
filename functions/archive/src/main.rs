//! Lambda entry point of the archive job, invoked daily by an EventBridge schedule and on
//! demand with `{"now": "RFC 3339", "tenant": "..."}` (both optional).
//!
//! The job stops between days a minute before the invocation's deadline; every step is
//! resumable, so the next invocation carries on where this one stopped.

use audit::archive::{Archiver, Options, Report};
use audit::blob::Bucket;
use audit::config::{self, Config};
use audit::store::Store;
use audit::tenant::TenantId;
use audit::timestamp::Timestamp;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Time kept back from the deadline to finish the day in progress.
const MARGIN: Duration = Duration::from_secs(90);

struct Job {
    store: Store,
    bucket: Bucket,
    options: Options,
}

async fn handle(job: &Job, event: LambdaEvent<Value>) -> Result<Report, Error> {
    let field = |name: &str| event.payload.get(name).and_then(Value::as_str).map(str::to_owned);
    let now = match field("now") {
        Some(t) => Timestamp::parse(&t).map_err(|_| "now must be RFC 3339")?,
        None => Timestamp::now(),
    };
    let tenant = field("tenant").map(|t| TenantId::parse(&t)).transpose()?;
    let left = event.context.deadline().duration_since(SystemTime::now()).unwrap_or_default();
    let deadline = Instant::now() + left.saturating_sub(MARGIN);
    let archiver = Archiver::new(&job.store, &job.bucket, job.options.clone());
    let report = archiver.run(now, tenant.as_ref(), Some(deadline)).await?;
    if !report.failures.is_empty() {
        // Fail the invocation so the failure shows in metrics and alarms; the report is
        // in the log.
        tracing::error!(report = %serde_json::to_string(&report)?, "archive run had failures");
        return Err(format!("{} tenant(s) failed", report.failures.len()).into());
    }
    Ok(report)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    audit::telemetry::init();
    let config = Config::from_env()?;
    let bucket = config.require(&config.archive_bucket, config::ARCHIVE_BUCKET)?;
    let sdk = audit::aws::sdk_config().await;
    let job = Job {
        store: Store::new(audit::aws::dynamodb(&sdk), &config.table),
        bucket: Bucket::new(audit::aws::s3(&sdk), bucket),
        options: Options::from_config(&config),
    };
    let job = &job;
    lambda_runtime::run(service_fn(move |event| handle(job, event))).await
}
