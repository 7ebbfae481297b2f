//! The API Gateway sample in `events/` goes through the router as Lambda would hand it
//! over (`lambda_http`'s own decoding), without any AWS service: its placeholder token
//! is refused before anything is stored.

use audit::memory::MemoryStore;
use audit::usecases::ingest::Ingest;
use audit_http::Verifier;
use std::sync::Arc;
use tower::ServiceExt;

#[tokio::test]
async fn the_api_gateway_sample_reaches_the_route_and_is_authenticated() {
    let request = lambda_http::request::from_str(include_str!("../../../events/apigw-post-events.json"))
        .unwrap_or_else(|e| panic!("the sample is not an API Gateway v2 request: {e}"));
    assert_eq!(request.uri().path(), "/v1/events");
    let store = Arc::new(MemoryStore::default());
    let state =
        Arc::new(ingest::AppState { ingest: Ingest::on(&store), verifier: Verifier::new(Some("secret"), None) });
    let response = ingest::app(state).oneshot(request).await.unwrap_or_else(|e| match e {});
    assert_eq!(response.status().as_u16(), 401);
    let tenant = audit::domain::tenant::TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"));
    assert!(store.events(&tenant).is_empty());
}

/// The API Gateway event that carries `body` to the function, as in `events/`.
fn api_gateway_event(body: &str, token: &str) -> String {
    let mut event: serde_json::Value =
        serde_json::from_str(include_str!("../../../events/apigw-post-events.json")).unwrap_or_default();
    event["headers"]["authorization"] = serde_json::Value::String(format!("Bearer {token}"));
    event["body"] = serde_json::Value::String(body.to_owned());
    event.to_string()
}

/// A batch of 500 events of `raw` bytes in all that take `in_event` bytes inside API
/// Gateway's event: their `metadata.pad` strings hold `"` (2 bytes in the body, 2 more
/// once escaped), newlines (2, and 1 more) and `x` (1, and none).
fn batch(raw: usize, in_event: usize) -> String {
    let event = |i: usize, pad: String| {
        serde_json::json!({"id": format!("big-{i:03}"), "action": "channel.create",
            "actor": {"type": "member", "id": "u-1", "name": "Ada \"the first\" Lovelace"},
            "resource": {"type": "channel", "id": "c-1"}, "description": "said \"hello\"",
            "metadata": {"pad": pad}})
    };
    let size = |b: &str| audit_http::limits::size_in_event(b.as_bytes(), Some("application/json"));
    let empty: Vec<_> = (0..500).map(|i| event(i, String::new())).collect();
    let base = serde_json::json!({ "events": empty }).to_string();
    let (d_raw, d_escapes) = (raw - base.len(), (in_event - raw) - (size(&base) - base.len()));
    let newlines = d_escapes % 2;
    let quotes = (d_escapes - newlines) / 2;
    let xs = d_raw - 2 * quotes - 2 * newlines;
    let share = |total: usize, i: usize| total / 500 + usize::from(i < total % 500);
    let events: Vec<_> = (0..500)
        .map(|i| {
            let pad = format!(
                "{}{}{}",
                "\"".repeat(share(quotes, i)),
                "\n".repeat(share(newlines, i)),
                "x".repeat(share(xs, i))
            );
            event(i, pad)
        })
        .collect();
    let body = serde_json::json!({ "events": events }).to_string();
    assert_eq!((body.len(), size(&body)), (raw, in_event));
    body
}

async fn post_through_api_gateway(body: &str) -> (u16, serde_json::Value, usize) {
    let tenant = audit::domain::tenant::TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"));
    let token =
        audit_http::auth::issue_hs256("secret", &tenant, "t", "audit:write", std::time::Duration::from_secs(60))
            .unwrap_or_default();
    let edge = audit_runtime::config::Edge {
        deadline: std::time::Duration::from_secs(20),
        metrics: audit_runtime::metrics::Metrics::default(),
        cors: audit_runtime::cors::Cors::default(),
    };
    let event = api_gateway_event(body, &token);
    let request = lambda_http::request::from_str(&event).unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(MemoryStore::default());
    let state =
        Arc::new(ingest::AppState { ingest: Ingest::on(&store), verifier: Verifier::new(Some("secret"), None) });
    let router = audit_runtime::edge::finish(ingest::app(state), &edge);
    let response = router.oneshot(request).await.unwrap_or_else(|e| match e {});
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap_or_default();
    (status, serde_json::from_slice(&bytes).unwrap_or_default(), store.events(&tenant).len())
}

