//! AWS clients, built once per process from the standard environment (including the
//! `AWS_ENDPOINT_URL_*` variables the local stack sets).

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use std::time::Duration;

/// Loads the shared SDK configuration.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .build(),
        )
        .load()
        .await
}

/// A DynamoDB client whose retries are left to [`crate::retry`], which knows what each
/// call means (see there).
#[must_use]
pub fn dynamodb(conf: &SdkConfig) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(conf).retry_config(RetryConfig::disabled()).build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// An SQS client with the SDK's standard retries.
#[must_use]
pub fn sqs(conf: &SdkConfig) -> aws_sdk_sqs::Client {
    let conf =
        aws_sdk_sqs::config::Builder::from(conf).retry_config(RetryConfig::standard().with_max_attempts(6)).build();
    aws_sdk_sqs::Client::from_conf(conf)
}

/// An SNS client without retries: an alert attempt publishes once (a repeated publish
/// whose first answer was lost would reach email and SMS readers twice), and the
/// delivery's schedule retries a failed one.
#[must_use]
pub fn sns(conf: &SdkConfig) -> aws_sdk_sns::Client {
    let conf = aws_sdk_sns::config::Builder::from(conf).retry_config(RetryConfig::disabled()).build();
    aws_sdk_sns::Client::from_conf(conf)
}

/// An S3 client with the SDK's standard retries, path-style so one configuration serves
/// AWS and a local S3 server alike.
#[must_use]
pub fn s3(conf: &SdkConfig) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(conf)
        .force_path_style(true)
        .retry_config(RetryConfig::standard().with_max_attempts(6))
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// A Secrets Manager client with the SDK's standard retries.
#[must_use]
pub fn secrets_manager(conf: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    let conf = aws_sdk_secretsmanager::config::Builder::from(conf)
        .retry_config(RetryConfig::standard().with_max_attempts(4))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(conf)
}

/// A KMS client with the SDK's standard retries (throttling included).
#[must_use]
pub fn kms(conf: &SdkConfig) -> aws_sdk_kms::Client {
    let conf =
        aws_sdk_kms::config::Builder::from(conf).retry_config(RetryConfig::standard().with_max_attempts(6)).build();
    aws_sdk_kms::Client::from_conf(conf)
}
