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
pub const JWT_SECRET_ARN: &str = "AUDIT_JWT_SECRET_ARN";
pub const JWKS_URL: &str = "AUDIT_JWKS_URL";
pub const JWKS_CACHE_SECONDS: &str = "AUDIT_JWKS_CACHE_SECONDS";
pub const JWT_ISSUER: &str = "AUDIT_JWT_ISSUER";
pub const JWT_AUDIENCE: &str = "AUDIT_JWT_AUDIENCE";
pub const CURSOR_SECRET: &str = "AUDIT_CURSOR_SECRET";
pub const CURSOR_SECRET_ARN: &str = "AUDIT_CURSOR_SECRET_ARN";
pub const REQUEST_DEADLINE_MS: &str = "AUDIT_REQUEST_DEADLINE_MS";
/// The origins whose pages may call the API from a browser ([`crate::cors`]).
pub const CORS_ORIGINS: &str = "AUDIT_CORS_ORIGINS";
pub const METRICS_NAMESPACE: &str = "AUDIT_METRICS_NAMESPACE";
pub const METRICS_STACK: &str = "AUDIT_METRICS_STACK";
/// Set by Lambda: the function's name, a metric dimension.
pub const FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";
pub const HOT_DAYS: &str = "AUDIT_HOT_DAYS";
pub const PORT: &str = "AUDIT_PORT";
pub const ARCHIVE_PART_ROWS: &str = "AUDIT_ARCHIVE_PART_ROWS";
pub const EXPORT_MAX_ROWS: &str = "AUDIT_EXPORT_MAX_ROWS";
pub const EXPORT_ACTIVE_PER_TENANT: &str = "AUDIT_EXPORT_ACTIVE_PER_TENANT";
pub const EXPORT_RUNNING_PER_TENANT: &str = "AUDIT_EXPORT_RUNNING_PER_TENANT";
/// The local runner's export workers (deployed: the template's `ExportConcurrency`).
pub const EXPORT_WORKERS: &str = "AUDIT_EXPORT_WORKERS";
pub const EXPORT_PART_ROWS: &str = "AUDIT_EXPORT_PART_ROWS";
/// Most rows in one export file (a part writes as many files as it needs).
pub const EXPORT_FILE_ROWS: &str = "AUDIT_EXPORT_FILE_ROWS";
/// The KMS key (id, ARN or alias) that signs export manifests and archive checkpoints.
pub const SIGNING_KEY: &str = "AUDIT_SIGNING_KEY";
/// Keys that signed before a rotation, comma-separated: still published and trusted.
pub const SIGNING_KEYS_RETIRED: &str = "AUDIT_SIGNING_KEYS_RETIRED";

