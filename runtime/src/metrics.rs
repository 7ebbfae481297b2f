//! CloudWatch Embedded Metric Format: one JSON line on stdout per datapoint group, which
//! CloudWatch turns into metrics without an API call or a permission (docs/operations.md,
//! "Metrics"). Off when `AUDIT_METRICS_NAMESPACE` is unset (locally).

use crate::config::{self, ConfigError};
use audit::domain::ingest::Tally;
use serde_json::{Map, Value, json};
use std::io::Write;

/// The metrics' names, as `template.yaml`'s alarms and docs/operations.md ("Metrics") name
/// them; every datapoint is emitted under one of these (a test holds the three together).
pub mod name {
    pub const EVENTS_CREATED: &str = "EventsCreated";
    pub const EVENTS_DUPLICATE: &str = "EventsDuplicate";
    pub const EVENTS_CONFLICT: &str = "EventsConflict";
    pub const EVENTS_REJECTED: &str = "EventsRejected";
    pub const EVENTS_THROTTLED: &str = "EventsThrottled";
    pub const EVENTS_DEAD_LETTERED: &str = "EventsDeadLettered";
    pub const QUERY_ITEMS_READ: &str = "QueryItemsRead";
    pub const QUERY_REQUESTS: &str = "QueryRequests";
    pub const HTTP_SERVER_ERRORS: &str = "HttpServerErrors";
    pub const DATA_INTEGRITY_ERRORS: &str = "DataIntegrityErrors";
    pub const ARCHIVE_LAG_DAYS: &str = "ArchiveLagDays";
    pub const ARCHIVE_EVENTS_MOVED: &str = "ArchiveEventsMoved";
    pub const EXPORT_ROWS: &str = "ExportRows";
    pub const EXPORT_BYTES: &str = "ExportBytes";
    pub const EXPORT_DURATION_SECONDS: &str = "ExportDurationSeconds";
    pub const EXPORT_FAILURES: &str = "ExportFailures";
    pub const EXPORTS_RECLAIMED: &str = "ExportsReclaimed";

    #[cfg(test)]
    pub const ALL: &[&str] = &[
        EVENTS_CREATED,
        EVENTS_DUPLICATE,
        EVENTS_CONFLICT,
        EVENTS_REJECTED,
        EVENTS_THROTTLED,
        EVENTS_DEAD_LETTERED,
        QUERY_ITEMS_READ,
        QUERY_REQUESTS,
        HTTP_SERVER_ERRORS,
        DATA_INTEGRITY_ERRORS,
        ARCHIVE_LAG_DAYS,
        ARCHIVE_EVENTS_MOVED,
        EXPORT_ROWS,
        EXPORT_BYTES,
        EXPORT_DURATION_SECONDS,
        EXPORT_FAILURES,
        EXPORTS_RECLAIMED,
    ];
}

/// A metric's unit, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Bytes,
    Seconds,
    None,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
            Unit::Seconds => "Seconds",
            Unit::None => "None",
        }
    }
}

/// Where metrics go: the namespace, and the `Stack` and `Function` dimension values.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    namespace: Option<String>,
    stack: String,
    function: String,
}

impl Metrics {
    /// From `AUDIT_METRICS_NAMESPACE`, `AUDIT_METRICS_STACK` and Lambda's
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] for a namespace without a stack name.
    pub fn from_env() -> Result<Self, ConfigError> {
        let namespace = config::optional(config::METRICS_NAMESPACE);
        let stack = match &namespace {
            Some(_) => config::required(config::METRICS_STACK)?,
            None => String::new(),
        };
        let function = config::optional(config::FUNCTION_NAME).unwrap_or_else(|| "local".into());
        Ok(Self { namespace, stack, function })
    }

    /// Metrics written to `namespace` (for tests and benchmarks).
    #[must_use]
    pub fn to(namespace: &str, stack: &str, function: &str) -> Self {
        Self { namespace: Some(namespace.into()), stack: stack.into(), function: function.into() }
    }

    /// The EMF line of one group of datapoints: `values` as (name, unit, value), each
    /// under every dimension set of `sets` (each holds `Stack` first, its value filled in;
    /// `Function` is filled in too), with `dims` giving the other dimensions' values and
    /// `properties` going along unaggregated (a tenant, a job id). `None` when off.
    #[must_use]
    pub fn line(
        &self,
        sets: &[&[&str]],
        dims: &[(&str, &str)],
        values: &[(&str, Unit, f64)],
        properties: &[(&str, Value)],
    ) -> Option<String> {
        let namespace = self.namespace.as_ref()?;
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let metrics: Vec<Value> =
            values.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()})).collect();
        let mut line = Map::new();
        line.insert(
            "_aws".into(),
            json!({"Timestamp": timestamp, "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": sets, "Metrics": metrics}]}),
        );
        line.insert("Stack".into(), Value::String(self.stack.clone()));
        if sets.iter().any(|s| s.contains(&"Function")) {
            line.insert("Function".into(), Value::String(self.function.clone()));
        }
        for (k, v) in dims {
            line.insert((*k).into(), Value::String((*v).into()));
        }
        for (k, v) in properties {
            line.insert((*k).into(), v.clone());
        }
        for (name, _, value) in values {
            line.insert((*name).into(), json!(value));
        }
        Some(Value::Object(line).to_string())
    }

    /// Writes [`Metrics::line`] to stdout, where Lambda sends it to CloudWatch Logs.
    pub fn emit(
        &self,
        sets: &[&[&str]],
        dims: &[(&str, &str)],
        values: &[(&str, Unit, f64)],
        properties: &[(&str, Value)],
    ) {
        if let Some(line) = self.line(sets, dims, values, properties) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
        }
    }
}