#[tokio::test]
async fn the_largest_accepted_batch_fits_in_a_lambda_event() {
    use audit::domain::ingest::MAX_BODY_BYTES;
    use audit_http::limits::LAMBDA_EVENT_BYTES;
    // Given: the largest batch accepted, 5 MiB once escaped as API Gateway's event holds it
    let largest = batch(MAX_BODY_BYTES - 300_000, MAX_BODY_BYTES);
    let event = api_gateway_event(&largest, "a-token-of-the-usual-size.eyJ0ZW5hbnQiOiJhY21lIn0.c2lnbmF0dXJl");
    assert!(event.len() <= LAMBDA_EVENT_BYTES, "the event is {} bytes", event.len());
    // When: lambda_http decodes API Gateway's event and the finished router handles it
    let (status, answer, stored) = post_through_api_gateway(&largest).await;
    // Then: every event is stored
    assert_eq!((status, stored), (202, 500), "{answer}");
}

#[tokio::test]
async fn a_body_well_over_the_limit_still_reaches_the_function_for_the_contracts_413() {
    use audit::domain::ingest::MAX_BODY_BYTES;
    use audit_http::limits::{LAMBDA_EVENT_BYTES, MAX_BODY_IN_EVENT};
    // Given: batches over the limit, by one escaped byte up to the most an event can carry
    // (a sixth more than the limit)
    let over = [
        (MAX_BODY_BYTES - 300_000, MAX_BODY_BYTES + 1),
        (MAX_BODY_BYTES - 600_000, MAX_BODY_BYTES + 600_000),
        (MAX_BODY_BYTES, MAX_BODY_IN_EVENT),
    ];
    for (raw, in_event) in over {
        let body = batch(raw, in_event);
        let event = api_gateway_event(&body, "a-token-of-the-usual-size.eyJ0ZW5hbnQiOiJhY21lIn0.c2lnbmF0dXJl");
        // Then: API Gateway's event still fits, so the function answers: the contract's 413
        assert!(event.len() <= LAMBDA_EVENT_BYTES, "the event is {} bytes", event.len());
        let (status, answer, stored) = post_through_api_gateway(&body).await;
        assert_eq!((status, stored), (413, 0), "{answer}");
        assert_eq!(answer["error"]["code"], "payload_too_large", "{answer}");
    }
}

#[tokio::test]
async fn a_5_mib_batch_of_ordinary_events_is_over_the_limit_as_it_reaches_the_service() {
    // Given: 500 events of about 10 KiB, their metadata the usual request details (short
    // keys and values: quotes are a third of their bytes), 5 MiB in all
    let event = |i: usize, n: usize| {
        let details: serde_json::Map<String, serde_json::Value> =
            (0..n).map(|k| (format!("k{k}"), serde_json::json!(format!("v{k}")))).collect();
        serde_json::json!({"id": format!("evt-{i:03}"), "action": "channel.create",
                           "actor": {"type": "member", "id": "u-42"}, "metadata": details})
    };
    // Keys as many as make 5 MiB less a margin, from the bytes one key adds to a batch
    let batch =
        |n: usize| serde_json::json!({ "events": (0..500).map(|i| event(i, n)).collect::<Vec<_>>() }).to_string();
    let (small, large) = (batch(100).len(), batch(200).len());
    let n = 100 + (audit::domain::ingest::MAX_BODY_BYTES - 20_000 - small) * 100 / (large - small);
    let body = batch(n);
    assert!(body.len() <= audit::domain::ingest::MAX_BODY_BYTES, "{} bytes", body.len());
    // Then: escaped, it is over 5 MiB (and over Lambda's 6 MB: deployed, API Gateway
    // answers it; the README says to count the escapes)
    let in_event = audit_http::limits::size_in_event(body.as_bytes(), Some("application/json"));
    assert!(in_event > audit_http::limits::LAMBDA_EVENT_BYTES, "{} bytes, {in_event} in the event", body.len());
    let (status, answer, stored) = post_through_api_gateway(&body).await;
    assert_eq!((status, stored), (413, 0), "{answer}");
}
