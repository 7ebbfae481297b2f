//! Secrets Manager: the token and cursor secrets, read once at start-up by ARN
//! (`GetSecretValue`, the `SecretString` as the secret).

use aws_sdk_secretsmanager::Client;

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The call failed (after the SDK's retries).
    #[error("GetSecretValue failed: {0}")]
    Call(String),
    /// The secret holds binary data or nothing: the service needs text.
    #[error("the secret has no SecretString")]
    NotText,
}

/// Reads the text of the secret `arn` (its current version).
///
/// # Errors
/// [`SecretError`].
pub async fn secret_string(client: &Client, arn: &str) -> Result<String, SecretError> {
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| SecretError::Call(format!("{}", aws_sdk_secretsmanager::error::DisplayErrorContext(e))))?;
    out.secret_string.filter(|s| !s.is_empty()).ok_or(SecretError::NotText)
}