impl Metrics {
    /// How one request's or message's events ended (`Source`: `http` or `queue`).
    pub fn events(&self, source: &str, tally: &Tally, tenant: Option<&str>) {
        let values = [
            (name::EVENTS_CREATED, Unit::Count, f64::from(tally.created)),
            (name::EVENTS_DUPLICATE, Unit::Count, f64::from(tally.duplicate)),
            (name::EVENTS_CONFLICT, Unit::Count, f64::from(tally.conflict)),
            (name::EVENTS_REJECTED, Unit::Count, f64::from(tally.rejected)),
            (name::EVENTS_THROTTLED, Unit::Count, f64::from(tally.throttled)),
        ];
        let props: Vec<(&str, Value)> = tenant.map(|t| ("tenant", json!(t))).into_iter().collect();
        self.emit(&[&["Stack"], &["Stack", "Source"]], &[("Source", source)], &values, &props);
    }

    /// Stored data that failed its integrity check and was not served: whose, and which
    /// event (or export job), go along for the runbook (docs/operations.md).
    pub fn integrity(&self, tenant: Option<&str>, event: Option<&str>) {
        let props = [("tenant", json!(tenant)), ("event", json!(event))];
        self.emit(&[&["Stack"]], &[], &[(name::DATA_INTEGRITY_ERRORS, Unit::Count, 1.0)], &props);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_embedded_metric_format() {
        let m = Metrics::to("AuditLog", "audit-prod", "fn-1");
        let line = m.line(
            &[&["Stack"], &["Stack", "Source"]],
            &[("Source", "http")],
            &[("EventsCreated", Unit::Count, 3.0), ("EventsDuplicate", Unit::Count, 1.0)],
            &[("tenant", json!("acme"))],
        );
        let v: Value = serde_json::from_str(&line.unwrap_or_default()).unwrap_or_default();
        let cw = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "AuditLog");
        assert_eq!(cw["Dimensions"], json!([["Stack"], ["Stack", "Source"]]));
        assert_eq!(cw["Metrics"][0], json!({"Name": "EventsCreated", "Unit": "Count"}));
        assert_eq!((&v["Stack"], &v["Source"], &v["tenant"]), (&json!("audit-prod"), &json!("http"), &json!("acme")));
        assert_eq!((&v["EventsCreated"], &v["EventsDuplicate"]), (&json!(3.0), &json!(1.0)));
        assert!(v["_aws"]["Timestamp"].as_u64().is_some_and(|t| t > 1_700_000_000_000));
        assert_eq!(Metrics::default().line(&[&["Stack"]], &[], &[("X", Unit::Count, 1.0)], &[]), None);
    }

    #[test]
    fn the_template_and_the_docs_name_the_metrics_the_code_emits() {
        // Every metric an alarm of the template watches in our namespace is one we emit
        let template = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"));
        let lines: Vec<&str> = template.lines().map(str::trim).collect();
        let alarmed: Vec<&str> = lines
            .windows(2)
            .filter(|w| w[0] == "Namespace: AuditLog")
            .filter_map(|w| w[1].strip_prefix("MetricName: "))
            .collect();
        assert!(alarmed.len() >= 6, "{alarmed:?}");
        for metric in &alarmed {
            assert!(name::ALL.contains(metric), "the template alarms on {metric}, which no code emits");
        }
        // And the docs' table lists exactly the metrics we emit.
        let docs = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operations.md"));
        let section = docs.split("\n## Metrics\n").nth(1).and_then(|s| s.split("\n## ").next()).unwrap_or_default();
        let mut documented: Vec<&str> =
            section.lines().filter_map(|l| l.strip_prefix("| `")?.split('`').next()).collect();
        let mut emitted = name::ALL.to_vec();
        documented.sort_unstable();
        emitted.sort_unstable();
        assert_eq!(documented, emitted);
    }
}
