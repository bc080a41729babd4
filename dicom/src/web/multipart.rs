//! `multipart/related` (RFC 2387) as DICOMweb uses it: reading the boundary and root type of a
//! request's Content-Type, and writing the parts of an answer.

use crate::error::WebError;

/// The parameters of a `multipart/related` Content-Type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartRelated {
    /// The boundary between parts.
    pub boundary: String,
    /// The `type` parameter (the media type of the parts), if given, lower case.
    pub part_type: Option<String>,
}

/// Parse a request's Content-Type, which must be `multipart/related` with a boundary.
pub fn parse_content_type(content_type: &str) -> Result<MultipartRelated, WebError> {
    let bad = |reason: &str| WebError::BadRequest {
        reason: format!(
            "Content-Type {content_type:?} {reason}; send `multipart/related; type=\"application/dicom\"; \
             boundary=...` with one DICOM file per part"
        ),
    };
    let mut pieces = split_params(content_type).into_iter();
    let media = pieces.next().unwrap_or_default();
    if !media.eq_ignore_ascii_case("multipart/related") {
        return Err(bad("is not multipart/related"));
    }
    let mut boundary = None;
    let mut part_type = None;
    for piece in pieces {
        let Some((name, value)) = piece.split_once('=') else { continue };
        let value = unquote(value.trim());
        match name.trim().to_ascii_lowercase().as_str() {
            "boundary" => boundary = Some(value),
            "type" => part_type = Some(value.to_ascii_lowercase()),
            _ => {}
        }
    }
    let boundary =
        boundary.filter(|b| !b.is_empty() && b.len() <= 70).ok_or_else(|| bad("has no usable boundary"))?;
    Ok(MultipartRelated { boundary, part_type })
}

/// Split `a; b="x;y"; c` at semicolons outside quotes, trimming each piece.
fn split_params(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ';' if !quoted => out.push(std::mem::take(&mut current).trim().to_owned()),
            _ => current.push(c),
        }
    }
    out.push(current.trim().to_owned());
    out
}

fn unquote(v: &str) -> String {
    let inner = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
    inner.replace("\\\"", "\"")
}

/// A boundary for an answer, derived from `seed` (unique per answer, never found in DICOM
/// bytes by accident with any real likelihood).
pub fn boundary(seed: &[u8]) -> String {
    format!("yilian-{}", &crate::Digest::of_bytes(seed).to_hex()[..32])
}

/// The Content-Type of an answer whose parts are `part_type`.
pub fn content_type(boundary: &str, part_type: &str) -> String {
    format!("multipart/related; type=\"{part_type}\"; boundary={boundary}")
}

/// The bytes that open a part: its delimiter line and headers.
pub fn part_head(boundary: &str, part_type: &str, location: Option<&str>) -> Vec<u8> {
    let mut head = format!("--{boundary}\r\nContent-Type: {part_type}\r\n");
    if let Some(location) = location {
        head.push_str(&format!("Content-Location: {location}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// The bytes that close a part's body.
pub const PART_END: &[u8] = b"\r\n";

/// The bytes that end the whole multipart body.
pub fn closing(boundary: &str) -> Vec<u8> {
    format!("--{boundary}--\r\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_read_with_quotes_and_any_case() {
        let ct = "Multipart/Related; type=\"application/dicom\"; boundary=\"abc;def\"";
        assert_eq!(
            parse_content_type(ct).unwrap(),
            MultipartRelated { boundary: "abc;def".into(), part_type: Some("application/dicom".into()) }
        );
        let ct = "multipart/related; boundary=xyz";
        assert_eq!(parse_content_type(ct).unwrap().boundary, "xyz");
        assert!(parse_content_type("application/dicom").is_err());
        assert!(parse_content_type("multipart/related; type=application/dicom").is_err());
    }

    #[test]
    fn parts_are_delimited_as_rfc_2046_says() {
        let b = boundary(b"seed");
        assert_eq!(b, boundary(b"seed"));
        assert_ne!(b, boundary(b"other"));
        let mut body = part_head(&b, "application/dicom", None);
        body.extend_from_slice(b"ONE");
        body.extend_from_slice(PART_END);
        body.extend_from_slice(&part_head(&b, "application/dicom", Some("http://x/1")));
        body.extend_from_slice(b"TWO");
        body.extend_from_slice(PART_END);
        body.extend_from_slice(&closing(&b));
        let text = String::from_utf8(body).unwrap();
        let expected = format!(
            "--{b}\r\nContent-Type: application/dicom\r\n\r\nONE\r\n--{b}\r\nContent-Type: application/dicom\r\n\
             Content-Location: http://x/1\r\n\r\nTWO\r\n--{b}--\r\n"
        );
        assert_eq!(text, expected);
        assert_eq!(
            content_type(&b, "application/dicom"),
            format!("multipart/related; type=\"application/dicom\"; boundary={b}")
        );
    }
}
