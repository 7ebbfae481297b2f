//! The store's batched reads on DynamoDB Local, behind a proxy that makes happen what
//! DynamoDB does under load and DynamoDB Local never does by itself: a BatchGetItem that
//! leaves keys unprocessed, and an eventually consistent read that does not see yet an
//! item an index already lists. Every event is still found, by the adapter and by the API.

mod common;

use audit::ports::EventReader;
use audit_aws::retry::Backoff;
use common::data::{day_ago, day_events};
use common::proxy::{self, BatchGets, Mode};
use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unprocessed_keys_and_unseen_items_are_read_again_until_every_event_is_found() {
    // Given: 150 events of one tenant
    let tenant = new_tenant();
    let raw = day_events("bg", &day_ago(1), 150);
    ingest_all(&store(None).await, &tenant, &raw).await;
    let ids: Vec<String> = raw.iter().filter_map(|e| e["id"].as_str().map(str::to_owned)).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    let asked: Vec<&str> = ids.iter().take(100).map(String::as_str).collect();
    let fast = Backoff { attempts: 12, base: Duration::from_millis(1), cap: Duration::from_millis(5) };
    for how in [
        BatchGets { leave_unprocessed: true, hide_from_eventual: false },
        BatchGets { leave_unprocessed: false, hide_from_eventual: true },
        BatchGets { leave_unprocessed: true, hide_from_eventual: true },
    ] {
        let proxy = proxy::start_with(env("AWS_ENDPOINT_URL_DYNAMODB"), Mode::BatchGets(how)).await;
        let through = store_with_backoff(Some(&proxy.url), fast).await;

        // When: the events are fetched by id, checked for being online, and paged through
        let fetched = through.fetch(&tenant, &asked).await.unwrap_or_else(|e| panic!("{e}"));
        let online = through.exist(&tenant, &asked).await.unwrap_or_else(|e| panic!("{e}"));
        let base = serve_query(through).await;
        let read = token(&tenant, "audit:read");
        let mut paged = Vec::new();
        let mut cursor = String::new();
        loop {
            let (status, page) = get(&base, &read, &format!("/v1/events?limit=100{cursor}")).await;
            assert_eq!(status, 200, "{page}");
            paged.extend(
                page["items"].as_array().into_iter().flatten().filter_map(|e| e["id"].as_str().map(str::to_owned)),
            );
            match page["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => break,
            }
        }

        // Then: every one, in the order asked; and the faults really happened
        let got: Vec<&str> = fetched.iter().map(|e| e.as_ref().map_or("", |e| e.event.id.as_str())).collect();
        assert_eq!(got, asked, "unprocessed {}, hidden {}", how.leave_unprocessed, how.hide_from_eventual);
        assert!(online.iter().all(|o| *o), "{online:?}");
        paged.sort();
        assert_eq!(paged, sorted);
        assert_eq!(proxy.unprocessed() > 0, how.leave_unprocessed);
        assert_eq!(proxy.hidden() > 0, how.hide_from_eventual);
    }
}
