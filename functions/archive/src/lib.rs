//! The archive function: invoked daily by an EventBridge schedule and on demand with
//! `{"now": "RFC 3339", "tenant": "..."}` (both optional). The job itself lives in
//! `audit::usecases::archive`.
//!
//! The job stops between parts a little before the invocation's deadline; every step is
//! resumable, so the next invocation carries on where this one stopped.

use audit::domain::tenant::TenantId;
use audit::domain::timestamp::Timestamp;
use audit::usecases::archive::{ArchiveError, ArchiveStores, Archiver, Options, Report};
use audit_runtime::config::{self, ConfigError, FromEnv, SigningKeys};
use audit_runtime::metrics::{Metrics, Unit, name};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Time kept back from the deadline: the job may end a part's commit this far past its
/// own deadline (its pace estimate is off), and an unfinished step is resumed anyway.
pub const MARGIN: Duration = Duration::from_secs(90);

/// What the archive function reads from the environment.
pub struct Config {
    pub table: String,
    pub archive_bucket: String,
    pub options: Options,
    /// The key that signs each new chain head into a checkpoint.
    pub signing: SigningKeys,
    pub metrics: Metrics,
}

impl FromEnv for Config {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: config::table()?,
            archive_bucket: config::required(config::ARCHIVE_BUCKET)?,
            options: Options {
                default_hot_days: config::hot_days()?,
                part_max_rows: config::number(config::ARCHIVE_PART_ROWS, 1_000_000, 1)?,
            },
            signing: SigningKeys::from_env()?,
            metrics: Metrics::from_env()?,
        })
    }
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    BadPayload(&'static str),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// Some tenants failed (the others were archived); the report is in the log.
    #[error("{} tenant(s) failed", .0.failures.len())]
    Tenants(Box<Report>),
}

/// What every invocation runs on.
pub struct Job {
    pub stores: ArchiveStores,
    pub options: Options,
}

impl Job {
    /// Runs the job for one invocation's `payload`, stopping between parts once `deadline`
    /// (less [`MARGIN`]) is near.
    ///
    /// # Errors
    /// [`RunError`]: a payload that is not `{"now", "tenant"}`, the registry unreadable,
    /// or tenants that failed, so the failure shows in metrics and alarms.
    pub async fn handle(&self, payload: Value, deadline: Option<Instant>) -> Result<Report, RunError> {
        let field = |name: &str| payload.get(name).and_then(Value::as_str);
        let now = match field("now") {
            Some(t) => Timestamp::parse(t).map_err(|_| RunError::BadPayload("now must be RFC 3339"))?,
            None => Timestamp::now(),
        };
        let tenant = field("tenant")
            .map(TenantId::parse)
            .transpose()
            .map_err(|_| RunError::BadPayload("tenant ids are 1-64 characters of A-Z a-z 0-9 _ -"))?;
        let deadline = deadline.map(|d| d.checked_sub(MARGIN).unwrap_or(d));
        let report =
            Archiver::new(self.stores.clone(), self.options.clone()).run(now, tenant.as_ref(), deadline).await?;
        if !report.failures.is_empty() {
            tracing::error!(report = %serde_json::to_string(&report).unwrap_or_default(), "archive run had failures");
            return Err(RunError::Tenants(Box::new(report)));
        }
        tracing::info!(
            parts = report.committed.len(),
            resumed = report.resumed,
            unfinished = report.unfinished,
            "archive run"
        );
        Ok(report)
    }
}

/// A run's datapoints (docs/operations.md, "Metrics"): the events it moved, and
/// `ArchiveLagDays`, the run's [`Report::lag_days`]. A lag of 0 is reported only when the
/// run saw every tenant: tenants a deadline or a failure kept from view may lag, and the
/// lag alarm treats missing datapoints as a lag once they last 3 hours. A known lag is
/// always reported.
pub fn report_metrics(metrics: &Metrics, outcome: &Result<Report, RunError>) {
    let report = match outcome {
        Ok(report) => report,
        Err(RunError::Tenants(report)) => report,
        Err(_) => return,
    };
    #[expect(clippy::cast_precision_loss, reason = "a run moves far fewer than 2^53 events")]
    let moved = report.committed.iter().map(|c| c.rows).sum::<u64>() as f64;
    let mut values = vec![(name::ARCHIVE_EVENTS_MOVED, Unit::Count, moved)];
    if report.lag_days > 0 || (report.unvisited == 0 && report.failures.is_empty()) {
        values.push((name::ARCHIVE_LAG_DAYS, Unit::None, f64::from(report.lag_days)));
    }
    metrics.emit(&[&["Stack"]], &[], &values, &[]);
}

#[cfg(test)]
mod tests;
