//! RS256 tokens verified against a JWKS served over real TLS on loopback, by a server
//! whose certificate a test CA signed. The verifier trusts the platform's roots, which
//! `SSL_CERT_FILE` names: each test runs in a child process of this binary started with
//! `SSL_CERT_FILE` set to the test CA ([`tls_test`]), so the production client, https
//! only and without redirects, is the one under test. The JWKS cache's clock is one the
//! tests move ([`ManualClock`]): no test waits for a cache to expire.

use audit_http::auth::{AuthError, Expect, JwksTiming, Scope, Verifier};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = include_str!("../fixtures/test-rsa-key.pem");
const JWKS: &str = include_str!("../fixtures/test-jwks.json");
const CA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tls/ca.pem");
const SERVER_CERT: &str = include_str!("../fixtures/tls/server.pem");
const SERVER_KEY: &str = include_str!("../fixtures/tls/server-key.pem");
/// Set in the child process that runs a test's body.
const CHILD: &str = "AUDIT_TEST_JWKS_CHILD";

/// Runs `body` in a child process of this test binary that trusts the test CA (and only
/// it); in the parent, waits for the child and fails with its output if it failed.
fn tls_test<F: Future<Output = ()>>(name: &str, body: impl FnOnce() -> F) {
    if std::env::var_os(CHILD).is_some() {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
        rt.block_on(body());
        return;
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("SSL_CERT_FILE", CA)
        .env_remove("SSL_CERT_DIR")
        .env(CHILD, "1")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("1 passed"), "{name} in its TLS process:\n{text}");
}

