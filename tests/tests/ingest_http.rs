//! `POST /v1/events` end to end: real HTTP, real DynamoDB Local.

mod common;

use audit::domain::fixtures::bad_events;
use audit::ports::{EventReader, Lookup};
use common::*;
use serde_json::{Value, json};
use std::collections::HashSet;

fn statuses(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .map_or_else(Vec::new, |r| r.iter().map(|x| x["status"].as_str().unwrap_or_default().to_owned()).collect())
}

#[tokio::test]
async fn every_bad_event_is_rejected_with_its_reason_and_the_good_one_stored() {
    // Given: the bad-event table plus one valid event, in one batch
    let tenant = new_tenant();
    let base = serve(store(None).await).await;
    let token = token(&tenant, "audit:write");
    let table = bad_events();
    let mut events: Vec<Value> = table.iter().map(|(e, _, _)| e.clone()).collect();
    events.push(event("good-1", "channel.create"));

    // When
    let (status, body) = post(&base, Some(&token), json!({ "events": events }).to_string()).await;

    // Then: 202, each bad one refused with its field and reason, the good one created
    assert_eq!(status, 202, "{body}");
    for (i, (raw, field, reason)) in table.iter().enumerate() {
        let r = &body["results"][i];
        assert_eq!(r["index"], i);
        assert_eq!(r["status"], "rejected", "{raw}");
        assert_eq!(r["error"]["code"], "invalid_request");
        let reason = serde_json::to_value(reason).unwrap_or_default();
        let found = r["error"]["details"]
            .as_array()
            .is_some_and(|d| d.iter().any(|v| v["field"] == *field && v["reason"] == reason));
        assert!(found, "expected {field}/{reason} for {raw}: {r}");
    }
    assert_eq!(body["results"][table.len()]["status"], "created");
    assert_eq!(count_events(&tenant).await, 1);
}

#[tokio::test]
async fn a_single_bad_event_is_a_400_with_the_same_body() {
    let tenant = new_tenant();
    let base = serve(store(None).await).await;
    for (raw, field, _) in bad_events().into_iter().filter(|(raw, _, _)| raw.is_object()).take(12) {
        let (status, body) = post(&base, Some(&token(&tenant, "audit:write")), raw.to_string()).await;
        assert_eq!(status, 400, "{raw}");
        assert_eq!(body["results"][0]["status"], "rejected", "{field}: {body}");
    }
    assert_eq!(count_events(&tenant).await, 0);
}

#[tokio::test]
async fn stored_events_read_back_exactly_with_a_verifiable_hash() {
    let tenant = new_tenant();
    let store = store(None).await;
    let base = serve(store.clone()).await;
    let (status, body) =
        post(&base, Some(&token(&tenant, "audit:write")), event("rb-1", "channel.create").to_string()).await;
    assert_eq!(status, 202, "{body}");

    let stored = store.get(&tenant, "rb-1").await.unwrap_or_else(|e| panic!("{e}"));
    let stored = stored.online().unwrap_or_else(|| panic!("not stored"));
    let json = stored.to_json();
    assert_eq!(json["tenant_id"], tenant.as_str());
    assert_eq!(json["occurred_at"], "2026-11-01T10:00:00.123456Z");
    assert_eq!(json["metadata"]["n"], 1.5);
    // Anyone can recompute the hash: RFC 8785 of the event without received_at and hash,
    // which is the event as sent, with its tenant and the default outcome.
    let mut unstamped = json.clone();
    if let Value::Object(m) = &mut unstamped {
        m.remove("received_at");
        m.remove("hash");
    }
    let mut sent = event("rb-1", "channel.create");
    sent["tenant_id"] = json!(tenant.as_str());
    sent["outcome"] = json!("success");
    assert_eq!(unstamped, sent);
    assert_eq!(json["hash"], jcs_sha256(&sent));
}

#[tokio::test]
async fn the_same_batch_twice_is_stored_once_and_a_conflicting_id_is_refused() {
    let tenant = new_tenant();
    let store = store(None).await;
    let base = serve(store.clone()).await;
    let token = token(&tenant, "audit:write");
    let batch =
        json!({"events": (0..40).map(|i| event(&format!("dup-{i}"), "member.invite")).collect::<Vec<_>>()}).to_string();

    let (s1, first) = post(&base, Some(&token), batch.clone()).await;
    let (s2, second) = post(&base, Some(&token), batch).await;
    assert_eq!((s1, s2), (202, 202));
    assert!(statuses(&first).iter().all(|s| s == "created"), "{first}");
    assert!(statuses(&second).iter().all(|s| s == "duplicate"), "{second}");
    assert_eq!(count_events(&tenant).await, 40);

    // A different event under an existing id: conflict, the original untouched.
    let original = store.get(&tenant, "dup-0").await.ok().and_then(Lookup::online).map(|e| e.hash);
    let (status, body) = post(&base, Some(&token), event("dup-0", "member.delete").to_string()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["results"][0]["error"]["code"], "conflict");
    let after = store.get(&tenant, "dup-0").await.ok().and_then(Lookup::online).map(|e| e.hash);
    assert_eq!(after, original);
    assert_eq!(count_events(&tenant).await, 40);
}

