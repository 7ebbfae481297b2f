//! The stored form of an event's canonical text (the item's `d` attribute): one format
//! byte, then the text itself or its zstd frame made with a dictionary compiled into the
//! service, whichever is smaller.
//!
//! An event's item is its largest part, and every byte of it is paid for on each write
//! (write units count kilobytes) and for 90 days of storage. Canonical events repeat the
//! same field names and values in the same order, which plain zstd cannot exploit in
//! 700 bytes, but a dictionary of them can: about 40 % of the text on the benchmark's
//! events, against 60 % without it (docs/benchmarks.md). The dictionary is raw content,
//! not trained, so what it holds is plain to see below; a frame is a standard zstd frame
//! that `zstd -d -D` with these bytes decodes. A dictionary, once used, is kept forever:
//! a new one gets a new format byte.

use std::cell::RefCell;

/// The text as is.
const PLAIN: u8 = 0;
/// A zstd frame made with [`DICTIONARY_1`].
const ZSTD_DICT_1: u8 = 1;
/// zstd's level: 3 gives within 4 % of level 19 on events, at a fraction of the time.
const LEVEL: i32 = 3;
/// The largest text a frame may expand to: DynamoDB items stop at 400 KB.
const MAX_TEXT: usize = 400 * 1024;

/// Field names in their canonical order and the values events share most, latest the most
/// common (zstd reaches nearer bytes more cheaply).
pub const DICTIONARY_1: &[u8] = concat!(
    "\"type\":\"service\"\"type\":\"system_user\"\"type\":\"api_key\"\"outcome\":\"failure\"",
    "\"platform\":\"\"location\":\"\"parent\":{\"id\":\"\",\"name\":\"\",\"type\":\"\"}",
    ".create\".update\".delete\".login\".logout\".invite\".export\".enable\".disable\"",
    "\"user_agent\":\"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/",
    "\"user_agent\":\"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Safari/",
    "{\"action\":\"auth.login\",\"actor\":{\"email\":\"@example.com\",\"id\":\"user_\",\"name\":\"\",\"type\":\"member\"},",
    "\"changes\":[{\"field\":\"\",\"new\":null,\"old\":null}],\"description\":\"\",\"id\":\"\",\"metadata\":{\"\":\"\"},",
    "\"occurred_at\":\"2026-01-01T00:00:00.000000Z\",\"outcome\":\"success\",\"request_id\":\"req_\",",
    "\"resource\":{\"id\":\"\",\"name\":\"\",\"type\":\"\"},\"source\":{\"ip\":\"\",\"user_agent\":\"\"},",
    "\"tenant_id\":\"\",\"workspace\":{\"id\":\"\",\"name\":\"\"}}"
)
.as_bytes();

thread_local! {
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        RefCell::new(zstd::bulk::Compressor::with_dictionary(LEVEL, DICTIONARY_1).ok());
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        RefCell::new(zstd::bulk::Decompressor::with_dictionary(DICTIONARY_1).ok());
}

/// A stored value that is not a doc this service wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the stored doc cannot be read: {0}")]
pub struct BadDoc(String);

/// The stored form of `text`.
#[must_use]
pub fn encode(text: &str) -> Vec<u8> {
    let frame = COMPRESSOR.with(|c| c.borrow_mut().as_mut().and_then(|c| c.compress(text.as_bytes()).ok()));
    match frame {
        Some(f) if f.len() < text.len() => [&[ZSTD_DICT_1][..], &f].concat(),
        _ => [&[PLAIN][..], text.as_bytes()].concat(),
    }
}

/// The text back from its stored form.
///
/// # Errors
/// [`BadDoc`] for an unknown format, a broken frame or text that is not UTF-8.
pub fn decode(stored: &[u8]) -> Result<String, BadDoc> {
    let (format, body) = stored.split_first().ok_or_else(|| BadDoc("empty".into()))?;
    let bytes = match *format {
        PLAIN => body.to_vec(),
        ZSTD_DICT_1 => DECOMPRESSOR
            .with(|d| d.borrow_mut().as_mut().map(|d| d.decompress(body, MAX_TEXT)))
            .ok_or_else(|| BadDoc("no decompressor".into()))?
            .map_err(|e| BadDoc(e.to_string()))?,
        other => return Err(BadDoc(format!("unknown format {other}"))),
    };
    String::from_utf8(bytes).map_err(|e| BadDoc(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_event_shrinks_and_reads_back() {
        let text = r#"{"action":"channel.create","actor":{"email":"ada@example.com","id":"user_1","name":"Ada","type":"member"},"id":"01J","occurred_at":"2026-11-05T22:25:20.138832Z","outcome":"success","tenant_id":"acme"}"#;
        let stored = encode(text);
        assert_eq!(stored[0], ZSTD_DICT_1);
        assert!(stored.len() * 2 < text.len(), "{} of {}", stored.len(), text.len());
        assert_eq!(decode(&stored).as_deref(), Ok(text));
    }

    #[test]
    fn what_does_not_shrink_stays_plain_and_junk_is_refused() {
        assert_eq!(encode("{}"), b"\0{}".to_vec());
        assert_eq!(decode(b"\0{}").as_deref(), Ok("{}"));
        assert!(decode(b"").is_err());
        assert!(decode(b"\x09abc").is_err());
        assert!(decode(b"\x01not a frame").is_err());
        assert!(decode(b"\0\xff").is_err());
    }

    proptest! {
        #[test]
        fn any_text_round_trips(text in "\\PC{0,3000}") {
            prop_assert_eq!(decode(&encode(&text)), Ok(text));
        }
    }
}
