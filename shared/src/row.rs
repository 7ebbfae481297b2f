//! The flat form of a stored event: the archive's columns (contract section 4). The
//! Parquet writer writes it, the Parquet reader yields it, the export writers format it
//! and the filters match it, so a field means the same thing everywhere.

use crate::event::StoredEvent;
use std::borrow::Cow;

/// The string columns, in the archive's column order (the two times sit between `id`
/// and `action` in the file).
pub const STRING_COLUMNS: [&str; 25] = [
    "tenant_id",
    "id",
    "action",
    "outcome",
    "actor_type",
    "actor_id",
    "actor_name",
    "actor_email",
    "resource_type",
    "resource_id",
    "resource_name",
    "resource_parent_type",
    "resource_parent_id",
    "resource_parent_name",
    "workspace_id",
    "workspace_name",
    "source_ip",
    "user_agent",
    "source_platform",
    "source_location",
    "request_id",
    "description",
    "changes",
    "metadata",
    "hash",
];

/// Indexes into [`Row::s`].
pub mod col {
    pub const TENANT_ID: usize = 0;
    pub const ID: usize = 1;
    pub const ACTION: usize = 2;
    pub const OUTCOME: usize = 3;
    pub const ACTOR_TYPE: usize = 4;
    pub const ACTOR_ID: usize = 5;
    pub const ACTOR_NAME: usize = 6;
    pub const ACTOR_EMAIL: usize = 7;
    pub const RESOURCE_TYPE: usize = 8;
    pub const RESOURCE_ID: usize = 9;
    pub const RESOURCE_NAME: usize = 10;
    pub const RESOURCE_PARENT_TYPE: usize = 11;
    pub const RESOURCE_PARENT_ID: usize = 12;
    pub const RESOURCE_PARENT_NAME: usize = 13;
    pub const WORKSPACE_ID: usize = 14;
    pub const WORKSPACE_NAME: usize = 15;
    pub const SOURCE_IP: usize = 16;
    pub const USER_AGENT: usize = 17;
    pub const SOURCE_PLATFORM: usize = 18;
    pub const SOURCE_LOCATION: usize = 19;
    pub const REQUEST_ID: usize = 20;
    pub const DESCRIPTION: usize = 21;
    pub const CHANGES: usize = 22;
    pub const METADATA: usize = 23;
    pub const HASH: usize = 24;
}

/// One event as flat columns; `changes` and `metadata` are compact JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row<'a> {
    /// Microseconds since the epoch, UTC.
    pub occurred_at: i64,
    pub received_at: i64,
    pub s: [Option<Cow<'a, str>>; 25],
}

impl Row<'_> {
    #[must_use]
    pub fn get(&self, column: usize) -> Option<&str> {
        self.s.get(column).and_then(|v| v.as_deref())
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

    /// The flat form of a stored event.
    #[must_use]
    pub fn from_stored(stored: &StoredEvent) -> Row<'_> {
        let e = &stored.event;
        let r = e.resource.as_ref();
        let p = r.and_then(|r| r.parent.as_ref());
        let w = e.workspace.as_ref();
        let src = e.source.as_ref();
        fn b(v: Option<&String>) -> Option<Cow<'_, str>> {
            v.map(|s| Cow::Borrowed(s.as_str()))
        }
        let changes = e.changes.as_ref().map(|c| {
            let list: Vec<serde_json::Value> = c
                .iter()
                .map(|c| {
                    let mut o = serde_json::Map::new();
                    o.insert("field".into(), c.field.clone().into());
                    if let Some(old) = &c.old {
                        o.insert("old".into(), old.clone());
                    }
                    if let Some(new) = &c.new {
                        o.insert("new".into(), new.clone());
                    }
                    serde_json::Value::Object(o)
                })
                .collect();
            Cow::Owned(serde_json::Value::Array(list).to_string())
        });
        Row {
            occurred_at: e.occurred_at.micros(),
            received_at: stored.received_at.micros(),
            s: [
                Some(Cow::Borrowed(e.tenant_id.as_str())),
                Some(Cow::Borrowed(e.id.as_str())),
                Some(Cow::Borrowed(e.action.as_str())),
                Some(Cow::Borrowed(e.outcome.as_str())),
                Some(Cow::Borrowed(e.actor.kind.as_str())),
                Some(Cow::Borrowed(e.actor.id.as_str())),
                b(e.actor.name.as_ref()),
                b(e.actor.email.as_ref()),
                b(r.and_then(|r| r.kind.as_ref())),
                b(r.and_then(|r| r.id.as_ref())),
                b(r.and_then(|r| r.name.as_ref())),
                b(p.and_then(|p| p.kind.as_ref())),
                b(p.and_then(|p| p.id.as_ref())),
                b(p.and_then(|p| p.name.as_ref())),
                b(w.and_then(|w| w.id.as_ref())),
                b(w.and_then(|w| w.name.as_ref())),
                src.and_then(|s| s.ip).map(|ip| Cow::Owned(ip.to_string())),
                b(src.and_then(|s| s.user_agent.as_ref())),
                b(src.and_then(|s| s.platform.as_ref())),
                b(src.and_then(|s| s.location.as_ref())),
                b(e.request_id.as_ref()),
                b(e.description.as_ref()),
                changes,
                e.metadata.as_ref().map(|m| Cow::Owned(serde_json::to_string(m).unwrap_or_default())),
                Some(Cow::Borrowed(stored.hash.as_str())),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet_writer::COLUMNS;

    #[test]
    fn string_columns_are_the_archive_columns_in_order() {
        let archive: Vec<&str> =
            COLUMNS.iter().map(|(n, _)| *n).filter(|n| *n != "occurred_at" && *n != "received_at").collect();
        assert_eq!(archive, STRING_COLUMNS.to_vec());
        let named = [
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
            (col::RESOURCE_PARENT_TYPE, "resource_parent_type"),
            (col::RESOURCE_PARENT_ID, "resource_parent_id"),
            (col::RESOURCE_PARENT_NAME, "resource_parent_name"),
            (col::WORKSPACE_ID, "workspace_id"),
            (col::WORKSPACE_NAME, "workspace_name"),
            (col::SOURCE_IP, "source_ip"),
            (col::USER_AGENT, "user_agent"),
            (col::SOURCE_PLATFORM, "source_platform"),
            (col::SOURCE_LOCATION, "source_location"),
            (col::REQUEST_ID, "request_id"),
            (col::DESCRIPTION, "description"),
            (col::CHANGES, "changes"),
            (col::METADATA, "metadata"),
            (col::HASH, "hash"),
        ];
        for (i, name) in named {
            assert_eq!(STRING_COLUMNS[i], name);
        }
    }
}
