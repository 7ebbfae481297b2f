//! The audit log's model crate, in layers, each a folder whose `mod.rs` says what it may
//! depend on:
//!
//! - [`domain`]: the event and every rule about it, with no I/O;
//! - [`ports`]: the narrow traits through which use cases reach storage and queues;
//! - [`usecases`]: ingest, query, archive, verify, export and convert, on the ports;
//! - [`formats`]: the archive's Parquet and the export files;
//! - [`memory`]: in-memory adapters of every port, for fast tests here and in the
//!   function crates;
//! - `reference` (tests only): the read filters again, from the contract's words alone.
//!
//! The AWS adapters (`audit-aws`), the HTTP edge (`audit-http`) and the Lambda start-up
//! (`audit-runtime`) are crates of their own, so Cargo keeps these layers free of them.

pub mod domain;
pub mod formats;
pub mod memory;
pub mod ports;
pub mod usecases;

#[cfg(any(test, feature = "fixtures"))]
pub mod reference;

#[cfg(test)]
mod layering {
    //! The layers stay as the module headers say: this crate never depends on an AWS,
    //! HTTP or Lambda crate, and nothing in the domain reaches beyond it.

    const FORBIDDEN: &[&str] = &["aws_sdk_", "aws_lambda_events", "aws_config", "axum", "http", "lambda_"];

    fn sources(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                out.push((path.display().to_string(), text));
            }
        }
    }

    /// The crate names a source file uses in `use` paths or qualified paths.
    fn mentions(text: &str, name: &str) -> bool {
        text.lines().filter(|l| !l.trim_start().starts_with("//")).any(|l| {
            l.match_indices(name).any(|(i, _)| {
                let before = l[..i].chars().next_back();
                let after = &l[i + name.len()..];
                let starts_path = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
                let is_crate = if name.ends_with('_') { true } else { after.starts_with("::") };
                starts_path && is_crate
            })
        })
    }

    #[test]
    fn the_crate_depends_on_no_aws_http_or_lambda_crate() {
        let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap_or_default();
        for line in manifest.lines().map(str::trim) {
            let name = line.split(['.', ' ', '=']).next().unwrap_or_default().replace('-', "_");
            for bad in FORBIDDEN {
                assert!(!(name.starts_with(bad) || name == bad.trim_end_matches('_')), "Cargo.toml depends on {line}");
            }
        }
    }

    #[test]
    fn domain_stays_free_of_aws_and_http() {
        let mut files = Vec::new();
        sources(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src/domain")), &mut files);
        assert!(files.len() > 10, "the domain's sources were not found");
        for (path, text) in &files {
            for bad in FORBIDDEN {
                assert!(!mentions(text, bad), "{path} uses {bad}");
            }
            for layer in ["crate::ports", "crate::usecases", "crate::formats", "crate::memory"] {
                assert!(!text.contains(layer), "{path} reaches into {layer}");
            }
        }
    }

    #[test]
    fn the_check_sees_a_use_of_a_forbidden_crate() {
        assert!(mentions("use axum::Router;", "axum"));
        assert!(mentions("    let x = http::StatusCode::OK;", "http"));
        assert!(mentions("use aws_sdk_dynamodb::Client;", "aws_sdk_"));
        assert!(!mentions("// see axum::Router", "axum"));
        assert!(!mentions("let https = 1;", "http"));
        assert!(!mentions("fn http_date()", "http"));
    }
}