/// Accepts TLS connections with the test server certificate (a handshake that fails is
/// dropped and the next connection taken).
struct TlsListener {
    tcp: tokio::net::TcpListener,
    tls: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else { continue };
            if let Ok(tls) = self.tls.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Serves `app` on a free loopback port; `https` says whether over TLS. Returns the base URL.
async fn serve(app: axum::Router, https: bool) -> String {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let addr = tcp.local_addr().unwrap_or_else(|e| panic!("{e}"));
    if !https {
        tokio::spawn(async move { axum::serve(tcp, app).await });
        return format!("http://{addr}");
    }
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(SERVER_CERT.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}"));
    let key = PrivateKeyDer::from_pem_slice(SERVER_KEY.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .unwrap_or_else(|e| panic!("{e}"));
    let listener = TlsListener { tcp, tls: tokio_rustls::TlsAcceptor::from(Arc::new(config)) };
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("https://{addr}")
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

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The test JWKS with its one key published under `kid` as well (a rotated-in key).
fn jwks_with(kid: &str) -> String {
    let mut set: serde_json::Value = serde_json::from_str(JWKS).unwrap_or_default();
    let mut rotated = set["keys"][0].clone();
    rotated["kid"] = json!(kid);
    if let Some(keys) = set["keys"].as_array_mut() {
        keys.push(rotated);
    }
    set.to_string()
}

/// A JWKS endpoint whose answer the test changes, counting its requests, answering after
/// `delay`; `/moved` redirects to it.
#[derive(Clone)]
struct Issuer {
    body: Arc<Mutex<(u16, String)>>,
    hits: Arc<AtomicUsize>,
    url: String,
    base: String,
}

impl Issuer {
    async fn start(delay: Duration, https: bool) -> Self {
        let body = Arc::new(Mutex::new((200, JWKS.to_owned())));
        let hits = Arc::new(AtomicUsize::new(0));
        let (b, h) = (body.clone(), hits.clone());
        let app = axum::Router::new()
            .route(
                "/jwks.json",
                axum::routing::get(move || {
                    let (b, h) = (b.clone(), h.clone());
                    async move {
                        h.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        let (status, text) = b.lock().map(|g| g.clone()).unwrap_or_default();
                        let status = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK);
                        (status, [("content-type", "application/json")], text)
                    }
                }),
            )
            .route(
                "/moved",
                axum::routing::get(|| async { (axum::http::StatusCode::FOUND, [("location", "/jwks.json")]) }),
            );
        let base = serve(app, https).await;
        Self { body, hits, url: format!("{base}/jwks.json"), base }
    }

    fn answer(&self, status: u16, text: &str) {
        if let Ok(mut g) = self.body.lock() {
            *g = (status, text.to_owned());
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A clock that stands still until the test moves it.
#[derive(Clone)]
struct ManualClock(Arc<Mutex<Instant>>);

impl ManualClock {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(Instant::now())))
    }

    fn advance(&self, by: Duration) {
        if let Ok(mut t) = self.0.lock() {
            *t += by;
        }
    }

    fn clock(&self) -> audit_http::auth::Clock {
        let t = self.0.clone();
        Arc::new(move || t.lock().map(|t| *t).unwrap_or_else(|_| Instant::now()))
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn a_token_signed_by_a_jwks_key_is_accepted() {
    tls_test("a_token_signed_by_a_jwks_key_is_accepted", || async {
        let issuer = Issuer::start(Duration::ZERO, true).await;
        let verifier = Verifier::new(None, Some(&issuer.url));
        let caller = verifier.authorize(Some(&bearer(&rs256("test-key-1", &claims(300)))), Scope::Write).await;
        assert_eq!(caller.map(|c| c.tenant.to_string()), Ok("acme".to_owned()));
    });
}

#[test]
fn unknown_kids_tampered_expired_and_hs256_tokens_are_refused() {
    tls_test("unknown_kids_tampered_expired_and_hs256_tokens_are_refused", || async {
        let issuer = Issuer::start(Duration::ZERO, true).await;
        let verifier = Verifier::new(None, Some(&issuer.url));
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
            secs(60),
        )
        .unwrap_or_default();
        let mut early = claims(7200);
        early["nbf"] = json!(early["exp"].as_u64().unwrap_or_default() - 3600);
        for token in [rs256("other-kid", &claims(300)), tampered, rs256("test-key-1", &claims(-3600)), hs] {
            let got = verifier.authorize(Some(&bearer(&token)), Scope::Write).await;
            assert!(matches!(got, Err(AuthError::Invalid(_))), "{got:?}");
        }
        let got = verifier.authorize(Some(&bearer(&rs256("test-key-1", &early))), Scope::Write).await;
        assert!(matches!(got, Err(AuthError::Invalid(_))), "nbf an hour ahead: {got:?}");
    });
}

#[test]
fn an_unreachable_jwks_is_not_mistaken_for_a_bad_token() {
    tls_test("an_unreachable_jwks_is_not_mistaken_for_a_bad_token", || async {
        let verifier = Verifier::new(None, Some("https://127.0.0.1:9/jwks.json"));
        let got = verifier.authorize(Some(&bearer(&rs256("test-key-1", &claims(300)))), Scope::Write).await;
        assert!(matches!(got, Err(AuthError::KeysUnavailable(_))), "{got:?}");
    });
}

#[test]
fn a_jwks_over_plain_http_is_never_fetched() {
    tls_test("a_jwks_over_plain_http_is_never_fetched", || async {
        let issuer = Issuer::start(Duration::ZERO, false).await;
        let verifier = Verifier::new(None, Some(&issuer.url));
        let got = verifier.authorize(Some(&bearer(&rs256("test-key-1", &claims(300)))), Scope::Write).await;
        assert!(matches!(got, Err(AuthError::KeysUnavailable(_))), "{got:?}");
        assert_eq!(issuer.hits(), 0, "no request went out over http");
    });
}

#[test]
fn a_redirect_from_the_jwks_url_is_not_followed() {
    tls_test("a_redirect_from_the_jwks_url_is_not_followed", || async {
        let issuer = Issuer::start(Duration::ZERO, true).await;
        let verifier = Verifier::new(None, Some(&format!("{}/moved", issuer.base)));
        let got = verifier.authorize(Some(&bearer(&rs256("test-key-1", &claims(300)))), Scope::Write).await;
        assert!(matches!(&got, Err(AuthError::KeysUnavailable(why)) if why.contains("302")), "{got:?}");
        assert_eq!(issuer.hits(), 0, "the redirect's target was never fetched");
    });
}

#[test]
fn a_key_removed_from_the_jwks_stops_working_once_the_cache_expires() {
    tls_test("a_key_removed_from_the_jwks_stops_working_once_the_cache_expires", || async {
        // Given: a warm verifier that trusts keys for 300 s
        let issuer = Issuer::start(Duration::ZERO, true).await;
        let clock = ManualClock::new();
        let verifier = Verifier::new(None, Some(&issuer.url)).with_clock(clock.clock());
        let header = bearer(&rs256("test-key-1", &claims(3600)));
        assert!(verifier.authorize(Some(&header), Scope::Write).await.is_ok());

        // When: the issuer revokes the key
        issuer.answer(200, r#"{"keys": []}"#);

        // Then: the cached key serves until it expires, and is refused after
        clock.advance(secs(299));
        assert!(verifier.authorize(Some(&header), Scope::Write).await.is_ok());
        assert_eq!(issuer.hits(), 1);
        clock.advance(secs(2));
        let got = verifier.authorize(Some(&header), Scope::Write).await;
        assert!(matches!(got, Err(AuthError::Invalid(_))), "{got:?}");
        assert_eq!(issuer.hits(), 2);
    });
}

#[test]
fn an_unknown_kid_refetches_at_most_once_a_minute_so_a_rotated_key_is_picked_up() {
    tls_test("an_unknown_kid_refetches_at_most_once_a_minute_so_a_rotated_key_is_picked_up", || async {
        // Given: a warm verifier (default timing) and a token signed by a key not yet published
        let issuer = Issuer::start(Duration::ZERO, true).await;
        let clock = ManualClock::new();
        let verifier = Verifier::new(None, Some(&issuer.url)).with_clock(clock.clock());
        assert_eq!(JwksTiming::default().unknown_kid_refetch, secs(60));
        assert!(verifier.authorize(Some(&bearer(&rs256("test-key-1", &claims(3600)))), Scope::Write).await.is_ok());
        let rotated = bearer(&rs256("test-key-2", &claims(3600)));

        // When: the issuer publishes the new key, and tokens signed by it keep coming
        issuer.answer(200, &jwks_with("test-key-2"));
        for _ in 0..5 {
            let got = verifier.authorize(Some(&rotated), Scope::Write).await;
            assert!(matches!(got, Err(AuthError::Invalid(_))), "{got:?}");
        }
        clock.advance(secs(59));
        assert!(verifier.authorize(Some(&rotated), Scope::Write).await.is_err());

        // Then: no refetch within the minute, one after it, and the new key works
        assert_eq!(issuer.hits(), 1);
        clock.advance(secs(2));
        assert!(verifier.authorize(Some(&rotated), Scope::Write).await.is_ok());
        assert!(verifier.authorize(Some(&rotated), Scope::Write).await.is_ok());
        assert_eq!(issuer.hits(), 2);
    });
}

#[test]
fn a_failed_fetch_is_remembered_briefly() {
    tls_test("a_failed_fetch_is_remembered_briefly", || async {
        let issuer = Issuer::start(Duration::ZERO, true).await;
        issuer.answer(500, "down");
        let clock = ManualClock::new();
        let verifier = Verifier::new(None, Some(&issuer.url)).with_clock(clock.clock());
        let header = bearer(&rs256("test-key-1", &claims(3600)));
        for _ in 0..5 {
            let got = verifier.authorize(Some(&header), Scope::Write).await;
            assert!(matches!(got, Err(AuthError::KeysUnavailable(_))), "{got:?}");
        }
        assert_eq!(issuer.hits(), 1, "one fetch while the failure is remembered");
        // Once the failure is forgotten (10 s), the next request fetches again and succeeds.
        issuer.answer(200, JWKS);
        clock.advance(secs(9));
        assert!(verifier.authorize(Some(&header), Scope::Write).await.is_err());
        clock.advance(secs(2));
        assert!(verifier.authorize(Some(&header), Scope::Write).await.is_ok());
        assert_eq!(issuer.hits(), 2);
    });
}

#[test]
fn concurrent_misses_share_one_fetch() {
    tls_test("concurrent_misses_share_one_fetch", || async {
        // The issuer answers slowly so the misses overlap; the outcome holds however they do.
        let issuer = Issuer::start(Duration::from_millis(300), true).await;
        let verifier = Arc::new(Verifier::new(None, Some(&issuer.url)));
        let header = bearer(&rs256("test-key-1", &claims(300)));
        let calls = (0..16).map(|_| {
            let (v, h) = (verifier.clone(), header.clone());
            tokio::spawn(async move { v.authorize(Some(&h), Scope::Write).await })
        });
        for call in futures::future::join_all(calls).await {
            assert!(matches!(call, Ok(Ok(_))), "{call:?}");
        }
        assert_eq!(issuer.hits(), 1);
    });
}

#[test]
fn issuer_and_audience_are_enforced_when_set() {
    tls_test("issuer_and_audience_are_enforced_when_set", || async {
        let issuer = Issuer::start(Duration::ZERO, true).await;
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
            let got = verifier.authorize(Some(&bearer(&token)), Scope::Write).await;
            assert!(got.is_ok(), "{got:?}");
        }
        for c in [
            with(json!({"iss": "https://evil.example", "aud": "audit-api"})),
            with(json!({"aud": "audit-api"})),
            with(json!({"iss": "https://id.example", "aud": "other-api"})),
            with(json!({"iss": "https://id.example"})),
        ] {
            for token in [rs256("test-key-1", &c), hs(&c)] {
                let got = verifier.authorize(Some(&bearer(&token)), Scope::Write).await;
                assert!(matches!(got, Err(AuthError::Invalid(_))), "{c}: {got:?}");
            }
        }
    });
}
