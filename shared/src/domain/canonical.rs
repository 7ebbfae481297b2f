//! RFC 8785 (JSON Canonicalization Scheme) serialization.
//!
//! The stored form of an event is its JCS text, and the event `hash` is the SHA-256 of
//! exactly these bytes, so that an auditor with any JCS library can recompute it.

use serde_json::{Number, Value};
use sha2::{Digest, Sha256};

/// Returns `value` as reading back its canonical text would: a float with an integral
/// value becomes an integer, `-0.0` becomes `0`. Stored events are held in this form so
/// that what is returned equals what was hashed.
#[must_use]
pub fn normalize(value: Value) -> Value {
    if has_float(&value) { serde_json::from_str(&to_canonical(&value)).unwrap_or(value) } else { value }
}

fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

/// Serializes `value` in canonical form (sorted keys by UTF-16 code units, ECMAScript
/// number formatting, minimal string escapes).
#[must_use]
pub fn to_canonical(value: &Value) -> String {
    let mut out = String::with_capacity(512);
    write_value(&mut out, value);
    out
}

/// Writes a canonical object whose keys the caller gives in canonical order (for fixed
/// schemas, where sorting at run time would be wasted work).
pub struct ObjectWriter {
    out: String,
    /// Per open object or array: whether it has a member yet.
    first: Vec<bool>,
}

impl ObjectWriter {
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        let mut out = String::with_capacity(capacity);
        out.push('{');
        Self { out, first: vec![true] }
    }

    fn key(&mut self, key: &str) {
        if let Some(first) = self.first.last_mut() {
            if !*first {
                self.out.push(',');
            }
            *first = false;
        }
        write_string(&mut self.out, key);
        self.out.push(':');
    }

    pub fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        write_string(&mut self.out, value);
    }

    pub fn opt(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }

    pub fn value_opt(&mut self, key: &str, value: Option<&Value>) {
        if let Some(v) = value {
            self.key(key);
            write_value(&mut self.out, v);
        }
    }

    pub fn map(&mut self, key: &str, map: &serde_json::Map<String, Value>) {
        self.key(key);
        write_object(&mut self.out, map);
    }

    pub fn open(&mut self, key: &str) {
        self.key(key);
        self.out.push('{');
        self.first.push(true);
    }

    pub fn open_array(&mut self, key: &str) {
        self.key(key);
        self.out.push('[');
        self.first.push(true);
    }

    /// Opens an object as the next element of the current array.
    pub fn open_element(&mut self) {
        if let Some(first) = self.first.last_mut() {
            if !*first {
                self.out.push(',');
            }
            *first = false;
        }
        self.out.push('{');
        self.first.push(true);
    }

    pub fn close(&mut self) {
        self.first.pop();
        self.out.push('}');
    }

    pub fn close_array(&mut self) {
        self.first.pop();
        self.out.push(']');
    }

    #[must_use]
    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// The canonical form of a JSON object.
#[must_use]
pub fn to_canonical_map(map: &serde_json::Map<String, Value>) -> String {
    let mut out = String::with_capacity(256);
    write_object(&mut out, map);
    out
}

/// Lowercase hex SHA-256 of the canonical form.
#[must_use]
pub fn sha256_hex(canonical: &str) -> String {
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

fn write_object(out: &mut String, map: &serde_json::Map<String, Value>) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| utf16_cmp(a.0, b.0));
    out.push('{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, k);
        out.push(':');
        write_value(out, v);
    }
    out.push('}');
}

/// ECMAScript's number formatting, which RFC 8785 prescribes: integers of at most
/// 2^53 − 1 are their digits; anything else is the double's shortest form (`2^60` is
/// `1152921504606847000`, `1e21` is `1e+21`), however the number was held.
fn write_number(out: &mut String, n: &Number) {
    const SAFE: u64 = (1 << 53) - 1;
    match (n.as_u64(), n.as_i64()) {
        (Some(u), _) if u <= SAFE => out.push_str(&u.to_string()),
        (_, Some(i)) if i.unsigned_abs() <= SAFE => out.push_str(&i.to_string()),
        _ => out.push_str(&crate::domain::number::shortest(n.as_f64().unwrap_or(0.0))),
    }
}

/// RFC 8785 orders keys by UTF-16 code units. That equals UTF-8 byte order unless a
/// string holds U+E000..U+FFFF (UTF-8 lead bytes 0xEE and 0xEF), so the bytes are
/// compared directly in the common case.
fn utf16_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let special = |s: &str| s.bytes().any(|x| x == 0xEE || x == 0xEF);
    if special(a) || special(b) { a.encode_utf16().cmp(b.encode_utf16()) } else { a.as_bytes().cmp(b.as_bytes()) }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{0C}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_by_utf16_code_units_not_bytes() {
        // U+1F600 (surrogates D83D DE00) sorts before U+E000 in UTF-16, after it in UTF-8.
        let v = json!({"\u{E000}": 2, "\u{1F600}": 1, "b": 3, "a": {"z": 1, "y": [1, "x"]}});
        assert_eq!(to_canonical(&v), "{\"a\":{\"y\":[1,\"x\"],\"z\":1},\"b\":3,\"\u{1F600}\":1,\"\u{E000}\":2}");
    }

    #[test]
    fn formats_numbers_as_ecmascript_does() {
        let v: Value = serde_json::from_str("[1.0, -0.0, 1e21, 1e-7, 0.1, 123456789012, 1.5e300]").unwrap_or_default();
        assert_eq!(to_canonical(&v), "[1,0,1e+21,1e-7,0.1,123456789012,1.5e+300]");
    }

    #[test]
    fn normalizes_like_a_canonical_round_trip() {
        let v: Value = serde_json::from_str(r#"{"a": [1.0, -0.0, 1e18, 2.5, 3]}"#).unwrap_or_default();
        assert_eq!(normalize(v), json!({"a": [1, 0, 1_000_000_000_000_000_000_u64, 2.5, 3]}));
    }

    #[test]
    fn escapes_control_characters_minimally() {
        let v = json!("a\"b\\c\u{1}\n\u{7f}é");
        assert_eq!(to_canonical(&v), "\"a\\\"b\\\\c\\u0001\\n\u{7f}é\"");
    }

    #[test]
    fn integers_beyond_2_pow_53_are_written_as_ecmascript_does() {
        let v = json!([1_152_921_504_606_846_976_u64, -9_007_199_254_740_993_i64, 9_007_199_254_740_991_u64]);
        assert_eq!(to_canonical(&v), "[1152921504606847000,-9007199254740992,9007199254740991]");
    }

    #[test]
    fn rfc8785_sample_hashes_stably() {
        let v = json!({"numbers": [333333333.3333333, 1e30, 4.5, 0.002, 1e-27],
                       "string": "\u{20ac}$\u{000F}\nA'B\"\\\\\"/", "literals": [null, true, false]});
        assert_eq!(
            to_canonical(&v),
            "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"€$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"
        );
    }
}
