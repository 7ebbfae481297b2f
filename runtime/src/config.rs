//! Configuration from the environment, read once at start-up into each function's own
//! typed struct ([`FromEnv`]): a function reads only the settings it needs, and a
//! missing or unusable one is named in the error. The variable names are here once.
//!
//! Local endpoints come only from the SDK's own `AWS_ENDPOINT_URL_*` variables, so the
//! code is the same on Lambda and on the local stack.

use std::env;
use std::str::FromStr;

pub const TABLE: &str = "AUDIT_TABLE";
pub const ARCHIVE_BUCKET: &str = "AUDIT_ARCHIVE_BUCKET";
pub const EXPORT_BUCKET: &str = "AUDIT_EXPORT_BUCKET";
pub const INGEST_QUEUE_URL: &str = "AUDIT_INGEST_QUEUE_URL";
pub const INGEST_DLQ_URL: &str = "AUDIT_INGEST_DLQ_URL";
pub const EXPORT_QUEUE_URL: &str = "AUDIT_EXPORT_QUEUE_URL";
pub const EXPORT_DLQ_URL: &str = "AUDIT_EXPORT_DLQ_URL";
pub const JWT_SECRET: &str = "AUDIT_JWT_SECRET";
pub const JWKS_URL: &str = "AUDIT_JWKS_URL";
pub const CURSOR_SECRET: &str = "AUDIT_CURSOR_SECRET";
pub const HOT_DAYS: &str = "AUDIT_HOT_DAYS";
pub const PORT: &str = "AUDIT_PORT";
pub const ARCHIVE_PART_ROWS: &str = "AUDIT_ARCHIVE_PART_ROWS";
pub const EXPORT_MAX_ROWS: &str = "AUDIT_EXPORT_MAX_ROWS";

/// A variable is missing or unparsable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("environment variable {0} is invalid: {1}")]
    Invalid(&'static str, String),
}

/// A function's settings, read from the environment.
pub trait FromEnv: Sized {
    /// # Errors
    /// [`ConfigError`] naming the variable that is missing or invalid.
    fn from_env() -> Result<Self, ConfigError>;
}

/// A setting that may be unset (empty counts as unset).
#[must_use]
pub fn optional(name: &'static str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.is_empty())
}

/// A setting that must be set.
///
/// # Errors
/// [`ConfigError::Missing`] naming it.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    optional(name).ok_or(ConfigError::Missing(name))
}

/// A number, `default` when unset, at least `min`.
///
/// # Errors
/// [`ConfigError::Invalid`] naming it.
pub fn number<T>(name: &'static str, default: T, min: T) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + std::fmt::Display,
    T::Err: std::fmt::Display,
{
    let value = match optional(name) {
        None => default,
        Some(raw) => raw.parse::<T>().map_err(|e| ConfigError::Invalid(name, e.to_string()))?,
    };
    if value < min {
        return Err(ConfigError::Invalid(name, format!("must be at least {min}")));
    }
    Ok(value)
}

/// `AUDIT_TABLE`, which every function uses.
///
/// # Errors
/// [`ConfigError::Missing`].
pub fn table() -> Result<String, ConfigError> {
    required(TABLE)
}

/// `AUDIT_HOT_DAYS`: the online window of tenants without their own (default 90).
///
/// # Errors
/// [`ConfigError::Invalid`].
pub fn hot_days() -> Result<u32, ConfigError> {
    number(HOT_DAYS, 90, 1)
}

/// How bearer tokens are checked: HS256 with `AUDIT_JWT_SECRET`, RS256 with keys from
/// `AUDIT_JWKS_URL`, or both.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    pub jwt_secret: Option<String>,
    pub jwks_url: Option<String>,
}

impl FromEnv for Auth {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self { jwt_secret: optional(JWT_SECRET), jwks_url: optional(JWKS_URL) })
    }
}

impl Auth {
    /// The token verifier these settings make.
    #[must_use]
    pub fn verifier(&self) -> audit_http::Verifier {
        audit_http::Verifier::new(self.jwt_secret.as_deref(), self.jwks_url.as_deref())
    }
}

/// The secret that signs paging cursors: `AUDIT_CURSOR_SECRET`, else `AUDIT_JWT_SECRET`.
///
/// # Errors
/// [`ConfigError::Missing`] naming `AUDIT_CURSOR_SECRET` when neither is set.
pub fn cursor_secret() -> Result<String, ConfigError> {
    optional(CURSOR_SECRET).or_else(|| optional(JWT_SECRET)).ok_or(ConfigError::Missing(CURSOR_SECRET))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_bad_setting_is_named() {
        // Names no test or process sets.
        assert_eq!(required("AUDIT_TEST_UNSET"), Err(ConfigError::Missing("AUDIT_TEST_UNSET")));
        assert_eq!(number("AUDIT_TEST_UNSET", 5u32, 1), Ok(5));
        assert!(matches!(number("AUDIT_TEST_UNSET", 0u32, 1), Err(ConfigError::Invalid("AUDIT_TEST_UNSET", _))));
    }
}
