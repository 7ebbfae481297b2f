//! Checking a signature of [`crate::domain::signing`] with a public key: ECDSA on P-256
//! with SHA-256, the signature DER-encoded, as KMS's `ECDSA_SHA_256` makes it and as the
//! auditor's verifier (`tools/verify`) checks it.

use crate::domain::signing::{ALGORITHM, PublicKey, Signature};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

/// Why a signature does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSignature {
    #[error("no signature")]
    Missing,
    #[error("signed by key {0}, which is not a published key")]
    UnknownKey(String),
    #[error("algorithm {0} is not {ALGORITHM}")]
    Algorithm(String),
    #[error("the signature does not verify with key {0}")]
    Invalid(String),
}

/// Checks `signature` over `message` with the key among `keys` that it names.
///
/// # Errors
/// [`BadSignature`] saying why it does not hold.
pub fn verify(keys: &[PublicKey], message: &[u8], signature: Option<&Signature>) -> Result<(), BadSignature> {
    let signature = signature.ok_or(BadSignature::Missing)?;
    if signature.algorithm != ALGORITHM {
        return Err(BadSignature::Algorithm(signature.algorithm.clone()));
    }
    let key = keys
        .iter()
        .find(|k| k.key_id == signature.key_id)
        .ok_or_else(|| BadSignature::UnknownKey(signature.key_id.clone()))?;
    let der = signature.der().ok_or_else(|| BadSignature::Invalid(key.key_id.clone()))?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &key.der)
        .verify(message, &der)
        .map_err(|_| BadSignature::Invalid(key.key_id.clone()))
}
