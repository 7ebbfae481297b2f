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
