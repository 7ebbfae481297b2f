//! Secrets named by ARN, read at start-up from a real Secrets Manager API (moto's server of
//! the local stack), by the code path every deployed API function takes.

mod common;

use audit_runtime::config::{self, Auth, ConfigError, Edge, FromEnv, Secret};
use audit_runtime::{Aws, read_secrets};
use common::*;
use std::time::Duration;

async fn client() -> aws_sdk_secretsmanager::Client {
    audit_aws::sdk::secrets_manager(&sdk().await)
}

/// A new secret holding `value`; its ARN.
async fn secret_holding(value: &str) -> String {
    let name = format!("t-{}", uuid::Uuid::now_v7().simple());
    let out = client().await.create_secret().name(name).secret_string(value).send().await;
    out.unwrap_or_else(|e| panic!("{e:?}")).arn.unwrap_or_default()
}

/// The query function's settings with both secrets named by ARN, as the template sets them.
fn query_config(jwt_arn: &str, cursor_arn: &str) -> query::Config {
    query::Config {
        table: "unused".into(),
        archive_bucket: "unused".into(),
        auth: Auth {
            jwt_secret: Some(Secret::Arn(config::JWT_SECRET_ARN, jwt_arn.into())),
            jwks_url: None,
            jwks_cache: Duration::from_secs(300),
            expect: Default::default(),
        },
        cursor_secret: Secret::Arn(config::CURSOR_SECRET_ARN, cursor_arn.into()),
        hot_days: 90,
        edge: Edge { deadline: Duration::from_secs(20), metrics: Default::default(), cors: Default::default() },
    }
}

#[tokio::test]
async fn secrets_named_by_arn_are_read_once_at_start_up_and_sign_and_verify() {
    // Given: the token and cursor secrets in Secrets Manager, the settings naming their ARNs
    let (jwt_arn, cursor_arn) = (secret_holding("token-secret-from-sm").await, secret_holding("cursor-secret").await);
    let mut config = query_config(&jwt_arn, &cursor_arn);
    assert!(config.auth.verifier().is_err(), "no verifier before the secret is read");

    // When: start-up reads them
    read_secrets(config.secrets(), &Aws::load().await).await.unwrap_or_else(|e| panic!("{e}"));

    // Then: they are the values, and tokens signed with the stored secret are accepted
    assert_eq!(config.auth.jwt_secret, Some(Secret::Value("token-secret-from-sm".into())));
    assert_eq!(config.cursor_secret, Secret::Value("cursor-secret".into()));
    assert!(config.cursor_key().is_ok());
    let tenant = new_tenant();
    let verifier = config.auth.verifier().unwrap_or_else(|e| panic!("{e}"));
    let signed = |secret: &str| {
        audit_http::auth::issue_hs256(secret, &tenant, "t", "audit:read", Duration::from_secs(60)).unwrap_or_default()
    };
    let scope = audit_http::Scope::Read;
    let good = verifier.authorize(Some(&format!("Bearer {}", signed("token-secret-from-sm"))), scope).await;
    assert_eq!(good.ok().map(|c| c.tenant), Some(tenant.clone()));
    let forged = verifier.authorize(Some(&format!("Bearer {}", signed(&jwt_arn))), scope).await;
    assert!(forged.is_err(), "the ARN is not the secret");
}

#[tokio::test]
async fn an_unreadable_secret_stops_start_up_naming_its_variable() {
    let aws = Aws::load().await;
    // A secret that does not exist
    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:no-such-secret-AbCdEf";
    let mut config = query_config(&secret_holding("fine").await, missing);
    let got = read_secrets(config.secrets(), &aws).await;
    assert!(matches!(&got, Err(ConfigError::Secret(config::CURSOR_SECRET_ARN, _))), "{got:?}");
    assert!(got.map_err(|e| e.to_string()).is_err_and(|m| m.contains("AUDIT_CURSOR_SECRET_ARN")));

    // A secret that holds binary data, not text
    let name = format!("t-{}", uuid::Uuid::now_v7().simple());
    let binary = client()
        .await
        .create_secret()
        .name(name)
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(vec![0u8, 1, 2]))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"))
        .arn
        .unwrap_or_default();
    let mut config = query_config(&binary, &secret_holding("fine").await);
    let got = read_secrets(config.secrets(), &aws).await;
    assert!(
        matches!(&got, Err(ConfigError::Secret(config::JWT_SECRET_ARN, m)) if m.contains("SecretString")),
        "{got:?}"
    );
}
