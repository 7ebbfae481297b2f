//! The API Gateway sample in `events/` goes through the router as Lambda would hand it
//! over (`lambda_http`'s own decoding), without any AWS service: its placeholder token
//! is refused before anything is stored.

use audit::auth::Verifier;
use audit::store::Store;
use std::sync::Arc;
use tower::ServiceExt;

#[tokio::test]
async fn the_api_gateway_sample_reaches_the_route_and_is_authenticated() {
    let request = lambda_http::request::from_str(include_str!("../../../events/apigw-post-events.json"))
        .unwrap_or_else(|e| panic!("the sample is not an API Gateway v2 request: {e}"));
    assert_eq!(request.uri().path(), "/v1/events");
    // A client for an endpoint nothing listens on: auth fails first, so it is never called.
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("eu-west-1"))
        .endpoint_url("http://127.0.0.1:9")
        .build();
    let state = Arc::new(ingest::AppState {
        store: Store::new(aws_sdk_dynamodb::Client::from_conf(conf), "unused"),
        verifier: Verifier::new(Some("secret"), None),
    });
    let response = ingest::app(state).oneshot(request).await.unwrap_or_else(|e| match e {});
    assert_eq!(response.status().as_u16(), 401);
}