#[tokio::test]
async fn a_retry_of_an_event_without_id_time_is_still_a_duplicate() {
    let tenant = new_tenant();
    let base = serve(store(None).await).await;
    let token = token(&tenant, "audit:write");
    let body = json!({"id": "no-time", "action": "auth.login", "actor": {"type": "member", "id": "u"}}).to_string();
    let (_, first) = post(&base, Some(&token), body.clone()).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (_, second) = post(&base, Some(&token), body).await;
    assert_eq!((statuses(&first), statuses(&second)), (vec!["created".to_owned()], vec!["duplicate".to_owned()]));
}

#[tokio::test]
async fn a_token_for_one_tenant_never_writes_into_another() {
    let (a, b) = (new_tenant(), new_tenant());
    let store = store(None).await;
    let base = serve(store.clone()).await;
    let token_a = token(&a, "audit:write");

    let mut forged = event("iso-1", "channel.create");
    forged["tenant_id"] = json!(b.as_str());
    let (status, body) = post(&base, Some(&token_a), forged.to_string()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["results"][0]["error"]["details"][0]["field"], "tenant_id");

    let (status, _) = post(&base, Some(&token_a), event("iso-2", "channel.create").to_string()).await;
    assert_eq!(status, 202);
    assert!(store.get(&a, "iso-2").await.ok().and_then(Lookup::online).is_some());
    assert!(store.get(&b, "iso-2").await.ok().and_then(Lookup::online).is_none());
    assert_eq!(count_events(&b).await, 0);
}

#[tokio::test]
async fn bad_tokens_are_401_and_a_missing_scope_is_403() {
    let tenant = new_tenant();
    let base = serve(store(None).await).await;
    let body = event("auth-1", "channel.create").to_string();
    let expired = {
        // exp far in the past, correctly signed
        use jsonwebtoken_shim::expired_token;
        expired_token(&secret(), tenant.as_str())
    };
    let wrong_key = audit_http::auth::issue_hs256(
        "not-the-secret",
        &tenant,
        "x",
        "audit:write",
        std::time::Duration::from_secs(60),
    )
    .unwrap_or_default();
    for (token, expected) in [
        (None, 401),
        (Some("garbage".to_owned()), 401),
        (Some("a.b.c".to_owned()), 401),
        (Some(wrong_key), 401),
        (Some(expired), 401),
        (Some(token(&tenant, "audit:read audit:export")), 403),
    ] {
        let (status, resp) = post(&base, token.as_deref(), body.clone()).await;
        assert_eq!(status, expected, "{token:?}: {resp}");
        let code = if expected == 401 { "unauthorized" } else { "forbidden" };
        assert_eq!(resp["error"]["code"], code);
    }
    assert_eq!(count_events(&tenant).await, 0);
}

mod jsonwebtoken_shim {
    /// A correctly signed token that expired an hour ago.
    pub fn expired_token(secret: &str, tenant: &str) -> String {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use hmac_sha256::sign;
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() - 3600)
            .unwrap_or_default();
        let claims =
            URL_SAFE_NO_PAD.encode(format!(r#"{{"tenant":"{tenant}","sub":"x","scope":"audit:write","exp":{exp}}}"#));
        let signing_input = format!("{header}.{claims}");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sign(secret.as_bytes(), signing_input.as_bytes())))
    }

    mod hmac_sha256 {
        use sha2::{Digest, Sha256};

        /// HMAC-SHA256 (RFC 2104), written out so the test does not trust the code it tests.
        pub fn sign(key: &[u8], msg: &[u8]) -> Vec<u8> {
            let mut k = [0u8; 64];
            if key.len() > 64 {
                k[..32].copy_from_slice(&Sha256::digest(key));
            } else {
                k[..key.len()].copy_from_slice(key);
            }
            let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
            let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
            let inner = Sha256::new().chain_update(&ipad).chain_update(msg).finalize();
            Sha256::new().chain_update(&opad).chain_update(inner).finalize().to_vec()
        }
    }
}

