//! CloudWatch Embedded Metric Format: one JSON line on stdout per datapoint group, which
//! CloudWatch turns into metrics without an API call or a permission (docs/operations.md,
//! "Metrics"). Off when `AUDIT_METRICS_NAMESPACE` is unset (locally).

use crate::config::{self, ConfigError};
use audit::domain::ingest::Tally;
use serde_json::{Map, Value, json};
use std::io::Write;

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
            ("EventsCreated", Unit::Count, f64::from(tally.created)),
            ("EventsDuplicate", Unit::Count, f64::from(tally.duplicate)),
            ("EventsConflict", Unit::Count, f64::from(tally.conflict)),
            ("EventsRejected", Unit::Count, f64::from(tally.rejected)),
            ("EventsThrottled", Unit::Count, f64::from(tally.throttled)),
        ];
        let props: Vec<(&str, Value)> = tenant.map(|t| ("tenant", json!(t))).into_iter().collect();
        self.emit(&[&["Stack"], &["Stack", "Source"]], &[("Source", source)], &values, &props);
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
}
