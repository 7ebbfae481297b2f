//! RS256 tokens verified against a JWKS served over real HTTP on loopback.

use audit_http::auth::{AuthError, Expect, JwksTiming, Scope, Verifier};
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

/// A JWKS endpoint whose answer the test changes, counting its requests, answering after
/// `delay`.
#[derive(Clone)]
struct Issuer {
    body: std::sync::Arc<std::sync::Mutex<(u16, String)>>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    url: String,
}

impl Issuer {
    async fn start(delay: std::time::Duration) -> Self {
        let body = std::sync::Arc::new(std::sync::Mutex::new((200, JWKS.to_owned())));
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (b, h) = (body.clone(), hits.clone());
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let (b, h) = (b.clone(), h.clone());
                async move {
                    h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    let (status, text) = b.lock().map(|g| g.clone()).unwrap_or_default();
                    let status = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK);
                    (status, [("content-type", "application/json")], text)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { body, hits, url: format!("http://{addr}/jwks.json") }
    }

    fn answer(&self, status: u16, text: &str) {
        if let Ok(mut g) = self.body.lock() {
            *g = (status, text.to_owned());
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn timing(seconds: f64) -> JwksTiming {
    let d = std::time::Duration::from_secs_f64(seconds);
    JwksTiming { ttl: d, unknown_kid_refetch: d, failure_ttl: d }
}

#[tokio::test]
async fn a_key_removed_from_the_jwks_stops_working_once_the_cache_expires() {
    // Given: a warm verifier that trusts keys for one second
    let issuer = Issuer::start(std::time::Duration::ZERO).await;
    let verifier = Verifier::new(None, Some(&issuer.url)).with_jwks_timing(timing(1.0));
    let header = format!("Bearer {}", rs256("test-key-1", &claims(300)));
    assert!(verifier.authorize(Some(&header), Scope::Write).await.is_ok());

    // When: the issuer revokes the key
    issuer.answer(200, r#"{"keys": []}"#);

    // Then: the cached key serves until it expires, and is refused after
    assert!(verifier.authorize(Some(&header), Scope::Write).await.is_ok());
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let got = verifier.authorize(Some(&header), Scope::Write).await;
    assert!(matches!(got, Err(AuthError::Invalid(_))), "{got:?}");
    assert_eq!(issuer.hits(), 2);
}

#[tokio::test]
async fn a_failed_fetch_is_remembered_briefly() {
    let issuer = Issuer::start(std::time::Duration::ZERO).await;
    issuer.answer(500, "down");
    let verifier = Verifier::new(None, Some(&issuer.url)).with_jwks_timing(timing(1.0));
    let header = format!("Bearer {}", rs256("test-key-1", &claims(300)));
    for _ in 0..5 {
        let got = verifier.authorize(Some(&header), Scope::Write).await;
        assert!(matches!(got, Err(AuthError::KeysUnavailable(_))), "{got:?}");
    }
    assert_eq!(issuer.hits(), 1, "one fetch while the failure is remembered");
    // Once the failure is forgotten, the next request fetches again and succeeds.
    issuer.answer(200, JWKS);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert!(verifier.authorize(Some(&header), Scope::Write).await.is_ok());
    assert_eq!(issuer.hits(), 2);
}

#[tokio::test]
async fn concurrent_misses_share_one_fetch() {
    let issuer = Issuer::start(std::time::Duration::from_millis(300)).await;
    let verifier = std::sync::Arc::new(Verifier::new(None, Some(&issuer.url)));
    let header = format!("Bearer {}", rs256("test-key-1", &claims(300)));
    let calls = (0..16).map(|_| {
        let (v, h) = (verifier.clone(), header.clone());
        tokio::spawn(async move { v.authorize(Some(&h), Scope::Write).await })
    });
    for call in futures::future::join_all(calls).await {
        assert!(matches!(call, Ok(Ok(_))), "{call:?}");
    }
    assert_eq!(issuer.hits(), 1);
}

#[tokio::test]
async fn issuer_and_audience_are_enforced_when_set() {
    let issuer = Issuer::start(std::time::Duration::ZERO).await;
    let expect = Expect { issuer: Some("https://id.example".into()), audience: Some("audit-api".into()) };
    let verifier = Verifier::new(Some("hs-secret"), Some(&issuer.url)).expecting(expect);
    let with = |extra: serde_json::Value| {
        let mut c = claims(300);
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(extra.clone());
        }
        c
    };
    let hs = |c: &serde_json::Value| {
        encode(&Header::new(Algorithm::HS256), c, &EncodingKey::from_secret(b"hs-secret")).unwrap_or_default()
    };
    let good = with(json!({"iss": "https://id.example", "aud": "audit-api"}));
    let listed = with(json!({"iss": "https://id.example", "aud": ["other", "audit-api"]}));
    for token in [rs256("test-key-1", &good), rs256("test-key-1", &listed), hs(&good)] {
        let got = verifier.authorize(Some(&format!("Bearer {token}")), Scope::Write).await;
        assert!(got.is_ok(), "{got:?}");
    }
    for c in [
        with(json!({"iss": "https://evil.example", "aud": "audit-api"})),
        with(json!({"aud": "audit-api"})),
        with(json!({"iss": "https://id.example", "aud": "other-api"})),
        with(json!({"iss": "https://id.example"})),
    ] {
        for token in [rs256("test-key-1", &c), hs(&c)] {
            let got = verifier.authorize(Some(&format!("Bearer {token}")), Scope::Write).await;
            assert!(matches!(got, Err(AuthError::Invalid(_))), "{c}: {got:?}");
        }
    }
}