/// A variable is missing or unparsable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("environment variable {0} is invalid: {1}")]
    Invalid(&'static str, String),
    /// A secret is given both as a value and as an ARN: which one is meant is unclear.
    #[error("set {0} or {1}, not both")]
    Both(&'static str, &'static str),
    /// A secret named by ARN could not be read at start-up.
    #[error("secret {0} could not be read: {1}")]
    Secret(&'static str, String),
}

/// A function's settings, read from the environment.
pub trait FromEnv: Sized {
    /// # Errors
    /// [`ConfigError`] naming the variable that is missing or invalid.
    fn from_env() -> Result<Self, ConfigError>;

    /// The secrets among the settings, which start-up reads from Secrets Manager when
    /// they are named by ARN.
    fn secrets(&mut self) -> Vec<&mut Secret> {
        Vec::new()
    }
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

/// The per-tenant export limits: `AUDIT_EXPORT_ACTIVE_PER_TENANT` jobs queued or running
/// (10 by default) and `AUDIT_EXPORT_RUNNING_PER_TENANT` running (2 by default), each at
/// least 1, the second at most the first.
///
/// # Errors
/// [`ConfigError::Invalid`].
pub fn export_limits() -> Result<audit::domain::export_dispatch::Limits, ConfigError> {
    let defaults = audit::domain::export_dispatch::Limits::default();
    let active = number(EXPORT_ACTIVE_PER_TENANT, defaults.active, 1)?;
    let running = number(EXPORT_RUNNING_PER_TENANT, defaults.running, 1)?;
    if running > active {
        return Err(ConfigError::Invalid(EXPORT_RUNNING_PER_TENANT, format!("must be at most {active}")));
    }
    Ok(audit::domain::export_dispatch::Limits { active, running })
}

/// The signing key and the retired ones (`AUDIT_SIGNING_KEY`, required;
/// `AUDIT_SIGNING_KEYS_RETIRED`, comma-separated, optional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeys {
    pub current: String,
    pub retired: Vec<String>,
}

impl FromEnv for SigningKeys {
    fn from_env() -> Result<Self, ConfigError> {
        let retired = optional(SIGNING_KEYS_RETIRED).unwrap_or_default();
        Ok(Self {
            current: required(SIGNING_KEY)?,
            retired: retired.split(',').map(str::trim).filter(|k| !k.is_empty()).map(str::to_owned).collect(),
        })
    }
}

/// The sizes of export parts and files: `AUDIT_EXPORT_PART_ROWS` (1,000,000 by default)
/// rows planned per part, `AUDIT_EXPORT_FILE_ROWS` (5,000,000) rows at most per file; a
/// file's bytes as [`audit::domain::export_part::Sizes`] says.
///
/// # Errors
/// [`ConfigError::Invalid`].
pub fn export_sizes() -> Result<audit::domain::export_part::Sizes, ConfigError> {
    let defaults = audit::domain::export_part::Sizes::default();
    Ok(audit::domain::export_part::Sizes {
        part_rows: number(EXPORT_PART_ROWS, defaults.part_rows, 1)?,
        file_rows: number(EXPORT_FILE_ROWS, defaults.file_rows, 1)?,
        ..defaults
    })
}

/// A secret: its value (`X`, the local stack) or the ARN of the Secrets Manager secret
/// that holds it (`X_ARN`, deployed), read once at start-up ([`crate::start`]) into its
/// value, so everything after start-up is one code path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    Value(String),
    /// Not read yet: the variable that named it, and the ARN.
    Arn(&'static str, String),
}

impl Secret {
    /// `name` or `arn_name`; both set is an error, neither is `None`.
    ///
    /// # Errors
    /// [`ConfigError::Both`].
    pub fn from_env(name: &'static str, arn_name: &'static str) -> Result<Option<Self>, ConfigError> {
        Self::from_lookup(name, arn_name, optional)
    }

    fn from_lookup(
        name: &'static str,
        arn_name: &'static str,
        lookup: impl Fn(&'static str) -> Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        match (lookup(name), lookup(arn_name)) {
            (Some(_), Some(_)) => Err(ConfigError::Both(name, arn_name)),
            (Some(v), None) => Ok(Some(Self::Value(v))),
            (None, Some(arn)) => Ok(Some(Self::Arn(arn_name, arn))),
            (None, None) => Ok(None),
        }
    }

    /// The secret's value.
    ///
    /// # Errors
    /// [`ConfigError::Secret`] for a secret still named only by its ARN (start-up reads
    /// every one, so this means it was skipped).
    pub fn value(&self) -> Result<&str, ConfigError> {
        match self {
            Self::Value(v) => Ok(v),
            Self::Arn(name, _) => Err(ConfigError::Secret(name, "not read at start-up".into())),
        }
    }
}

/// How bearer tokens are checked: HS256 with the token secret (`AUDIT_JWT_SECRET` or
/// `AUDIT_JWT_SECRET_ARN`), RS256 with keys from `AUDIT_JWKS_URL` (cached for
/// `AUDIT_JWKS_CACHE_SECONDS`, 300 by default), or both; `iss` and `aud` as
/// `AUDIT_JWT_ISSUER` and `AUDIT_JWT_AUDIENCE` require.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    pub jwt_secret: Option<Secret>,
    pub jwks_url: Option<String>,
    pub jwks_cache: std::time::Duration,
    pub expect: audit_http::auth::Expect,
}

impl FromEnv for Auth {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            jwt_secret: Secret::from_env(JWT_SECRET, JWT_SECRET_ARN)?,
            jwks_url: optional(JWKS_URL).map(https_only).transpose()?,
            jwks_cache: std::time::Duration::from_secs(number(JWKS_CACHE_SECONDS, 300, 1)?),
            expect: audit_http::auth::Expect { issuer: optional(JWT_ISSUER), audience: optional(JWT_AUDIENCE) },
        })
    }
}

/// The JWKS is fetched over https only: refused at start-up rather than at every token.
fn https_only(url: String) -> Result<String, ConfigError> {
    if url.get(..8).is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://")) {
        Ok(url)
    } else {
        Err(ConfigError::Invalid(JWKS_URL, "must be an https:// URL".into()))
    }
}

