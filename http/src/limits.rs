//! What fits in one Lambda invocation. API Gateway hands a request to Lambda inside a
//! JSON event whose body is a JSON string: a text body grows by one byte for every `"`
//! and `\` it holds (more for control characters), a body of any other content type is
//! base64 (4 bytes per 3). Lambda refuses an event over 6 MiB before the function runs,
//! and API Gateway then answers with its own error, not the contract's. So a request's
//! limit counts its body as it will be in the event ([`size_in_event`]), and stays well
//! below what fits: a body over the limit still reaches the function, which refuses it
//! with the contract's answer.

/// Lambda's limit on a synchronous invocation's event.
pub const LAMBDA_EVENT_BYTES: usize = 6 * 1024 * 1024;
/// Room kept for everything in the event but the body (API Gateway allows about 10 KB
/// of request line and headers; each appears once, the claims once more).
pub const EVENT_ENVELOPE_BYTES: usize = 64 * 1024;
/// The most a body may take inside the event: past it, the client gets API Gateway's
/// error whatever the function would have said.
pub const MAX_BODY_IN_EVENT: usize = LAMBDA_EVENT_BYTES - EVENT_ENVELOPE_BYTES;

/// The size `body` takes inside API Gateway's event: escaped as a JSON string for text
/// and JSON content types, base64 for any other.
#[must_use]
pub fn size_in_event(body: &[u8], content_type: Option<&str>) -> usize {
    if is_text(content_type) {
        body.len()
            + body
                .iter()
                .map(|&b| match b {
                    b'"' | b'\\' | 0x08 | 0x0c | b'\n' | b'\r' | b'\t' => 1,
                    b if b < 0x20 => 5,
                    _ => 0,
                })
                .sum::<usize>()
    } else {
        body.len().div_ceil(3) * 4
    }
}

/// The content types API Gateway passes as text (without base64).
fn is_text(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let essence = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence.starts_with("text/")
        || essence == "application/json"
        || essence.ends_with("+json")
        || essence == "application/javascript"
        || essence == "application/xml"
        || essence.ends_with("+xml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_bodies_grow_by_their_escapes_and_others_by_base64() {
        let body = br#"{"a":"b\\c"}"#;
        assert_eq!(size_in_event(body, Some("application/json; charset=utf-8")), body.len() + 6);
        assert_eq!(size_in_event(b"abcd", Some("application/octet-stream")), 8);
        assert_eq!(size_in_event(b"abc", None), 4);
        assert_eq!(size_in_event("é\u{1}".as_bytes(), Some("text/plain")), 3 + 5);
    }
}
