//! The one numeric model (contract section 1): a number is accepted only when every
//! reader, writer and hasher of the event sees the same value.
//!
//! RFC 8785 reads a number as an IEEE-754 double and writes the shortest decimal that reads
//! back as that double (ECMAScript's `Number.prototype.toString`). A number is accepted
//! when:
//!
//! 1. its decimal value, rounded to the nearest double, is finite (no overflow);
//! 2. that double's shortest decimal has exactly the value written (`0.1` and `1.50` pass,
//!    `0.10000000000000001`, `1e-400` and `2^53 + 1` do not: they would read back as
//!    another number);
//! 3. its magnitude is at most 2^53 − 1 (I-JSON, RFC 7493): a double beyond that is always
//!    an integer, and readers that hold integers exactly (Python's `int`, serde_json's
//!    `u64`) would keep digits RFC 8785 writes differently (`2^60` is
//!    `1152921504606846976` as digits, `1152921504606847000` in RFC 8785). So
//!    `72057594037927940.0` and `7.205759403792794e16` are refused like
//!    `72057594037927940`.
//!
//! Accepted numbers are stored in their RFC 8785 form, so `1.0` reads back as `1` and
//! `-0` as `0`: the same value. Rule 2 needs the number's text (a parsed double has
//! forgotten it), so events are checked by [`scan`] over their JSON text before parsing;
//! values built in code are checked by [`check_value`], which applies rules 1 and 3.
//!
//! The scan also bounds nesting ([`MAX_DEPTH`]), so that an accepted event, wrapped in a
//! response page, a batch or a queue message, stays within every JSON reader's depth
//! limit (serde_json's is 128).

use serde_json::{Map, Number, Value};

/// The largest magnitude accepted: 2^53 − 1.
pub const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;
/// Most levels of objects and arrays in one event, the event object itself included.
pub const MAX_DEPTH: usize = 64;

/// Why a number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inexact {
    /// Too large for a double.
    Overflow,
    /// Reads back as another value (rounded, or underflowed towards zero).
    Rounded,
    /// Beyond ±(2^53 − 1).
    Unsafe,
}

impl Inexact {
    /// A sentence naming the number, for an error's `message`.
    #[must_use]
    pub fn message(self, literal: &str) -> String {
        let why = match self {
            Inexact::Overflow => "is too large for an IEEE-754 double",
            Inexact::Rounded => "changes value as an IEEE-754 double",
            Inexact::Unsafe => "is beyond ±(2^53 − 1), which interoperable JSON readers cannot hold exactly",
        };
        format!("number {literal} {why} (I-JSON, RFC 7493)")
    }
}

/// Checks one JSON number literal against the three rules.
///
/// # Errors
/// [`Inexact`] when a rule is broken.
pub fn check_literal(literal: &str) -> Result<(), Inexact> {
    // Fast path: an integer of at most 15 digits is below 2^53 and exact.
    let digits = literal.strip_prefix('-').unwrap_or(literal);
    if !digits.is_empty() && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(());
    }
    let double: f64 = literal.parse().map_err(|_| Inexact::Rounded)?;
    if !double.is_finite() {
        return Err(Inexact::Overflow);
    }
    let written = Decimal::parse(literal).ok_or(Inexact::Rounded)?;
    let shortest = Decimal::parse(shortest(double).as_str()).ok_or(Inexact::Rounded)?;
    if written != shortest {
        return Err(Inexact::Rounded);
    }
    if double.abs() > MAX_SAFE_INTEGER {
        return Err(Inexact::Unsafe);
    }
    Ok(())
}

/// Checks a number already parsed (rules 1 and 3; rule 2 needs the text).
///
/// # Errors
/// [`Inexact`] when a rule is broken.
pub fn check_number(n: &Number) -> Result<(), Inexact> {
    let safe = |f: f64| if f.abs() > MAX_SAFE_INTEGER { Err(Inexact::Unsafe) } else { Ok(()) };
    if let Some(u) = n.as_u64() {
        if u > MAX_SAFE_INTEGER as u64 { Err(Inexact::Unsafe) } else { Ok(()) }
    } else if let Some(i) = n.as_i64() {
        if i.unsigned_abs() > MAX_SAFE_INTEGER as u64 { Err(Inexact::Unsafe) } else { Ok(()) }
    } else {
        match n.as_f64() {
            Some(f) if f.is_finite() => safe(f),
            _ => Err(Inexact::Overflow),
        }
    }
}

/// The first number in `value` that breaks rule 1 or 3, with its path below `value`
/// (`.key` and `[index]` steps).
#[must_use]
pub fn check_value(value: &Value) -> Option<(String, String, Inexact)> {
    walk(value, &mut String::new())
}

