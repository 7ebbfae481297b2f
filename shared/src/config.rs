//! Configuration from the environment, read once at start-up.
//!
//! Local endpoints come only from the SDK's own `AWS_ENDPOINT_URL_*` variables, so the
//! code is the same on Lambda and on the local stack.

use std::env;

pub const TABLE: &str = "AUDIT_TABLE";
pub const ARCHIVE_BUCKET: &str = "AUDIT_ARCHIVE_BUCKET";
pub const EXPORT_BUCKET: &str = "AUDIT_EXPORT_BUCKET";
pub const INGEST_QUEUE_URL: &str = "AUDIT_INGEST_QUEUE_URL";
pub const INGEST_DLQ_URL: &str = "AUDIT_INGEST_DLQ_URL";
pub const EXPORT_QUEUE_URL: &str = "AUDIT_EXPORT_QUEUE_URL";
pub const JWT_SECRET: &str = "AUDIT_JWT_SECRET";
pub const JWKS_URL: &str = "AUDIT_JWKS_URL";
pub const CURSOR_SECRET: &str = "AUDIT_CURSOR_SECRET";
pub const HOT_DAYS: &str = "AUDIT_HOT_DAYS";
pub const PORT: &str = "AUDIT_PORT";
pub const ARCHIVE_PART_ROWS: &str = "AUDIT_ARCHIVE_PART_ROWS";
pub const EXPORT_MAX_ROWS: &str = "AUDIT_EXPORT_MAX_ROWS";

/// A variable is missing or unparsable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("environment variable {0} is invalid: {1}")]
    Invalid(&'static str, String),
}

/// Everything the functions read from the environment. Which parts a function needs is
/// checked by that function at start-up with [`Config::require`].
#[derive(Debug, Clone)]
pub struct Config {
    pub table: String,
    pub archive_bucket: Option<String>,
    pub export_bucket: Option<String>,
    pub ingest_queue_url: Option<String>,
    pub ingest_dlq_url: Option<String>,
    pub export_queue_url: Option<String>,
    pub jwt_secret: Option<String>,
    pub jwks_url: Option<String>,
    /// Signs paging cursors; `AUDIT_JWT_SECRET` when unset.
    pub cursor_secret: Option<String>,
    pub hot_days: u32,
    pub port: u16,
    /// Most rows per archive part (a larger day is split).
    pub archive_part_rows: u64,
    /// Most rows in one export (contract: `EXPORT_MAX_ROWS`).
    pub export_max_rows: u64,
}

impl Config {
    /// # Errors
    /// [`ConfigError`] naming the variable that is missing or invalid.
    pub fn from_env() -> Result<Self, ConfigError> {
        let opt = |name: &'static str| env::var(name).ok().filter(|v| !v.is_empty());
        let parsed = |name: &'static str, default: &str| -> Result<u64, ConfigError> {
            let raw = opt(name).unwrap_or_else(|| default.to_owned());
            raw.parse::<u64>().map_err(|e| ConfigError::Invalid(name, e.to_string()))
        };
        let cfg = Self {
            table: opt(TABLE).ok_or(ConfigError::Missing(TABLE))?,
            archive_bucket: opt(ARCHIVE_BUCKET),
            export_bucket: opt(EXPORT_BUCKET),
            ingest_queue_url: opt(INGEST_QUEUE_URL),
            ingest_dlq_url: opt(INGEST_DLQ_URL),
            export_queue_url: opt(EXPORT_QUEUE_URL),
            jwt_secret: opt(JWT_SECRET),
            jwks_url: opt(JWKS_URL),
            cursor_secret: opt(CURSOR_SECRET).or_else(|| opt(JWT_SECRET)),
            hot_days: u32::try_from(parsed(HOT_DAYS, "90")?)
                .map_err(|e| ConfigError::Invalid(HOT_DAYS, e.to_string()))?,
            port: u16::try_from(parsed(PORT, "3000")?).map_err(|e| ConfigError::Invalid(PORT, e.to_string()))?,
            archive_part_rows: parsed(ARCHIVE_PART_ROWS, "1000000")?,
            export_max_rows: parsed(EXPORT_MAX_ROWS, "1000000")?,
        };
        if cfg.hot_days == 0 {
            return Err(ConfigError::Invalid(HOT_DAYS, "must be at least 1".into()));
        }
        if cfg.archive_part_rows == 0 {
            return Err(ConfigError::Invalid(ARCHIVE_PART_ROWS, "must be at least 1".into()));
        }
        Ok(cfg)
    }

    /// Returns an optional setting a function cannot run without.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] when it is unset.
    pub fn require<'a>(&self, value: &'a Option<String>, name: &'static str) -> Result<&'a str, ConfigError> {
        value.as_deref().ok_or(ConfigError::Missing(name))
    }
}
