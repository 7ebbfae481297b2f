//! RS256 tokens verified against a JWKS served over real HTTP on loopback.

use audit_http::auth::{AuthError, Scope, Verifier};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

const KEY: &str = include_str!("../fixtures/test-rsa-key.pem");
const JWKS: &str = include_str!("../fixtures/test-jwks.json");

async fn serve_jwks() -> String {
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(|| async { ([("content-type", "application/json")], JWKS) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/.well-known/jwks.json")
}

fn rs256(kid: &str, claims: &serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let key = EncodingKey::from_rsa_pem(KEY.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    encode(&header, claims, &key).unwrap_or_else(|e| panic!("{e}"))
}

fn claims(exp_offset: i64) -> serde_json::Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    json!({"tenant": "acme", "sub": "svc", "scope": "audit:write", "exp": now.saturating_add_signed(exp_offset)})
}

#[tokio::test]
async fn a_token_signed_by_a_jwks_key_is_accepted() {
    let verifier = Verifier::new(None, Some(&serve_jwks().await));
    let header = format!("Bearer {}", rs256("test-key-1", &claims(300)));
    let caller = verifier.authorize(Some(&header), Scope::Write).await;
    assert_eq!(caller.map(|c| c.tenant.to_string()), Ok("acme".to_owned()));
}

#[tokio::test]
async fn unknown_kids_tampered_expired_and_hs256_tokens_are_refused() {
    let verifier = Verifier::new(None, Some(&serve_jwks().await));
    let good = rs256("test-key-1", &claims(300));
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[1] = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            json!({"tenant": "other", "sub": "svc", "scope": "audit:write", "exp": 9_999_999_999_u64}).to_string(),
        )
    };
    let tampered = parts.join(".");
    let hs = audit_http::auth::issue_hs256(
        "s",
        &audit::domain::tenant::TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}")),
        "x",
        "audit:write",
        std::time::Duration::from_secs(60),
    )
    .unwrap_or_default();
    for token in [rs256("other-kid", &claims(300)), tampered, rs256("test-key-1", &claims(-3600)), hs] {
        let got = verifier.authorize(Some(&format!("Bearer {token}")), Scope::Write).await;
        assert!(matches!(got, Err(AuthError::Invalid(_))), "{got:?}");
    }
}

#[tokio::test]
async fn an_unreachable_jwks_is_not_mistaken_for_a_bad_token() {
    let verifier = Verifier::new(None, Some("http://127.0.0.1:9/jwks.json"));
    let got = verifier.authorize(Some(&format!("Bearer {}", rs256("test-key-1", &claims(300)))), Scope::Write).await;
    assert!(matches!(got, Err(AuthError::KeysUnavailable(_))), "{got:?}");
}
