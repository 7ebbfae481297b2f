//! The AWS adapters of the ports in `audit::ports`: DynamoDB ([`dynamodb::Table`], with
//! its key design, item mapping, expressions and retry loop inside), S3 ([`s3::Bucket`]),
//! SQS ([`sqs::Queue`]), KMS ([`kms::Keys`]), webhooks and SNS ([`notify::Outbound`]), the secrets read at
//! start-up ([`secrets`]), and the SDK configuration they are built from ([`Aws`]).
//!
//! May depend on: `audit` (the domain and the ports) and the AWS SDK. Nothing here is a
//! use case: a use case sees only the ports, never a client.

pub mod dynamodb;
pub mod kms;
pub mod notify;
pub mod retry;
pub mod s3;
pub mod sdk;
pub mod secrets;
pub mod sqs;

use std::sync::Arc;

/// The SDK configuration of this process, from the standard environment (including the
/// `AWS_ENDPOINT_URL_*` variables the local stack sets), and the adapters built from it.
#[derive(Clone)]
pub struct Aws {
    pub sdk: aws_config::SdkConfig,
}

impl Aws {
    /// Loads the configuration (region, credentials, endpoints).
    pub async fn load() -> Self {
        Self { sdk: sdk::sdk_config().await }
    }

    /// The table named `name`.
    #[must_use]
    pub fn table(&self, name: &str) -> Arc<dynamodb::Table> {
        Arc::new(dynamodb::Table::new(sdk::dynamodb(&self.sdk), name))
    }

    /// The bucket named `name`.
    #[must_use]
    pub fn bucket(&self, name: &str) -> Arc<s3::Bucket> {
        Arc::new(s3::Bucket::new(sdk::s3(&self.sdk), name))
    }

    /// A Secrets Manager client (built only by functions that name a secret by ARN).
    #[must_use]
    pub fn secrets(&self) -> aws_sdk_secretsmanager::Client {
        sdk::secrets_manager(&self.sdk)
    }

    /// Alerts' way out: webhooks reaching what `egress` permits within `timeout`, and SNS.
    ///
    /// # Errors
    /// When the webhook client cannot be built.
    pub fn outbound(
        &self,
        egress: audit::domain::egress::Egress,
        timeout: std::time::Duration,
    ) -> Result<Arc<notify::Outbound>, notify::BuildError> {
        Ok(Arc::new(notify::Outbound::new(sdk::sns(&self.sdk), egress, timeout)?))
    }

    /// The signing key `current` (id, ARN or alias) in KMS, publishing `retired` too.
    #[must_use]
    pub fn keys(&self, current: &str, retired: &[String]) -> Arc<kms::Keys> {
        Arc::new(kms::Keys::new(sdk::kms(&self.sdk), current.to_owned(), retired.to_vec()))
    }

    /// The queue at `url`.
    #[must_use]
    pub fn queue(&self, url: &str) -> Arc<sqs::Queue> {
        Arc::new(sqs::Queue::new(sdk::sqs(&self.sdk), url))
    }
}
