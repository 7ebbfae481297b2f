//! The flat form of a stored event, one value per field of [`FIELDS`]: the archive's
//! columns (contract section 4). The Parquet writer writes it, the Parquet reader yields
//! it, the export writers format it and the filters match it, so a field means the same
//! thing everywhere.

use crate::domain::canonical::sha256_hex;
use crate::domain::event::{Event, StoredEvent};
use crate::domain::fields::{self, FIELDS, Kind, TEXT_FIELDS, index, text_slot};
use crate::domain::timestamp::Timestamp;
use serde_json::Value;
use std::borrow::Cow;

/// The string columns (every field but the two times), in the archive's column order.
pub const STRING_COLUMNS: [&str; TEXT_FIELDS] = {
    let mut out = [""; TEXT_FIELDS];
    let (mut i, mut slot) = (0, 0);
    while i < FIELDS.len() {
        if !matches!(FIELDS[i].kind, Kind::Time) {
            out[slot] = FIELDS[i].column;
            slot += 1;
        }
        i += 1;
    }
    out
};

/// Per field of [`FIELDS`], its index in [`Row::s`] (`None` for the two times).
const SLOTS: [Option<usize>; FIELDS.len()] = {
    let mut out = [None; FIELDS.len()];
    let (mut i, mut slot) = (0, 0);
    while i < FIELDS.len() {
        if !matches!(FIELDS[i].kind, Kind::Time) {
            out[i] = Some(slot);
            slot += 1;
        }
        i += 1;
    }
    out
};

const OCCURRED_AT: usize = index("occurred_at");

/// Indexes into [`Row::s`], by column name.
pub mod col {
    use super::text_slot;

    pub const TENANT_ID: usize = text_slot("tenant_id");
    pub const ID: usize = text_slot("id");
    pub const ACTION: usize = text_slot("action");
    pub const OUTCOME: usize = text_slot("outcome");
    pub const ACTOR_TYPE: usize = text_slot("actor_type");
    pub const ACTOR_ID: usize = text_slot("actor_id");
    pub const ACTOR_NAME: usize = text_slot("actor_name");
    pub const ACTOR_EMAIL: usize = text_slot("actor_email");
    pub const RESOURCE_TYPE: usize = text_slot("resource_type");
    pub const RESOURCE_ID: usize = text_slot("resource_id");
    pub const RESOURCE_NAME: usize = text_slot("resource_name");
    pub const WORKSPACE_ID: usize = text_slot("workspace_id");
    pub const DESCRIPTION: usize = text_slot("description");
    pub const HASH: usize = text_slot("hash");
}

/// One event as flat columns; `changes` and `metadata` are compact JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row<'a> {
    /// Microseconds since the epoch, UTC.
    pub occurred_at: i64,
    pub received_at: i64,
    pub s: [Option<Cow<'a, str>>; TEXT_FIELDS],
}

/// A row that does not hold the event its `hash` column claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRow {
    /// The columns are not a valid event.
    #[error("its columns are not a valid event: {0}")]
    Invalid(String),
    /// The columns are an event whose hash is not the `hash` column.
    #[error("its columns hash to {actual}, its hash column says {claimed}")]
    Hash { claimed: String, actual: String },
}

/// A row's value of one field, as text: strings as they are, times in RFC 3339, JSON as
/// its compact text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell<'r> {
    Text(&'r str),
    Time(i64),
}

impl Cell<'_> {
    /// The time in RFC 3339, or the text itself.
    #[must_use]
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Self::Text(s) => Cow::Borrowed(s),
            Self::Time(micros) => {
                Cow::Owned(Timestamp::from_micros(*micros).map(|t| t.to_string()).unwrap_or_default())
            }
        }
    }
}

