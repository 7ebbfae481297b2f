//! Bearer tokens: JWTs signed HS256 with `AUDIT_JWT_SECRET` or RS256 by a key in
//! `AUDIT_JWKS_URL`, with `iss` and `aud` checked when configured. The tenant of every
//! request comes from here and nowhere else.
//!
//! The JWKS is fetched over https only and a redirect is never followed: whoever could
//! answer the fetch, or point it elsewhere, could mint tokens for every tenant.

use audit::domain::tenant::TenantId;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex, RwLock};

/// Clock skew tolerated on `exp` and `nbf`: a token expired this long ago, or valid from
/// this far ahead, is still accepted.
pub const LEEWAY_SECONDS: u64 = 30;

/// What the JWKS cache reads the time from: the monotonic clock, or one a test moves.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// How long fetched keys are trusted, how soon an unknown `kid` may trigger a refetch,
/// and how long a failed fetch is remembered. The first bounds how long a key removed
/// from the JWKS keeps working in a warm process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksTiming {
    pub ttl: Duration,
    pub unknown_kid_refetch: Duration,
    pub failure_ttl: Duration,
}

impl Default for JwksTiming {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            unknown_kid_refetch: Duration::from_secs(60),
            failure_ttl: Duration::from_secs(10),
        }
    }
}

/// What a verifier requires of a token beyond a valid signature and `exp`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expect {
    /// `iss` must equal this (`AUDIT_JWT_ISSUER`).
    pub issuer: Option<String>,
    /// `aud` must hold this (`AUDIT_JWT_AUDIENCE`).
    pub audience: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Write,
    Read,
    Export,
    Admin,
}

impl Scope {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Write => "audit:write",
            Scope::Read => "audit:read",
            Scope::Export => "audit:export",
            Scope::Admin => "audit:admin",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Scope::Write, Scope::Read, Scope::Export, Scope::Admin].into_iter().find(|x| x.as_str() == s)
    }
}

/// Who is calling, for which tenant, allowed to do what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: TenantId,
    pub sub: String,
    pub scopes: Vec<Scope>,
}

impl Caller {
    /// `audit:admin` holds every other scope.
    #[must_use]
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| *s == scope || *s == Scope::Admin)
    }
}

/// Why a request was not authenticated or not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token")]
    Missing,
    /// Not a well-formed, validly signed, unexpired token with the required claims.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Valid, but without the scope the endpoint needs.
    #[error("token lacks scope {0}")]
    Forbidden(&'static str),
    /// The key set could not be fetched.
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    tenant: String,
    sub: String,
    #[serde(default)]
    scope: Option<String>,
    exp: u64,
}

/// Verifies tokens. Built once per process; the JWKS is cached (see [`JwksTiming`]).
pub struct Verifier {
    secret: Option<DecodingKey>,
    expect: Expect,
    jwks: Option<Jwks>,
}

/// The JWKS of one URL: the keys last fetched, the last failure, and the lock that makes
/// concurrent misses share one fetch.
struct Jwks {
    url: String,
    timing: JwksTiming,
    /// The client, or why it could not be built (never a laxer one in its place).
    http: Result<reqwest::Client, String>,
    cache: RwLock<KeyCache>,
    fetching: Mutex<()>,
    clock: Clock,
}

#[derive(Default)]
struct KeyCache {
    keys: Option<(Instant, JwkSet)>,
    failed: Option<(Instant, String)>,
}

/// What the cache says about a `kid` without fetching.
enum Cached {
    Key(Result<DecodingKey, AuthError>),
    /// Fetching again cannot help yet.
    Refused(AuthError),
    Stale,
}

