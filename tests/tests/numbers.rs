//! The numeric model through the API on DynamoDB Local (issue 10, points 1 and 7): a
//! number the service cannot read back, hash and export as written is refused with
//! `number_precision`; everything it accepts reads back, pages, and hashes as an outside
//! RFC 8785 implementation (serde_jcs) hashes what was sent.

mod common;

use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `metadata` texts, exactly as a client writes them.
const ACCEPTED: &[&str] = &[
    "0.1",
    "1.50",
    "-0.0",
    "1e-7",
    "1E+2",
    "5e-324",
    "9007199254740991",
    "-9007199254740991.0",
    "4503599627370495.5",
    "333333333.3333333",
    "0.000001",
    "12.5e-3",
];
const REFUSED: &[&str] = &[
    // Point 1: a float whose canonical text reads back as an integer beyond 2^53.
    "72057594037927940.0",
    "7.205759403792794e16",
    "-4.021445880002169e16",
    // Point 7: integers beyond 2^53 that RFC 8785 writes as a double's shortest form.
    "1152921504606846976",
    "1000000000000000000",
    "9007199254740993",
    // No double holds these as written.
    "0.10000000000000001",
    "1e400",
    "1e-400",
];

fn body(id: &str, number: &str) -> String {
    // A minute ago, in the service's own form, so the default view holds it.
    let at = audit::domain::timestamp::Timestamp::now().plus_seconds(-60);
    format!(
        r#"{{"id":"{id}","occurred_at":"{at}","action":"number.test","outcome":"success","actor":{{"type":"member","id":"u"}},"metadata":{{"n":{number},"list":[{number}]}},"changes":[{{"field":"n","old":{number}}}]}}"#
    )
}

/// The hash an auditor's RFC 8785 library gives the event as it was sent.
fn outside_hash(sent: &str, tenant: &str) -> String {
    let mut v: Value = serde_json::from_str(sent).unwrap_or_else(|e| panic!("{e}"));
    v["tenant_id"] = Value::String(tenant.to_owned());
    hex::encode(Sha256::digest(serde_jcs::to_string(&v).unwrap_or_default().as_bytes()))
}

#[tokio::test]
async fn numbers_that_would_not_read_back_as_written_are_refused_with_number_precision() {
    let tenant = new_tenant();
    let store = store(None).await;
    let (ingest, query) = (serve(store.clone()).await, serve_query(store).await);
    for (i, number) in REFUSED.iter().enumerate() {
        let (status, answer) =
            post(&ingest, Some(&token(&tenant, "audit:write")), body(&format!("r{i}"), number)).await;
        assert_eq!(status, 400, "{number}: {answer}");
        let details = answer["results"][0]["error"]["details"].as_array().cloned().unwrap_or_default();
        assert!(details.iter().any(|d| d["reason"] == "number_precision"), "{number}: {answer}");
    }
    // Nothing was stored, so the tenant's default view answers.
    let (status, page) = get(&query, &token(&tenant, "audit:read"), "/v1/events").await;
    assert_eq!((status, page["items"].as_array().map(Vec::len)), (200, Some(0)), "{page}");
}

#[tokio::test]
async fn every_accepted_number_reads_back_and_hashes_as_an_outside_rfc8785_library_does() {
    let tenant = new_tenant();
    let store = store(None).await;
    let (ingest, query) = (serve(store.clone()).await, serve_query(store).await);
    let read = token(&tenant, "audit:read");
    for (i, number) in ACCEPTED.iter().enumerate() {
        let sent = body(&format!("a{i}"), number);
        let (status, answer) = post(&ingest, Some(&token(&tenant, "audit:write")), sent.clone()).await;
        assert_eq!(status, 202, "{number}: {answer}");
        let (status, event) = get(&query, &read, &format!("/v1/events/a{i}")).await;
        assert_eq!(status, 200, "{number}: {event}");
        assert_eq!(event["hash"], outside_hash(&sent, tenant.as_str()), "{number}");
        let expected: f64 = number.parse().unwrap_or_default();
        assert_eq!(event["metadata"]["n"].as_f64(), Some(expected), "{number}: {event}");
        assert_eq!(event["changes"][0]["old"].as_f64(), Some(expected), "{number}: {event}");
    }
    let (status, page) = get(&query, &read, "/v1/events?limit=100").await;
    assert_eq!((status, page["items"].as_array().map(Vec::len)), (200, Some(ACCEPTED.len())), "{page}");
}