impl Row<'_> {
    #[must_use]
    pub fn get(&self, column: usize) -> Option<&str> {
        self.s.get(column).and_then(|v| v.as_deref())
    }

    /// The row's value of field number `field` of [`FIELDS`] (times are always present).
    #[must_use]
    pub fn cell(&self, field: usize) -> Option<Cell<'_>> {
        match SLOTS.get(field).copied().flatten() {
            Some(slot) => self.get(slot).map(Cell::Text),
            None if field == OCCURRED_AT => Some(Cell::Time(self.occurred_at)),
            None => Some(Cell::Time(self.received_at)),
        }
    }

    /// `(occurred_at, id)`: the archive's sort order and every merge's key.
    #[must_use]
    pub fn key(&self) -> (i64, &str) {
        (self.occurred_at, self.get(col::ID).unwrap_or_default())
    }

    /// A copy that borrows nothing, to outlive the batch it was read from.
    #[must_use]
    pub fn into_owned(self) -> Row<'static> {
        Row {
            occurred_at: self.occurred_at,
            received_at: self.received_at,
            s: self.s.map(|v| v.map(|c| Cow::Owned(c.into_owned()))),
        }
    }

    /// The event the row holds, rebuilt from its columns by the field table, with its
    /// canonical form and hash recomputed (as an auditor would): so a row whose values
    /// were edited is caught even when its part's checksum was fixed too.
    ///
    /// # Errors
    /// [`BadRow`] when the columns are not a valid event or do not hash to the `hash`
    /// column.
    pub fn to_stored(&self) -> Result<StoredEvent, BadRow> {
        let mut invalid = None;
        let doc = fields::object(|i| {
            let f = &FIELDS[i];
            let cell = self.cell(i).filter(|_| !f.server)?;
            match (f.kind, cell) {
                (Kind::Json, Cell::Text(text)) => match serde_json::from_str(text) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        invalid = Some(format!("{}: {e}", f.column));
                        None
                    }
                },
                (_, c) => Some(Value::String(c.text().into_owned())),
            }
        });
        if let Some(why) = invalid {
            return Err(BadRow::Invalid(why));
        }
        let event = Event::from_stored(&doc).map_err(|v| BadRow::Invalid(format!("{v:?}")))?;
        let received_at =
            Timestamp::from_micros(self.received_at).map_err(|_| BadRow::Invalid("received_at".into()))?;
        let stored = event.stamp(received_at);
        let claimed = self.get(col::HASH).unwrap_or_default();
        if stored.hash != claimed {
            return Err(BadRow::Hash { claimed: claimed.to_owned(), actual: sha256_hex(&stored.doc) });
        }
        Ok(stored)
    }

    /// The flat form of a stored event.
    #[must_use]
    pub fn from_stored(stored: &StoredEvent) -> Row<'_> {
        let source = stored.fields();
        let mut s: [Option<Cow<'_, str>>; TEXT_FIELDS] = Default::default();
        let mut slots = s.iter_mut();
        for f in FIELDS.iter().filter(|f| f.kind != Kind::Time) {
            if let Some(slot) = slots.next() {
                *slot = (f.read)(&source).map(|v| v.into_text());
            }
        }
        Row { occurred_at: stored.event.occurred_at.micros(), received_at: stored.received_at.micros(), s }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::{arb_event, arb_full_event};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_row_gives_back_its_event_and_hash(event in arb_event()) {
            let stored = event.stamp(Timestamp::now());
            prop_assert_eq!(Row::from_stored(&stored).to_stored(), Ok(stored));
        }

        #[test]
        fn an_edited_row_is_caught_by_its_hash(event in arb_full_event()) {
            let stored = event.stamp(Timestamp::now());
            let mut row = Row::from_stored(&stored);
            row.s[col::ACTOR_NAME] = Some(Cow::Borrowed("someone else"));
            prop_assert!(matches!(row.to_stored(), Err(BadRow::Hash { .. })), "an edited name passed");
            let mut row = Row::from_stored(&stored);
            row.occurred_at += 1;
            prop_assert!(matches!(row.to_stored(), Err(BadRow::Hash { .. })), "an edited time passed");
            let mut row = Row::from_stored(&stored);
            row.s[text_slot("metadata")] = Some(Cow::Borrowed("{not json"));
            prop_assert!(matches!(row.to_stored(), Err(BadRow::Invalid(_))));
        }
    }

    #[test]
    fn string_columns_are_the_fields_but_the_times() {
        let fields: Vec<&str> =
            FIELDS.iter().map(|f| f.column).filter(|n| *n != "occurred_at" && *n != "received_at").collect();
        assert_eq!(fields, STRING_COLUMNS.to_vec());
        for (i, name) in [
            (col::TENANT_ID, "tenant_id"),
            (col::ID, "id"),
            (col::ACTION, "action"),
            (col::OUTCOME, "outcome"),
            (col::ACTOR_TYPE, "actor_type"),
            (col::ACTOR_ID, "actor_id"),
            (col::ACTOR_NAME, "actor_name"),
            (col::ACTOR_EMAIL, "actor_email"),
            (col::RESOURCE_TYPE, "resource_type"),
            (col::RESOURCE_ID, "resource_id"),
            (col::RESOURCE_NAME, "resource_name"),
            (col::WORKSPACE_ID, "workspace_id"),
            (col::DESCRIPTION, "description"),
            (col::HASH, "hash"),
        ] {
            assert_eq!(STRING_COLUMNS[i], name);
        }
    }
}
