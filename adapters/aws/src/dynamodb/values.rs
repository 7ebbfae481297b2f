//! Attribute values in and out of items, written once for every item kind.

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// An item, or a key.
pub type Item = HashMap<String, AttributeValue>;

/// A string attribute value.
pub fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

/// A binary attribute value.
pub fn b(v: Vec<u8>) -> AttributeValue {
    AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(v))
}

/// A number attribute value.
pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A string attribute, if present and a string.
pub fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a String> {
    item.get(name).and_then(|v| v.as_s().ok())
}

/// A number attribute parsed as `T`, if present and one.
pub fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

/// The key of an item: partition and sort key.
pub fn key(pk: &str, sk: &str) -> Item {
    HashMap::from([(super::keys::PK.to_owned(), s(pk)), (super::keys::SK.to_owned(), s(sk))])
}
