//! `auditlog`: the operator's command line (contract section 6).

use anyhow::Context;
use audit::domain::signing::{PublicKey, keys_from_view, keys_view};
use audit::domain::tenant::{MAX_SHARDS, RAISE_DELAY_SECONDS, TenantId, TenantSettings};
use audit::domain::timestamp::Timestamp;
use audit::formats::TextFormat;
use audit::ports::{KeyDirectory, Tenants};
use audit::usecases::archive::{ArchiveStores, Archiver};
use audit::usecases::{convert, verify};
use audit_http::auth::issue_hs256;
use audit_runtime::config::{self, FromEnv, SigningKeys};
use audit_runtime::{Aws, telemetry};
use clap::{Parser, Subcommand};
use std::time::Duration;

#[derive(Parser)]
#[command(name = "auditlog", about = "Operate the audit log service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a development JWT signed with AUDIT_JWT_SECRET.
    Token {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "audit:read audit:write audit:export")]
        scope: String,
        #[arg(long, default_value = "operator")]
        sub: String,
        /// Lifetime: a number with s, m, h or d.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: Duration,
    },
    /// Run the archive job once: every day past each tenant's online window moves to S3.
    Archive {
        /// Act as if the time were this (RFC 3339).
        #[arg(long)]
        now: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        /// Stop between parts once this long has passed (a number with s, m, h or d), as
        /// a function's deadline would; `unfinished` in the report says there is more.
        #[arg(long = "for", value_parser = parse_ttl)]
        run_for: Option<Duration>,
    },
    /// Check every archived part against its manifest, the manifest chain, and the chain
    /// against its signed checkpoints.
    Verify {
        #[arg(long)]
        tenant: Option<String>,
        /// The trusted public keys: a saved `GET /v1/keys` answer (default: the keys
        /// AUDIT_SIGNING_KEY and AUDIT_SIGNING_KEYS_RETIRED name, read from KMS).
        #[arg(long)]
        keys: Option<std::path::PathBuf>,
    },
    /// Print the public keys that check export manifests and archive checkpoints, as
    /// `GET /v1/keys` answers (from KMS: AUDIT_SIGNING_KEY, AUDIT_SIGNING_KEYS_RETIRED).
    Keys,
    /// Convert JSON-lines events to archive Parquet, or archive Parquet to an export file
    /// (CSV or JSON lines, newest first); chosen by the file endings.
    Convert { input: std::path::PathBuf, output: std::path::PathBuf },
    /// Set a tenant's write shards (only ever raised) and its own online window.
    Tenant {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value_t = 1)]
        shards: u16,
        #[arg(long)]
        hot_days: Option<u32>,
    },
}

/// The archive's settings and stores, as the archive function has them.
async fn archive_env() -> anyhow::Result<(archive::Config, ArchiveStores, Aws)> {
    let config = archive::Config::from_env()?;
    let aws = Aws::load().await;
    let signer = aws.keys(&config.signing.current, &config.signing.retired);
    let stores = ArchiveStores::on(&aws.table(&config.table), &aws.bucket(&config.archive_bucket), &signer);
    Ok((config, stores, aws))
}

/// The published keys, from KMS as configured.
async fn published_keys(aws: &Aws) -> anyhow::Result<Vec<PublicKey>> {
    let signing = SigningKeys::from_env()?;
    Ok(aws.keys(&signing.current, &signing.retired).keys().await?)
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("bad duration unit in {s:?}; use s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    match Cli::parse().command {
        Command::Token { tenant, scope, sub, ttl } => {
            let secret = config::required(config::JWT_SECRET)?;
            let tenant = TenantId::parse(&tenant)?;
            println!("{}", issue_hs256(&secret, &tenant, &sub, &scope, ttl)?);
        }
        Command::Convert { input, output } => {
            let ext = |p: &std::path::Path| p.extension().and_then(|e| e.to_str()).unwrap_or_default().to_lowercase();
            let started = std::time::Instant::now();
            let done = match (ext(&input).as_str(), ext(&output).as_str()) {
                ("jsonl" | "json" | "ndjson", "parquet") => convert::jsonl_to_parquet(&input, &output)?,
                ("parquet", "csv") => convert::parquet_to_export(&input, &output, TextFormat::Csv)?,
                ("parquet", "jsonl") => convert::parquet_to_export(&input, &output, TextFormat::Jsonl)?,
                (from, to) => {
                    anyhow::bail!(
                        "cannot convert .{from} to .{to}: use .jsonl to .parquet, or .parquet to .csv or .jsonl"
                    )
                }
            };
            eprintln!(
                "{} rows, {} bytes written to {} in {:.2} s",
                done.rows,
                done.bytes,
                output.display(),
                started.elapsed().as_secs_f64()
            );
        }
        Command::Archive { now, tenant, run_for } => {
            let now = match now {
                Some(t) => Timestamp::parse(&t).map_err(|_| anyhow::anyhow!("--now must be RFC 3339"))?,
                None => Timestamp::now(),
            };
            let tenant = tenant.map(|t| TenantId::parse(&t)).transpose()?;
            let (config, stores, _) = archive_env().await?;
            let deadline = run_for.map(|d| std::time::Instant::now() + d);
            let report = Archiver::new(stores, config.options).run(now, tenant.as_ref(), deadline).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            anyhow::ensure!(report.failures.is_empty(), "{} tenant(s) failed", report.failures.len());
        }
        Command::Verify { tenant, keys } => {
            let tenant = tenant.map(|t| TenantId::parse(&t)).transpose()?;
            let (_, s, aws) = archive_env().await?;
            let keys = match keys {
                Some(path) => {
                    let view: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)
                        .with_context(|| format!("{} is not a GET /v1/keys answer", path.display()))?;
                    keys_from_view(&view)
                }
                None => published_keys(&aws).await?,
            };
            anyhow::ensure!(!keys.is_empty(), "no public key to check checkpoints with");
            let checked = verify::verify(&*s.tenant_registry, &*s.registry, &*s.bucket, &keys, tenant.as_ref()).await?;
            for f in &checked.findings {
                println!("{} {}: {}", f.tenant, f.kind, f.detail);
            }
            eprintln!(
                "{} tenant(s), {} manifest(s), {} checkpoint(s), {} part(s), {} row(s) checked; {} problem(s)",
                checked.tenants,
                checked.manifests,
                checked.checkpoints,
                checked.parts,
                checked.rows,
                checked.findings.len()
            );
            if !checked.findings.is_empty() {
                std::process::exit(1);
            }
        }
        Command::Keys => {
            let keys = published_keys(&Aws::load().await).await?;
            println!("{}", serde_json::to_string_pretty(&keys_view(&keys))?);
        }
        Command::Tenant { tenant, shards, hot_days } => {
            anyhow::ensure!((1..=MAX_SHARDS).contains(&shards), "shards must be 1 to {MAX_SHARDS}");
            let (table, default_hot_days) = (config::table()?, config::hot_days()?);
            let tenant = TenantId::parse(&tenant)?;
            Aws::load()
                .await
                .table(&table)
                .set_settings(&tenant, TenantSettings::new(shards, hot_days))
                .await
                .context("shards can only be raised")?;
            println!(
                "tenant {tenant}: {shards} shard(s) (a raise reaches writes in {RAISE_DELAY_SECONDS} s), online window {} days",
                hot_days.unwrap_or(default_hot_days)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ttls() {
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("h").is_err());
    }
}