impl KeyCache {
    fn lookup(&self, kid: &str, timing: &JwksTiming, now: Instant) -> Cached {
        if let Some((fetched, set)) = &self.keys
            && now.saturating_duration_since(*fetched) < timing.ttl
        {
            if let Some(jwk) = set.find(kid) {
                return Cached::Key(DecodingKey::from_jwk(jwk).map_err(|e| AuthError::Invalid(e.to_string())));
            }
            if now.saturating_duration_since(*fetched) < timing.unknown_kid_refetch {
                return Cached::Refused(AuthError::Invalid("unknown kid".into()));
            }
        }
        match &self.failed {
            Some((at, why)) if now.saturating_duration_since(*at) < timing.failure_ttl => {
                Cached::Refused(AuthError::KeysUnavailable(format!("{why} (remembered)")))
            }
            _ => Cached::Stale,
        }
    }

    /// When the cache last changed: a task that waited for another's fetch uses its result.
    fn changed(&self) -> Option<Instant> {
        let keys = self.keys.as_ref().map(|(at, _)| *at);
        let failed = self.failed.as_ref().map(|(at, _)| *at);
        keys.max(failed)
    }
}

impl Verifier {
    /// A verifier of HS256 tokens signed with `secret` and RS256 tokens signed by a key of
    /// the JWKS at `jwks_url`, with the default [`JwksTiming`] and no `iss`/`aud` check.
    #[must_use]
    pub fn new(secret: Option<&str>, jwks_url: Option<&str>) -> Self {
        Self {
            secret: secret.map(|s| DecodingKey::from_secret(s.as_bytes())),
            expect: Expect::default(),
            jwks: jwks_url.map(|url| Jwks {
                url: url.to_owned(),
                timing: JwksTiming::default(),
                http: jwks_client(),
                cache: RwLock::new(KeyCache::default()),
                fetching: Mutex::new(()),
                clock: Arc::new(Instant::now),
            }),
        }
    }

    /// Requires `iss` and `aud` as `expect` says.
    #[must_use]
    pub fn expecting(mut self, expect: Expect) -> Self {
        self.expect = expect;
        self
    }

    /// Caches the JWKS as `timing` says.
    #[must_use]
    pub fn with_jwks_timing(mut self, timing: JwksTiming) -> Self {
        if let Some(j) = &mut self.jwks {
            j.timing = timing;
        }
        self
    }

    /// Reads the JWKS cache's time from `clock` (tests move it instead of waiting).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        if let Some(j) = &mut self.jwks {
            j.clock = clock;
        }
        self
    }

    /// Authenticates an `Authorization` header value and checks `scope`.
    ///
    /// # Errors
    /// [`AuthError`]: `Forbidden` maps to 403, the rest to 401 (or 503 for keys).
    pub async fn authorize(&self, header: Option<&str>, scope: Scope) -> Result<Caller, AuthError> {
        let caller = self.authenticate(header).await?;
        if caller.has(scope) { Ok(caller) } else { Err(AuthError::Forbidden(scope.as_str())) }
    }

    async fn authenticate(&self, header: Option<&str>) -> Result<Caller, AuthError> {
        let token = header
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        let head = decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let claims = match head.alg {
            Algorithm::HS256 => {
                let key =
                    self.secret.as_ref().ok_or_else(|| AuthError::Invalid("HS256 tokens are not accepted".into()))?;
                verify(token, key, Algorithm::HS256, &self.expect)?
            }
            Algorithm::RS256 => {
                let jwks =
                    self.jwks.as_ref().ok_or_else(|| AuthError::Invalid("RS256 tokens are not accepted".into()))?;
                let kid = head.kid.ok_or_else(|| AuthError::Invalid("RS256 token without kid".into()))?;
                let key = jwks.key(&kid).await?;
                verify(token, &key, Algorithm::RS256, &self.expect)?
            }
            other => {
                return Err(AuthError::Invalid(format!("algorithm {other:?} is not accepted")));
            }
        };
        let tenant = TenantId::parse(&claims.tenant).map_err(|e| AuthError::Invalid(e.to_string()))?;
        if claims.sub.is_empty() {
            return Err(AuthError::Invalid("empty sub".into()));
        }
        let scopes = claims.scope.as_deref().unwrap_or_default().split_whitespace().filter_map(Scope::parse).collect();
        Ok(Caller { tenant, sub: claims.sub, scopes })
    }
}

