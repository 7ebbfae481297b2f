//! An event as received, before validation: its JSON value and what the scan of its text
//! found ([`crate::domain::number`]). Events from a request body, a queue message or a
//! file are read from their text, so every rule of the numeric model applies; events
//! built in code come as values, and get the checks a value still allows.

use crate::domain::number::{self, Findings};
use serde_json::Value;

/// One event on its way to [`crate::domain::event::Event::validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// `None` when the text holds a number no double can hold, which the JSON parser
    /// refuses outright; the findings then say which.
    pub(crate) value: Option<Value>,
    /// What the scan of the event's text found; `None` for a value built in code.
    pub(crate) findings: Option<Findings>,
}

impl Incoming {
    /// Reads one event's JSON text.
    ///
    /// # Errors
    /// When the text is not JSON (and not merely JSON with a number out of range).
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        let findings = number::scan(text);
        if findings.too_deep.is_some() {
            // Not parsed at all: the depth is already a reason to refuse it.
            return Ok(Self { value: None, findings: Some(findings) });
        }
        match serde_json::from_str(text) {
            Ok(value) => Ok(Self { value: Some(value), findings: Some(findings) }),
            Err(_) if !findings.numbers.is_empty() => Ok(Self { value: None, findings: Some(findings) }),
            Err(e) => Err(e),
        }
    }

    /// The event's `id`, when it has a string one (for results of refused events).
    #[must_use]
    pub fn id(&self) -> Option<String> {
        self.value.as_ref().and_then(|v| v.get("id")).and_then(Value::as_str).map(str::to_owned)
    }

    /// Removes a top-level member (a queue message's `tenant_id`) and returns it.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        match &mut self.value {
            Some(Value::Object(m)) => m.remove(key),
            _ => None,
        }
    }

    /// Sets a top-level member (an id `convert` assigned).
    pub fn insert(&mut self, key: &str, value: Value) {
        if let Some(Value::Object(m)) = &mut self.value {
            m.insert(key.to_owned(), value);
        }
    }
}

impl From<Value> for Incoming {
    fn from(value: Value) -> Self {
        Self { value: Some(value), findings: None }
    }
}