/// [`check_value`] of an object given by its members, with paths from the object
/// (`key.sub[1]`, as a violation's `field` names it).
#[must_use]
pub fn check_members(members: &Map<String, Value>) -> Option<(String, String, Inexact)> {
    members.iter().find_map(|(k, v)| walk(v, &mut k.clone()))
}

fn walk(value: &Value, path: &mut String) -> Option<(String, String, Inexact)> {
    match value {
        Value::Number(n) => check_number(n).err().map(|e| (path.clone(), n.to_string(), e)),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = walk(item, path);
            path.truncate(len);
            found
        }),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let len = path.len();
            path.push('.');
            path.push_str(k);
            let found = walk(v, path);
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

/// Levels of objects and arrays in `value` (a scalar is 0).
#[must_use]
pub fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The shortest decimal that reads back as `f`, as RFC 8785 writes it.
#[must_use]
pub fn shortest(f: f64) -> String {
    if f == 0.0 {
        // ECMAScript writes negative zero as "0".
        return "0".to_owned();
    }
    ryu_js::Buffer::new().format_finite(f).to_owned()
}

/// What [`scan`] found in a JSON text.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Findings {
    /// Each refused number: its path (`metadata.a[2]`), its text and why.
    pub numbers: Vec<(String, String, Inexact)>,
    /// The path of the first container nested deeper than [`MAX_DEPTH`].
    pub too_deep: Option<String>,
}

impl Findings {
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.numbers.is_empty() && self.too_deep.is_none()
    }
}

/// One open container of the scan: an object (with the span of its current key) or an
/// array (with the index of its current element).
enum Open {
    Object(Option<(usize, usize)>),
    Array(usize),
}

/// Checks every number literal of a JSON text and its nesting, in one pass that never
/// builds a value. The text is expected to be JSON (it is parsed afterwards, and a syntax
/// error reported then); on anything else the scan still ends without panicking.
#[must_use]
pub fn scan(text: &str) -> Findings {
    let bytes = text.as_bytes();
    let mut found = Findings::default();
    let mut stack: Vec<Open> = Vec::new();
    let mut i = 0;
    // Whether the next string in an object is a key.
    let mut expect_key = false;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => {
                if stack.len() >= MAX_DEPTH && found.too_deep.is_none() {
                    found.too_deep = Some(path(text, &stack));
                }
                stack.push(if bytes[i] == b'{' { Open::Object(None) } else { Open::Array(0) });
                expect_key = bytes[i] == b'{';
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
                i += 1;
            }
            b',' => {
                match stack.last_mut() {
                    Some(Open::Array(n)) => *n += 1,
                    Some(Open::Object(_)) => expect_key = true,
                    None => {}
                }
                i += 1;
            }
            b'"' => {
                let end = string_end(bytes, i);
                if expect_key {
                    if let Some(Open::Object(key)) = stack.last_mut() {
                        *key = Some((i, end));
                    }
                    expect_key = false;
                }
                i = end;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len() && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                    i += 1;
                }
                let literal = &text[start..i];
                if let Err(why) = check_literal(literal) {
                    found.numbers.push((path(text, &stack), literal.to_owned(), why));
                }
            }
            _ => i += 1,
        }
    }
    found
}

/// The index just past the string that starts at `start` (a `"`).
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The path of the value the scan is in, from the root: `.key` and `[index]` steps,
/// without the leading dot (the form of a violation's `field`).
fn path(text: &str, stack: &[Open]) -> String {
    let mut out = String::new();
    for open in stack {
        match open {
            Open::Object(Some((start, end))) => {
                let key: String = serde_json::from_str(&text[*start..*end]).unwrap_or_default();
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&key);
            }
            Open::Object(None) => {}
            Open::Array(n) => out.push_str(&format!("[{n}]")),
        }
    }
    out
}

/// A decimal number's exact value: `digits × 10^exponent`, with no leading or trailing
/// zeros in `digits` (empty for zero, whose sign does not count).
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    digits: String,
    exponent: i64,
}