impl Jwks {
    /// The key `kid`, from the cache while it is fresh, else from one fetch that every
    /// concurrent miss waits for.
    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        let asked = (self.clock)();
        match self.cache.read().await.lookup(kid, &self.timing, asked) {
            Cached::Key(k) => return k,
            Cached::Refused(e) => return Err(e),
            Cached::Stale => {}
        }
        let _turn = self.fetching.lock().await;
        {
            // Another task fetched while this one waited: its answer is this one's too.
            let cache = self.cache.read().await;
            if cache.changed().is_some_and(|at| at >= asked) {
                return match cache.lookup(kid, &self.timing, (self.clock)()) {
                    Cached::Key(k) => k,
                    Cached::Refused(e) => Err(e),
                    Cached::Stale => Err(AuthError::Invalid("unknown kid".into())),
                };
            }
        }
        let fetched = self.fetch().await;
        let mut cache = self.cache.write().await;
        let now = (self.clock)();
        match fetched {
            Ok(set) => {
                let key = set.find(kid).map(DecodingKey::from_jwk);
                *cache = KeyCache { keys: Some((now, set)), failed: None };
                match key {
                    Some(k) => k.map_err(|e| AuthError::Invalid(e.to_string())),
                    None => Err(AuthError::Invalid("unknown kid".into())),
                }
            }
            Err(e) => {
                // Keys past their time are dropped, not kept for use while the JWKS cannot be
                // read: a key that may have been revoked is never trusted longer than `ttl`.
                if cache.keys.as_ref().is_some_and(|(at, _)| now.saturating_duration_since(*at) >= self.timing.ttl) {
                    cache.keys = None;
                }
                cache.failed = Some((now, e.clone()));
                Err(AuthError::KeysUnavailable(e))
            }
        }
    }

    /// One fetch of the key set: a redirect or any other answer than 2xx is a failure.
    async fn fetch(&self) -> Result<JwkSet, String> {
        let http = self.http.as_ref().map_err(Clone::clone)?;
        let response = http.get(&self.url).send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the JWKS answered {status}; redirects are not followed"));
        }
        response.json().await.map_err(|e| e.to_string())
    }
}

/// The JWKS client: https only (the platform's trusted roots), no redirects, 5 s.
fn jwks_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("the JWKS client could not be built: {e}"))
}

fn verify(token: &str, key: &DecodingKey, alg: Algorithm, expect: &Expect) -> Result<Claims, AuthError> {
    let mut v = Validation::new(alg);
    let mut required = vec!["exp", "sub"];
    if let Some(iss) = &expect.issuer {
        v.set_issuer(&[iss]);
        required.push("iss");
    }
    match &expect.audience {
        Some(aud) => {
            v.set_audience(&[aud]);
            required.push("aud");
        }
        None => v.validate_aud = false,
    }
    v.set_required_spec_claims(&required);
    v.leeway = LEEWAY_SECONDS;
    // Off by default in jsonwebtoken: a token is not valid before its `nbf` either.
    v.validate_nbf = true;
    decode::<Claims>(token, key, &v).map(|d| d.claims).map_err(|e| AuthError::Invalid(e.to_string()))
}

