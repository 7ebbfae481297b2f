//! `POST /v1/exports` bodies: the filters of `GET /v1/events` as a JSON object, plus
//! `format`. They are validated by the query API's own parser, and stored as a query
//! string with the time range fixed, so the job exports exactly what was asked at the
//! moment it was asked.

use crate::domain::event::{Reason, Violation};
use crate::domain::export::Format;
use crate::domain::filter::{Extra, Filter, parse_query};
use crate::domain::timestamp::Timestamp;
use serde_json::Value;

/// Largest request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    /// The filters as a query string, `from` and `to` always present.
    pub query: String,
    pub filter: Filter,
    pub format: Format,
}

fn violation(field: &str, reason: Reason, message: &str) -> Violation {
    Violation { field: field.to_owned(), reason, message: message.to_owned() }
}

/// # Errors
/// Every problem of the body, as violations naming the field.
pub fn parse_request(body: &[u8], now: Timestamp) -> Result<ExportRequest, Vec<Violation>> {
    if body.len() > MAX_BODY_BYTES {
        return Err(vec![violation("", Reason::TooLong, "an export request is at most 64 KiB")]);
    }
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(serde_json::Map::new())
    } else {
        serde_json::from_slice(body).map_err(|_| vec![violation("", Reason::InvalidFormat, "not UTF-8 JSON")])?
    };
    let Value::Object(fields) = value else {
        return Err(vec![violation("", Reason::NotAnObject, "a JSON object of filters")]);
    };
    let mut v = Vec::new();
    let mut format = Format::Csv;
    let mut pairs = form_urlencoded::Serializer::new(String::new());
    for (key, value) in &fields {
        match (key.as_str(), value) {
            ("format", Value::String(f)) => match Format::parse(f) {
                Ok(f) => format = f,
                Err(_) => v.push(violation("format", Reason::InvalidValue, Format::NAMES)),
            },
            ("format", _) => v.push(violation("format", Reason::InvalidType, "a string: csv, jsonl or parquet")),
            (_, Value::String(s)) => {
                pairs.append_pair(key, s);
            }
            ("actor" | "action", Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::String(s) => {
                            pairs.append_pair(key, s);
                        }
                        _ => v.push(violation(key, Reason::InvalidType, "strings")),
                    }
                }
            }
            // `null` is "not given" for a filter; an unknown name is refused whatever its value.
            (k, Value::Null) if crate::domain::filter::FILTER_KEYS.contains(&k) => {}
            (k, Value::Null) => v.push(violation(k, Reason::UnknownField, "unknown parameter")),
            _ => v.push(violation(key, Reason::InvalidType, "a string (actor and action: a string or an array)")),
        }
    }
    let given = pairs.finish();
    let parsed = parse_query(&given, Extra::Export, now);
    match parsed {
        Err(mut more) => {
            v.append(&mut more);
            Err(v)
        }
        Ok(_) if !v.is_empty() => Err(v),
        Ok(p) => {
            // Fix the range: a default `from`/`to` means "as of now", not "as of the run".
            let mut fixed = form_urlencoded::Serializer::new(String::new());
            for (k, val) in crate::domain::filter::query_pairs(&given) {
                if k != "from" && k != "to" {
                    fixed.append_pair(&k, &val);
                }
            }
            fixed.append_pair("from", &p.filter.from.to_string());
            fixed.append_pair("to", &p.filter.to.to_string());
            Ok(ExportRequest { query: fixed.finish(), filter: p.filter, format })
        }
    }
}

/// A stored query string as a JSON object: each parameter by name, a repeated one as an
/// array of its values.
#[must_use]
pub fn query_json(query: &str) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    for (k, v) in crate::domain::filter::query_pairs(query) {
        match m.get_mut(&k) {
            Some(Value::Array(list)) => list.push(Value::String(v)),
            Some(old) => *old = Value::Array(vec![old.clone(), Value::String(v)]),
            None => {
                m.insert(k, Value::String(v));
            }
        }
    }
    m
}

/// A stored query's range `(from, to)` and its other filters, as [`query_json`].
#[must_use]
pub fn filters_json(query: &str) -> ((Value, Value), serde_json::Map<String, Value>) {
    let mut m = query_json(query);
    let from = m.remove("from").unwrap_or(Value::Null);
    let to = m.remove("to").unwrap_or(Value::Null);
    ((from, to), m)
}

/// The filter a stored query string stands for.
///
/// # Errors
/// When the stored text is not a valid query (a corrupt job).
pub fn stored_filter(query: &str) -> Result<Filter, Vec<Violation>> {
    parse_query(query, Extra::Export, Timestamp::now()).map(|p| p.filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse("2026-11-20T12:00:00Z").unwrap_or(Timestamp::MIN)
    }

    fn reasons(body: &str) -> Vec<(String, Reason)> {
        parse_request(body.as_bytes(), now())
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.field, v.reason))
            .collect()
    }

    #[test]
    fn filters_and_format_parse_and_the_range_is_fixed() {
        let body = r#"{"from": "2020-01-01T00:00:00Z", "actor": ["u-1", "a@x.com"], "action": "api_key.*", "format": "jsonl"}"#;
        let r = parse_request(body.as_bytes(), now()).unwrap_or_else(|v| panic!("{v:?}"));
        assert_eq!(r.format, Format::Jsonl);
        assert_eq!(r.filter.actors, vec!["u-1".to_owned(), "a@x.com".to_owned()]);
        let again = stored_filter(&r.query).unwrap_or_else(|v| panic!("{v:?}"));
        assert_eq!((again.from, again.to), (r.filter.from, r.filter.to));
        assert_eq!(again.actions, r.filter.actions);
        assert!(r.query.contains("to=2026-11-20T12%3A05%3A00.000000Z"), "{}", r.query);
        let empty = parse_request(b"", now()).unwrap_or_else(|v| panic!("{v:?}"));
        assert_eq!(empty.format, Format::Csv);
        assert_eq!(empty.filter.from, now().plus_seconds(-7 * 86_400));
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let cases: &[(&str, &str, Reason)] = &[
            ("[1]", "", Reason::NotAnObject),
            ("{", "", Reason::InvalidFormat),
            (r#"{"format": "xlsx"}"#, "format", Reason::InvalidValue),
            (r#"{"format": 1}"#, "format", Reason::InvalidType),
            (r#"{"cursor": "abc"}"#, "cursor", Reason::UnknownField),
            (r#"{"limit": "5"}"#, "limit", Reason::UnknownField),
            (r#"{"tenant": "other"}"#, "tenant", Reason::UnknownField),
            // Schemathesis found it accepted (and an export of the last 7 days queued).
            (r#"{"bogus": null}"#, "bogus", Reason::UnknownField),
            (r#"{"from": 5}"#, "from", Reason::InvalidType),
            (r#"{"from": "yesterday"}"#, "from", Reason::InvalidFormat),
            (r#"{"action": ["a.b", 3]}"#, "action", Reason::InvalidType),
            (r#"{"action": "x' OR '1'='1"}"#, "action", Reason::InvalidFormat),
            (r#"{"outcome": ["success"]}"#, "outcome", Reason::InvalidType),
        ];
        for (body, field, reason) in cases {
            assert!(reasons(body).contains(&((*field).to_owned(), *reason)), "{body}: {:?}", reasons(body));
        }
        let big = format!(r#"{{"q": "{}"}}"#, "x".repeat(MAX_BODY_BYTES));
        assert_eq!(reasons(&big), vec![(String::new(), Reason::TooLong)]);
    }
}
