//! The numeric model end to end, over arbitrary JSON: every event the service accepts
//! hashes as an independent RFC 8785 implementation (serde_jcs) hashes what the client
//! sent, is archived as a Parquet row its hash can be recomputed from, and is exported as
//! JSON lines and CSV holding the same values; every event it refuses breaks a rule of
//! `domain::number`.

use crate::domain::canonical::{sha256_hex, to_canonical};
use crate::domain::event::{Event, Reason};
use crate::domain::fixtures::arb_event_text;
use crate::domain::incoming::Incoming;
use crate::domain::tenant::TenantId;
use crate::domain::timestamp::Timestamp;
use crate::formats::TextFormat;
use crate::formats::parquet_read::Part;
use crate::formats::tests::part_of;
use proptest::prelude::*;
use serde_json::Value;

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap_or_else(|_| unreachable!())
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// The event as the client sent it, with what the server adds, canonicalized by
/// serde_jcs: the hash an auditor with any RFC 8785 library computes.
fn independent_hash(text: &str) -> Result<(String, String), TestCaseError> {
    let mut sent: Value = serde_json::from_str(text).map_err(fail)?;
    if let Some(m) = sent.as_object_mut() {
        m.insert("tenant_id".into(), Value::String("acme".into()));
    }
    let canonical = serde_jcs::to_string(&sent).map_err(fail)?;
    Ok((sha256_hex(&canonical), canonical))
}

/// RFC 4180 fields of a CSV file, row by row.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

fn accepted_event_survives_every_form(
    text: &str,
    stored: &crate::domain::event::StoredEvent,
) -> Result<(), TestCaseError> {
    // Hashed as an independent RFC 8785 implementation hashes what was sent.
    let (hash, canonical) = independent_hash(text)?;
    prop_assert_eq!(&stored.doc, &canonical);
    prop_assert_eq!(&stored.hash, &hash);
    // Read back from its stored text as the same event.
    let doc: Value = serde_json::from_str(&stored.doc).map_err(fail)?;
    prop_assert_eq!(Event::from_stored(&doc), Ok(stored.event.clone()));
    // Archived: a Parquet row, its JSON-lines line recomputes the hash.
    let (_, bytes) = part_of([stored.clone()]);
    let part = Part::open(&bytes).map_err(fail)?;
    let batches = part.read(bytes.clone(), 0, None).map_err(fail)?;
    let row = batches[0].row(0);
    let mut line = Vec::new();
    TextFormat::Jsonl.write(&row, &mut line);
    let mut exported: Value = serde_json::from_slice(&line).map_err(fail)?;
    let stamp = exported.as_object_mut().map(|m| (m.remove("received_at"), m.remove("hash")));
    prop_assert_eq!(stamp.and_then(|s| s.1), Some(Value::String(stored.hash.clone())));
    let recomputed = serde_jcs::to_string(&exported).map_err(fail)?;
    prop_assert_eq!(sha256_hex(&recomputed), stored.hash.clone());
    // Exported as CSV: the same metadata and changes.
    let mut csv = TextFormat::Csv.header();
    TextFormat::Csv.write(&row, &mut csv);
    let rows = csv_rows(&String::from_utf8(csv).map_err(fail)?);
    let (header, cells) = (&rows[0], &rows[1]);
    for column in ["metadata", "changes"] {
        let at = header.iter().position(|h| h == column).ok_or_else(|| fail(column))?;
        let cell: Value = serde_json::from_str(&cells[at]).map_err(fail)?;
        prop_assert_eq!(to_canonical(&cell), to_canonical(&doc[column]));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn accepted_numbers_survive_every_form_and_refused_ones_break_a_rule((text, acceptable) in arb_event_text()) {
        let got = Event::validate(Incoming::parse(&text).map_err(fail)?, &tenant(), Timestamp::now());
        match got {
            Ok(accepted) => {
                prop_assert!(acceptable, "accepted {}", text);
                accepted_event_survives_every_form(&text, &accepted.stamp(Timestamp::now()))?;
            }
            Err(violations) => {
                prop_assert!(!acceptable, "refused {}: {:?}", text, violations);
                for v in violations {
                    prop_assert!(matches!(v.reason, Reason::NumberPrecision | Reason::TooLarge), "{:?}", v);
                }
            }
        }
    }
}

/// serde_jcs writes numbers as ECMAScript does (RFC 8785 Appendix B's samples), so it can
/// stand as the independent implementation above.
#[test]
fn the_independent_implementation_formats_numbers_as_ecmascript() {
    let samples: [(u64, &str); 12] = [
        (0x0000_0000_0000_0000, "0"),
        (0x8000_0000_0000_0000, "0"),
        (0x0000_0000_0000_0001, "5e-324"),
        (0x8000_0000_0000_0001, "-5e-324"),
        (0x7fef_ffff_ffff_ffff, "1.7976931348623157e+308"),
        (0x4340_0000_0000_0000, "9007199254740992"),
        (0x4430_0000_0000_0000, "295147905179352830000"),
        (0x44b5_2d02_c7e1_4af6, "1e+23"),
        (0x3eb0_c6f7_a0b5_ed8d, "0.000001"),
        (0x3eb0_c6f7_a0b5_ed8c, "9.999999999999997e-7"),
        (0x41b3_de43_5555_5553, "333333333.3333332"),
        (0xc3b0_0000_0000_0000, "-1152921504606847000"),
    ];
    for (bits, text) in samples {
        let f = f64::from_bits(bits);
        assert_eq!(serde_jcs::to_string(&f).unwrap_or_default(), text, "{bits:x}");
        assert_eq!(crate::domain::number::shortest(f), text, "{bits:x}");
    }
}