impl Auth {
    /// The token verifier these settings make.
    ///
    /// # Errors
    /// [`ConfigError::Secret`] when the token secret was not read at start-up.
    pub fn verifier(&self) -> Result<audit_http::Verifier, ConfigError> {
        let secret = self.jwt_secret.as_ref().map(Secret::value).transpose()?;
        let timing = audit_http::auth::JwksTiming { ttl: self.jwks_cache, ..Default::default() };
        Ok(audit_http::Verifier::new(secret, self.jwks_url.as_deref())
            .with_jwks_timing(timing)
            .expecting(self.expect.clone()))
    }

    /// The secrets to read at start-up.
    pub fn secrets(&mut self) -> Vec<&mut Secret> {
        self.jwt_secret.iter_mut().collect()
    }
}

/// The secret that signs paging cursors: `AUDIT_CURSOR_SECRET` (or `_ARN`), else the token
/// secret (locally).
///
/// # Errors
/// [`ConfigError::Missing`] naming `AUDIT_CURSOR_SECRET` when neither is set;
/// [`ConfigError::Both`].
pub fn cursor_secret() -> Result<Secret, ConfigError> {
    match Secret::from_env(CURSOR_SECRET, CURSOR_SECRET_ARN)? {
        Some(s) => Ok(s),
        None => Secret::from_env(JWT_SECRET, JWT_SECRET_ARN)?.ok_or(ConfigError::Missing(CURSOR_SECRET)),
    }
}

/// What every API function's edge does around each request ([`crate::edge`]).
#[derive(Debug, Clone)]
pub struct Edge {
    /// `AUDIT_REQUEST_DEADLINE_MS` (20,000 by default): the most a request may take,
    /// retries included, before it answers `503 throttled`.
    pub deadline: std::time::Duration,
    pub metrics: crate::metrics::Metrics,
    /// `AUDIT_CORS_ORIGINS`: who may call from a browser page of another origin.
    pub cors: crate::cors::Cors,
}

impl FromEnv for Edge {
    fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            deadline: std::time::Duration::from_millis(number(REQUEST_DEADLINE_MS, 20_000, 100)?),
            metrics: crate::metrics::Metrics::from_env()?,
            cors: crate::cors::Cors::from_env()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_a_value_or_an_arn_never_both() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &'static str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
        };
        let read = |pairs| Secret::from_lookup(JWT_SECRET, JWT_SECRET_ARN, env(pairs));
        assert_eq!(read(&[(JWT_SECRET, "s")]), Ok(Some(Secret::Value("s".into()))));
        assert_eq!(read(&[(JWT_SECRET_ARN, "arn:x")]), Ok(Some(Secret::Arn(JWT_SECRET_ARN, "arn:x".into()))));
        assert_eq!(read(&[]), Ok(None));
        let both = read(&[(JWT_SECRET, "s"), (JWT_SECRET_ARN, "arn:x")]);
        assert_eq!(both, Err(ConfigError::Both(JWT_SECRET, JWT_SECRET_ARN)));
        assert_eq!(
            both.map_err(|e| e.to_string()),
            Err("set AUDIT_JWT_SECRET or AUDIT_JWT_SECRET_ARN, not both".into())
        );
        assert!(Secret::Arn(JWT_SECRET_ARN, "arn:x".into()).value().is_err());
    }

    #[test]
    fn a_missing_or_bad_setting_is_named() {
        // Names no test or process sets.
        assert_eq!(required("AUDIT_TEST_UNSET"), Err(ConfigError::Missing("AUDIT_TEST_UNSET")));
        assert_eq!(number("AUDIT_TEST_UNSET", 5u32, 1), Ok(5));
        assert!(matches!(number("AUDIT_TEST_UNSET", 0u32, 1), Err(ConfigError::Invalid("AUDIT_TEST_UNSET", _))));
    }

    #[test]
    fn the_jwks_url_must_be_https() {
        assert_eq!(https_only("https://id.example/jwks.json".into()), Ok("https://id.example/jwks.json".into()));
        for bad in ["http://id.example/jwks.json", "ftp://x", "id.example", ""] {
            assert!(matches!(https_only(bad.into()), Err(ConfigError::Invalid(JWKS_URL, _))), "{bad}");
        }
    }
}
