//! File formats: the archive's Parquet (written and read back) and the export files
//! (CSV, JSON lines), all following the field table in `domain::fields`.
//!
//! May depend on: the domain, and the blob port for reading a remote part's footer.

pub mod export_file;
pub mod parquet_read;
pub mod parquet_write;
pub mod signature;

pub use export_file::{FileWriter, TextFormat};

#[cfg(test)]
mod numbers_tests;

#[cfg(test)]
pub(crate) mod tests {
    use crate::domain::event::{Event, StoredEvent};
    use crate::domain::fixtures::{arb_event, arb_full_event};
    use crate::domain::row::Row;
    use crate::domain::timestamp::Timestamp;
    use crate::formats::TextFormat;
    use crate::formats::parquet_read::Part;
    use crate::formats::parquet_write::PartWriter;
    use proptest::prelude::*;
    use serde_json::Value;

    /// Stored events in the archive's order, and written as one part.
    pub(crate) fn part_of(events: impl IntoIterator<Item = StoredEvent>) -> (Vec<StoredEvent>, bytes::Bytes) {
        let mut stored: Vec<StoredEvent> = events.into_iter().collect();
        stored.sort_by(|a, b| a.key().cmp(&b.key()));
        let mut w = PartWriter::new(Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        for s in &stored {
            w.push(s).unwrap_or_else(|e| panic!("{e}"));
        }
        (stored, bytes::Bytes::from(w.finish().unwrap_or_else(|e| panic!("{e}"))))
    }

    /// The event back from a JSON form of it: validated as the service validates, after
    /// taking off what the server added.
    fn from_json(mut v: Value) -> (Result<Event, Vec<crate::domain::event::Violation>>, Value, Value) {
        let stamp = v.as_object_mut().map(|m| (m.remove("received_at"), m.remove("hash")));
        let (received_at, hash) = stamp.unwrap_or_default();
        (Event::from_stored(&v), received_at.unwrap_or_default(), hash.unwrap_or_default())
    }

    fn every_form_round_trips(stored: &StoredEvent) -> Result<(), TestCaseError> {
        let stamp = (Value::String(stored.received_at.to_string()), Value::String(stored.hash.clone()));
        // The API's JSON.
        let (event, r, h) = from_json(stored.to_json());
        prop_assert_eq!(event.as_ref(), Ok(&stored.event));
        prop_assert_eq!((r, h), stamp.clone());
        // The stored canonical doc (what the DynamoDB item holds).
        let doc: Value = serde_json::from_str(&stored.doc).unwrap_or_default();
        let event = Event::from_stored(&doc);
        prop_assert_eq!(event.as_ref(), Ok(&stored.event));
        // The flat row, through Parquet, as a JSON-lines line.
        let (_, bytes) = part_of([stored.clone()]);
        let part = Part::open(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let batches = part.read(bytes.clone(), 0, None).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let row = batches[0].row(0);
        prop_assert_eq!(&row, &Row::from_stored(stored));
        let mut line = Vec::new();
        TextFormat::Jsonl.write(&row, &mut line);
        let (event, r, h) = from_json(serde_json::from_slice(&line).unwrap_or_default());
        prop_assert_eq!(event.as_ref(), Ok(&stored.event));
        prop_assert_eq!((r, h), stamp);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn every_form_round_trips_every_field(event in arb_full_event()) {
            every_form_round_trips(&event.stamp(Timestamp::now()))?;
        }

        #[test]
        fn every_form_round_trips_any_event(event in arb_event()) {
            every_form_round_trips(&event.stamp(Timestamp::now()))?;
        }
    }
}