impl Decimal {
    /// Reads a JSON number literal; `None` when it is not one.
    fn parse(literal: &str) -> Option<Self> {
        let (negative, rest) = match literal.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, literal),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => {
                let e = &rest[at + 1..];
                let (sign, e) = match e.as_bytes().first() {
                    Some(b'-') => (-1, &e[1..]),
                    Some(b'+') => (1, &e[1..]),
                    _ => (1, e),
                };
                if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                // Saturating: such an exponent already made the double 0 or infinite.
                let magnitude = e.parse::<i64>().unwrap_or(i64::MAX / 4).min(i64::MAX / 4);
                (&rest[..at], sign * magnitude)
            }
            None => (rest, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let all: String = int.chars().chain(frac.chars()).collect();
        let trimmed = all.trim_start_matches('0');
        let significant = trimmed.trim_end_matches('0');
        let trailing = i64::try_from(trimmed.len() - significant.len()).ok()?;
        let frac_len = i64::try_from(frac.len()).ok()?;
        if significant.is_empty() {
            return Some(Self { negative: false, digits: String::new(), exponent: 0 });
        }
        Some(Self { negative, digits: significant.to_owned(), exponent: exponent - frac_len + trailing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_numbers_that_read_back_as_written() {
        for ok in [
            "0",
            "-0",
            "0.0",
            "1",
            "1.0",
            "1.50",
            "-12.5e3",
            "0.1",
            "1e-7",
            "5e-324",
            "1.7976931348623157e-300",
            "9007199254740991",
            "-9007199254740991",
            "9007199254740991.0",
            "4503599627370495.5",
            "333333333.3333333",
            "0e999999999999999999999",
            "123456789012345",
        ] {
            assert_eq!(check_literal(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_numbers_that_change_or_exceed_the_safe_range() {
        for (bad, why) in [
            ("1e400", Inexact::Overflow),
            ("-1e309", Inexact::Overflow),
            ("1e-400", Inexact::Rounded),
            ("2.4703282292062328e-324", Inexact::Rounded),
            ("0.10000000000000001", Inexact::Rounded),
            ("1.00000000000000001", Inexact::Rounded),
            ("9007199254740993", Inexact::Rounded),
            ("9007199254740992", Inexact::Unsafe),
            ("72057594037927940", Inexact::Unsafe),
            ("72057594037927940.0", Inexact::Unsafe),
            ("7.205759403792794e16", Inexact::Unsafe),
            ("-4.021445880002169e16", Inexact::Unsafe),
            ("1e18", Inexact::Unsafe),
            // 2^60 exactly, but RFC 8785 writes it 1152921504606847000.
            ("1152921504606846976", Inexact::Rounded),
            ("1.5e300", Inexact::Unsafe),
            ("18446744073709551615", Inexact::Rounded),
        ] {
            assert_eq!(check_literal(bad), Err(why), "{bad}");
        }
    }

    #[test]
    fn parsed_numbers_beyond_the_safe_range_are_refused() {
        let v: Value = serde_json::from_str(r#"{"a": [1, {"b": 72057594037927940.0}], "c": 9007199254740991}"#)
            .unwrap_or_default();
        assert_eq!(check_value(&v), Some((".a[1].b".into(), "7.205759403792794e+16".into(), Inexact::Unsafe)));
        assert_eq!(check_value(&serde_json::json!([-9_007_199_254_740_991_i64, 0.5])), None);
        assert!(check_value(&serde_json::json!(i64::MIN)).is_some());
        assert!(check_value(&serde_json::json!(u64::MAX)).is_some());
    }

    #[test]
    fn the_scan_names_each_refused_number_by_its_path() {
        let text = r#"{"id": "x", "metadata": {"a\"b": [1, 2, 1e400], "ok": 0.5, "n": {"deep": 0.10000000000000001}},
                      "changes": [{"field": "f", "old": 2, "new": 72057594037927940.0}], "s": "1e400"}"#;
        let found = scan(text);
        assert_eq!(
            found.numbers,
            vec![
                ("metadata.a\"b[2]".into(), "1e400".into(), Inexact::Overflow),
                ("metadata.n.deep".into(), "0.10000000000000001".into(), Inexact::Rounded),
                ("changes[0].new".into(), "72057594037927940.0".into(), Inexact::Unsafe),
            ]
        );
        assert_eq!(found.too_deep, None);
    }

    #[test]
    fn the_scan_bounds_nesting() {
        let at_limit = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(scan(&at_limit).is_clean());
        let over = format!("{{\"m\": {}1{}}}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(scan(&over).too_deep.as_deref(), Some(&*format!("m{}", "[0]".repeat(MAX_DEPTH - 1))));
    }

    #[test]
    fn the_scan_ends_on_anything() {
        for junk in ["", "\"", "{\"a\":\"\\", "-", "1e", "[[[", "]]}}", "{\"a\" 1e400"] {
            let _ = scan(junk);
        }
    }

    #[test]
    fn shortest_forms_are_ecmascripts() {
        let cases = [(-0.0, "0"), (1e21, "1e+21"), (1e-7, "1e-7"), (0.000001, "0.000001"), (5e-324, "5e-324")];
        for (f, text) in cases {
            assert_eq!(shortest(f), text);
        }
    }
}
