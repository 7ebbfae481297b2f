//! Opaque, authenticated paging cursors.
//!
//! A cursor carries the position of every stream the page merged, the filters' digest,
//! the tenant and the order, signed with HMAC-SHA256. An edited cursor, one replayed by
//! another tenant, or one used with other filters is refused, never followed.

use crate::domain::filter::Order;
use crate::domain::plan::{EventKey, Partition, Path};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Bytes of the MAC kept in a cursor.
const TAG_BYTES: usize = 16;

/// Where one merged stream stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPos {
    #[serde(rename = "p")]
    pub partition: Partition,
    /// The key of the last item taken from it (or evaluated, past a filter), if any.
    #[serde(rename = "a")]
    pub after: Option<EventKey>,
    /// Whether it has nothing left.
    #[serde(rename = "d")]
    pub done: bool,
}

/// What a cursor says. The wire names are short: the cursor travels in a URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    #[serde(rename = "t")]
    pub tenant: String,
    /// [`Filter::digest`](crate::domain::filter::Filter::digest) of the filters as given.
    #[serde(rename = "f")]
    pub filter: String,
    #[serde(rename = "asc", with = "ascending")]
    pub order: Order,
    #[serde(rename = "i")]
    pub path: Path,
    /// The time range the first page resolved (micros), pinned for the following pages.
    #[serde(rename = "r")]
    pub range: (i64, i64),
    #[serde(rename = "s")]
    pub streams: Vec<StreamPos>,
}

/// Where a page of a catalog (`/v1/actions`, `/v1/actors`) ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogPosition {
    #[serde(rename = "t")]
    pub tenant: String,
    /// `actions` or `actors`.
    #[serde(rename = "c")]
    pub catalog: String,
    /// The `q` the pages filter by.
    #[serde(rename = "q")]
    pub q: Option<String>,
    /// The last key the previous page covered.
    #[serde(rename = "a")]
    pub after: String,
}

/// Where a page of `GET /v1/exports` ended: the last job id it listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportsPosition {
    #[serde(rename = "t")]
    pub tenant: String,
    #[serde(rename = "x")]
    pub after: String,
}

/// [`Order`] on the wire as `"asc": true | false`.
mod ascending {
    use crate::domain::filter::Order;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(order: &Order, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(*order == Order::Asc)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Order, D::Error> {
        Ok(if bool::deserialize(d)? { Order::Asc } else { Order::Desc })
    }
}

/// A cursor that is not one this service issued for this tenant and these filters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub struct BadCursor;

/// Signs and checks cursors.
#[derive(Clone)]
pub struct CursorKey(Vec<u8>);

impl CursorKey {
    /// Derives the cursor key from a server secret, kept apart from its other uses.
    #[must_use]
    pub fn derive(secret: &str) -> Self {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
        mac.update(b"audit-log cursor key v1");
        Self(mac.finalize().into_bytes().to_vec())
    }

    fn tag(&self, payload: &[u8]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(payload);
        mac.finalize().into_bytes()[..TAG_BYTES].to_vec()
    }

    fn seal<T: Serialize>(&self, value: &T) -> String {
        let payload = serde_json::to_vec(value).unwrap_or_default();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(self.tag(&payload)))
    }