/// Issues an HS256 token: the `auditlog token` command and the tests use it.
///
/// # Errors
/// When signing fails.
pub fn issue_hs256(
    secret: &str,
    tenant: &TenantId,
    sub: &str,
    scope: &str,
    ttl: Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().saturating_add(ttl).as_secs();
    let claims = Claims { tenant: tenant.to_string(), sub: sub.to_owned(), scope: Some(scope.to_owned()), exp };
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId::parse("acme").unwrap_or_else(|_| unreachable!())
    }

    fn token(secret: &str, scope: &str, ttl: Duration) -> String {
        issue_hs256(secret, &tenant(), "alice", scope, ttl).unwrap_or_default()
    }

    fn expired(secret: &str) -> String {
        let claims =
            Claims { tenant: "acme".into(), sub: "a".into(), scope: Some("audit:read".into()), exp: 1_000_000 };
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes()))
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn accepts_a_valid_token_with_the_scope() {
        let v = Verifier::new(Some("s3cret"), None);
        let t = format!("Bearer {}", token("s3cret", "audit:read audit:write", Duration::from_secs(60)));
        let caller = v.authorize(Some(&t), Scope::Write).await;
        assert_eq!(caller.map(|c| c.tenant), Ok(tenant()));
    }

    #[tokio::test]
    async fn refuses_missing_malformed_forged_expired_and_unscoped_tokens() {
        let v = Verifier::new(Some("s3cret"), None);
        let ok = token("s3cret", "audit:read", Duration::from_secs(60));
        type Expect = fn(&AuthError) -> bool;
        let cases: Vec<(Option<String>, Expect)> = vec![
            (None, |e| *e == AuthError::Missing),
            (Some("Basic abc".into()), |e| *e == AuthError::Missing),
            (Some("Bearer not.a.jwt".into()), |e| matches!(e, AuthError::Invalid(_))),
            (Some(format!("Bearer {}", token("other", "audit:write", Duration::from_secs(60)))), |e| {
                matches!(e, AuthError::Invalid(_))
            }),
            (Some(format!("Bearer {}", expired("s3cret"))), |e| matches!(e, AuthError::Invalid(_))),
            (Some(format!("Bearer {ok}")), |e| *e == AuthError::Forbidden("audit:write")),
        ];
        for (header, expected) in cases {
            let got = v.authorize(header.as_deref(), Scope::Write).await;
            assert!(got.as_ref().err().is_some_and(expected), "{header:?}: {got:?}");
        }
    }

    #[tokio::test]
    async fn refuses_the_none_algorithm() {
        // {"alg":"none"} . {"tenant":"acme","sub":"a","scope":"audit:write","exp":9999999999} .
        let t = "Bearer eyJhbGciOiJub25lIn0.eyJ0ZW5hbnQiOiJhY21lIiwic3ViIjoiYSIsInNjb3BlIjoiYXVkaXQ6d3JpdGUiLCJleHAiOjk5OTk5OTk5OTl9.";
        let v = Verifier::new(Some("s3cret"), None);
        assert!(matches!(v.authorize(Some(t), Scope::Write).await, Err(AuthError::Invalid(_))));
    }

    /// An HS256 token whose `exp` and `nbf` lie these many seconds from now.
    fn timed(secret: &str, exp: i64, nbf: Option<i64>) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut claims = serde_json::json!({"tenant": "acme", "sub": "a", "scope": "audit:read",
            "exp": now.saturating_add_signed(exp)});
        if let Some(nbf) = nbf {
            claims["nbf"] = serde_json::json!(now.saturating_add_signed(nbf));
        }
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes()))
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn exp_and_nbf_are_honoured_with_the_same_leeway() {
        // Margins of 15 s either side of the 30 s leeway: no test is that slow.
        let v = Verifier::new(Some("s3cret"), None);
        let hour = 3600;
        let cases = [
            ("expired within the leeway", timed("s3cret", -15, None), true),
            ("expired past the leeway", timed("s3cret", -45, None), false),
            ("valid from within the leeway", timed("s3cret", hour, Some(15)), true),
            ("valid from past the leeway", timed("s3cret", hour, Some(45)), false),
            ("valid from an hour ahead", timed("s3cret", 2 * hour, Some(hour)), false),
            ("valid since a while", timed("s3cret", hour, Some(-hour)), true),
        ];
        for (what, token, accepted) in cases {
            let got = v.authorize(Some(&format!("Bearer {token}")), Scope::Read).await;
            assert_eq!(got.is_ok(), accepted, "{what}: {got:?}");
            if !accepted {
                assert!(matches!(got, Err(AuthError::Invalid(_))), "{what}: {got:?}");
            }
        }
    }

    #[tokio::test]
    async fn admin_holds_every_scope() {
        let v = Verifier::new(Some("k"), None);
        let t = format!("Bearer {}", token("k", "audit:admin", Duration::from_secs(60)));
        assert!(v.authorize(Some(&t), Scope::Export).await.is_ok());
    }
}
