//! The numeric model through the DynamoDB item: every event accepted from arbitrary JSON
//! text (numbers in every form, unicode keys, deep nesting) reads back from its item as
//! the same event, with its hash checked.

use audit::domain::event::Event;
use audit::domain::fixtures::arb_event_text;
use audit::domain::incoming::Incoming;
use audit::domain::tenant::TenantId;
use audit::domain::timestamp::Timestamp;
use audit_aws::dynamodb::item::{from_item, to_item};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn an_accepted_event_reads_back_from_its_item((text, _) in arb_event_text()) {
        let tenant = TenantId::parse("acme").unwrap_or_else(|_| unreachable!());
        let incoming = Incoming::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if let Ok(accepted) = Event::validate(incoming, &tenant, Timestamp::now()) {
            let stored = accepted.stamp(Timestamp::now());
            let item = to_item(&stored, 0, &stored.hash);
            prop_assert_eq!(from_item(&item).map_err(|e| TestCaseError::fail(e.to_string()))?, stored);
        }
    }
}