    fn open<T: for<'de> Deserialize<'de>>(&self, cursor: &str) -> Result<T, BadCursor> {
        let (payload, tag) = cursor.split_once('.').ok_or(BadCursor)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| BadCursor)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| BadCursor)?;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).map_err(|_| BadCursor)?;
        mac.update(&payload);
        mac.verify_truncated_left(&tag).map_err(|_| BadCursor)?;
        if tag.len() != TAG_BYTES {
            return Err(BadCursor);
        }
        serde_json::from_slice(&payload).map_err(|_| BadCursor)
    }

    #[must_use]
    pub fn encode(&self, pos: &Position) -> String {
        self.seal(pos)
    }

    /// Checks the signature, the tenant and the filters.
    ///
    /// # Errors
    /// [`BadCursor`] for anything else.
    pub fn decode(&self, cursor: &str, tenant: &str, filter_digest: &str) -> Result<Position, BadCursor> {
        let pos: Position = self.open(cursor)?;
        if pos.tenant != tenant || pos.filter != filter_digest {
            return Err(BadCursor);
        }
        Ok(pos)
    }

    #[must_use]
    pub fn encode_exports(&self, pos: &ExportsPosition) -> String {
        self.seal(pos)
    }

    /// Checks the signature and the tenant.
    ///
    /// # Errors
    /// [`BadCursor`] for anything else.
    pub fn decode_exports(&self, cursor: &str, tenant: &str) -> Result<ExportsPosition, BadCursor> {
        let pos: ExportsPosition = self.open(cursor)?;
        if pos.tenant != tenant {
            return Err(BadCursor);
        }
        Ok(pos)
    }

    #[must_use]
    pub fn encode_catalog(&self, pos: &CatalogPosition) -> String {
        self.seal(pos)
    }

    /// Checks the signature, the tenant, the catalog and its `q`.
    ///
    /// # Errors
    /// [`BadCursor`] for anything else.
    pub fn decode_catalog(
        &self,
        cursor: &str,
        tenant: &str,
        catalog: &str,
        q: Option<&str>,
    ) -> Result<CatalogPosition, BadCursor> {
        let pos: CatalogPosition = self.open(cursor)?;
        if pos.tenant != tenant || pos.catalog != catalog || pos.q.as_deref() != q {
            return Err(BadCursor);
        }
        Ok(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos() -> Position {
        let after = "2026-11-01T00:00:00.000000Z#e1".parse().ok();
        Position {
            tenant: "acme".into(),
            filter: "abc".into(),
            order: Order::Desc,
            path: Path::Time,
            range: (0, 10),
            streams: vec![StreamPos { partition: Partition::new(0, None), after, done: false }],
        }
    }

    #[test]
    fn the_wire_form_keeps_its_short_names() {
        let text = serde_json::to_string(&pos()).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"t":"acme","f":"abc","asc":false,"i":"by_time","r":[0,10],"s":[{"p":"0","a":"2026-11-01T00:00:00.000000Z#e1","d":false}]}"#
        );
    }

    #[test]
    fn round_trips_for_the_same_tenant_and_filters() {
        let k = CursorKey::derive("secret");
        assert_eq!(k.decode(&k.encode(&pos()), "acme", "abc"), Ok(pos()));
    }

    #[test]
    fn refuses_edits_other_tenants_other_filters_and_other_keys() {
        let k = CursorKey::derive("secret");
        let c = k.encode(&pos());
        let (payload, tag) = c.split_once('.').unwrap_or_default();
        let mut forged = pos();
        forged.tenant = "other".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap_or_default());
        for bad in [
            format!("{forged_payload}.{tag}"),
            format!("{payload}.AAAAAAAAAAAAAAAAAAAAAA"),
            format!("{payload}."),
            "garbage".to_owned(),
            String::new(),
            CursorKey::derive("other secret").encode(&pos()),
        ] {
            assert_eq!(k.decode(&bad, "acme", "abc"), Err(BadCursor), "{bad}");
        }
        assert_eq!(k.decode(&c, "other", "abc"), Err(BadCursor));
        assert_eq!(k.decode(&c, "acme", "abd"), Err(BadCursor));
    }

    #[test]
    fn catalog_cursors_are_bound_to_their_tenant_catalog_and_q() {
        let k = CursorKey::derive("secret");
        let pos = CatalogPosition {
            tenant: "acme".into(),
            catalog: "actors".into(),
            q: Some("bo".into()),
            after: "u1".into(),
        };
        let c = k.encode_catalog(&pos);
        assert_eq!(k.decode_catalog(&c, "acme", "actors", Some("bo")), Ok(pos));
        assert_eq!(k.decode_catalog(&c, "other", "actors", Some("bo")), Err(BadCursor));
        assert_eq!(k.decode_catalog(&c, "acme", "actions", Some("bo")), Err(BadCursor));
        assert_eq!(k.decode_catalog(&c, "acme", "actors", None), Err(BadCursor));
        assert_eq!(k.decode_catalog(&k.encode(&super::tests::pos()), "acme", "actors", None), Err(BadCursor));
    }

    #[test]
    fn export_list_cursors_are_bound_to_their_tenant() {
        let k = CursorKey::derive("secret");
        let pos = ExportsPosition { tenant: "acme".into(), after: "0190-x".into() };
        let c = k.encode_exports(&pos);
        assert_eq!(k.decode_exports(&c, "acme"), Ok(pos));
        assert_eq!(k.decode_exports(&c, "other"), Err(BadCursor));
        let catalog = CatalogPosition { tenant: "acme".into(), catalog: "actors".into(), q: None, after: "u".into() };
        assert_eq!(k.decode_exports(&k.encode_catalog(&catalog), "acme"), Err(BadCursor));
        let (payload, _) = c.split_once('.').unwrap_or_default();
        assert_eq!(k.decode_exports(&format!("{payload}.AAAAAAAAAAAAAAAAAAAAAA"), "acme"), Err(BadCursor));
    }
}