#[tokio::test]
async fn oversize_requests_are_413() {
    let tenant = new_tenant();
    let base = serve(store(None).await).await;
    let token = token(&tenant, "audit:write");
    let too_many = json!({"events": vec![event("x", "a.b"); 501]}).to_string();
    let mut huge_one = event("big", "a.b");
    huge_one["description"] = json!("d".repeat(2000));
    huge_one["metadata"] = json!({"blob": "m".repeat(70_000)});
    let huge_body = format!("{{\"events\": [{}]}}", vec![event("y", "a.b").to_string(); 8000].join(","));
    for body in [too_many, huge_one.to_string(), huge_body] {
        let (status, resp) = post(&base, Some(&token), body).await;
        assert_eq!(status, 413, "{resp}");
        assert_eq!(resp["error"]["code"], "payload_too_large");
    }
    assert_eq!(count_events(&tenant).await, 0);
}

#[tokio::test]
async fn unreadable_bodies_are_400_with_a_reason() {
    let tenant = new_tenant();
    let base = serve(store(None).await).await;
    let token = token(&tenant, "audit:write");
    for (body, reason) in [
        (b"{\"action\": \"a.b\", \"description\": \"\xc3\x28\"}".to_vec(), "invalid_utf8"),
        (b"{\"action\": ".to_vec(), "invalid_json"),
        (b"{\"action\": \"\\ud800\"}".to_vec(), "invalid_json"),
        (b"42".to_vec(), "not_an_object"),
        (b"{\"events\": []}".to_vec(), "empty_batch"),
    ] {
        let (status, resp) = post(&base, Some(&token), body).await;
        assert_eq!(status, 400, "{resp}");
        assert_eq!(resp["error"]["details"][0]["reason"], reason, "{resp}");
    }
}

#[tokio::test]
async fn a_throttling_and_failing_dynamodb_loses_nothing_and_duplicates_nothing() {
    // Given: every 4th PutItem throttled, every 5th applied but answered with a 500
    let tenant = new_tenant();
    let proxy = common::proxy::start(
        env("AWS_ENDPOINT_URL_DYNAMODB"),
        common::proxy::Faults { operation: "PutItem", throttle_every: 4, fail_after_every: 5 },
    )
    .await;
    let base = serve(store(Some(&proxy)).await).await;
    let token = token(&tenant, "audit:write");
    let ids: Vec<String> = (0..120).map(|i| format!("fault-{i}")).collect();
    let batch = json!({"events": ids.iter().map(|id| event(id, "file.upload")).collect::<Vec<_>>()}).to_string();

    // When: posted as a client does, sending again what came back `throttled` (an event
    // can meet a fault on all of its retries; it is then refused, never dropped)
    let (status, body) = post(&base, Some(&token), batch.clone()).await;
    assert_eq!(status, 202, "{body}");
    let mut outcome: Vec<Value> = body["results"].as_array().cloned().unwrap_or_default();
    for _ in 0..5 {
        let retry: Vec<usize> = (0..outcome.len()).filter(|&i| outcome[i]["error"]["code"] == "throttled").collect();
        if retry.is_empty() {
            break;
        }
        let again = json!({"events": retry.iter().map(|&i| event(&ids[i], "file.upload")).collect::<Vec<_>>()});
        let (_, answer) = post(&base, Some(&token), again.to_string()).await;
        for (k, &i) in retry.iter().enumerate() {
            outcome[i] = answer["results"][k].clone();
        }
    }

    // Then: every event stored exactly once; only storage pressure was ever refused, and
    // "duplicate" only for events a client retry sent again
    let finals: Vec<&str> = outcome.iter().map(|r| r["status"].as_str().unwrap_or_default()).collect();
    assert!(finals.iter().all(|s| *s == "created" || *s == "duplicate"), "{outcome:?}");
    assert!(finals.iter().filter(|s| **s == "created").count() >= 110, "{outcome:?}");
    assert_eq!(count_events(&tenant).await, 120);
    let direct = store(None).await;
    let mut seen = HashSet::new();
    for id in &ids {
        let e = direct.get(&tenant, id).await.ok().and_then(Lookup::online);
        assert!(e.is_some_and(|e| seen.insert(e.event.id)), "{id} missing");
    }
    // And a replay through the same faults stores nothing new. (Where an injected 500 hid
    // the refusal of a replayed write, "created" is the honest answer: that attempt's
    // outcome is unknowable, and either way the event is stored once.)
    let (_, again) = post(&base, Some(&token), batch).await;
    let replay = again["results"].as_array().cloned().unwrap_or_default();
    assert!(
        replay
            .iter()
            .all(|r| r["status"] == "duplicate" || r["status"] == "created" || r["error"]["code"] == "throttled"),
        "{again}"
    );
    assert!(statuses(&again).iter().filter(|s| *s == "duplicate").count() >= 60, "{again}");
    assert_eq!(count_events(&tenant).await, 120);
}
