//! Signing with the service's key (KMS, `ECC_NIST_P256`), and the public keys anyone
//! checks the signatures with ([`crate::domain::signing`]).

use crate::domain::signing::{PublicKey, Signature};
use async_trait::async_trait;

/// The key could not be used (KMS unreachable or throttled, no permission, no such key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signing key unavailable: {0}")]
pub struct SignError(pub String);

#[async_trait]
pub trait Signer: Send + Sync {
    /// Signs `message` with the current key.
    ///
    /// # Errors
    /// [`SignError`].
    async fn sign(&self, message: &[u8]) -> Result<Signature, SignError>;
}

#[async_trait]
pub trait KeyDirectory: Send + Sync {
    /// The public keys: the current one first, then every retired one still trusted for
    /// what it signed before a rotation.
    ///
    /// # Errors
    /// [`SignError`].
    async fn keys(&self) -> Result<Vec<PublicKey>, SignError>;
}
