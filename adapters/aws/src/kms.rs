//! The signing key in KMS (`ECC_NIST_P256`, `SIGN_VERIFY`): signs export manifests and
//! archive checkpoints (`Sign`, `ECDSA_SHA_256`, a raw message of a few dozen bytes), and
//! publishes the public keys (`GetPublicKey`) of the current key and of every retired one.
//!
//! The current key is named by id, ARN or alias; it is resolved to the key it stands for
//! (its ARN and public key) and signs by that ARN, so a signature's key id is always the
//! key that made it even while an alias is moved to a new key. The resolution is kept for
//! [`RESOLVE_EVERY`], so a rotation reaches running functions within that. Public keys
//! never change, so those of retired keys are kept for good once read.

use async_trait::async_trait;
use audit::domain::signing::{KeyStatus, PublicKey, Signature, key_id};
use audit::ports::{KeyDirectory, SignError, Signer};
use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the current key's resolution is trusted.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(300);

/// A resolved key: the ARN that signs, and its public key.
#[derive(Debug, Clone)]
struct Resolved {
    arn: String,
    public: Vec<u8>,
}

pub struct Keys {
    client: Client,
    current: String,
    retired: Vec<String>,
    resolved: Mutex<HashMap<String, (Instant, Resolved)>>,
}

fn fail(op: &str, e: impl std::fmt::Display) -> SignError {
    SignError(format!("KMS {op}: {e}"))
}

impl Keys {
    /// Signs with `current`; publishes it and `retired` (ids, ARNs or aliases).
    #[must_use]
    pub fn new(client: Client, current: String, retired: Vec<String>) -> Self {
        Self { client, current, retired, resolved: Mutex::new(HashMap::new()) }
    }

    /// The key `name` stands for, read again once [`RESOLVE_EVERY`] has passed (retired
    /// keys: never again).
    async fn resolve(&self, name: &str, fresh_for: Option<Duration>) -> Result<Resolved, SignError> {
        let known = self.resolved.lock().ok().and_then(|m| m.get(name).cloned());
        if let Some((at, r)) = known
            && fresh_for.is_none_or(|d| at.elapsed() < d)
        {
            return Ok(r);
        }
        let out = self
            .client
            .get_public_key()
            .key_id(name)
            .send()
            .await
            .map_err(|e| fail("GetPublicKey", aws_sdk_kms::error::DisplayErrorContext(e)))?;
        let arn = out.key_id.ok_or_else(|| fail("GetPublicKey", "no key id"))?;
        let public = out.public_key.ok_or_else(|| fail("GetPublicKey", "no public key"))?.into_inner();
        let r = Resolved { arn, public };
        if let Ok(mut m) = self.resolved.lock() {
            m.insert(name.to_owned(), (Instant::now(), r.clone()));
        }
        Ok(r)
    }
}

#[async_trait]
impl Signer for Keys {
    async fn sign(&self, message: &[u8]) -> Result<Signature, SignError> {
        let key = self.resolve(&self.current, Some(RESOLVE_EVERY)).await?;
        let out = self
            .client
            .sign()
            .key_id(&key.arn)
            .message(Blob::new(message))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| fail("Sign", aws_sdk_kms::error::DisplayErrorContext(e)))?;
        let der = out.signature.ok_or_else(|| fail("Sign", "no signature"))?.into_inner();
        Ok(Signature::new(key_id(&key.public), &der))
    }
}

#[async_trait]
impl KeyDirectory for Keys {
    async fn keys(&self) -> Result<Vec<PublicKey>, SignError> {
        let mut out =
            vec![PublicKey::new(self.resolve(&self.current, Some(RESOLVE_EVERY)).await?.public, KeyStatus::Current)];
        for name in &self.retired {
            let key = PublicKey::new(self.resolve(name, None).await?.public, KeyStatus::Retired);
            if !out.iter().any(|k| k.key_id == key.key_id) {
                out.push(key);
            }
        }
        Ok(out)
    }
}
