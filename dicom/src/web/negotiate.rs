//! Content negotiation of WADO-RS retrievals (PS3.18 8.7): which of the forms the client's
//! Accept header allows this node can answer. Instances are always sent as stored; frames are
//! sent as stored, or decompressed to native samples when the client asks for uncompressed
//! `application/octet-stream` frames of a compressed instance.

use crate::error::WebError;
use crate::sop::EXPLICIT_VR_LITTLE_ENDIAN;

/// One media range of an Accept header: the (part) media type and its transfer syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MediaRange {
    media: String,
    transfer_syntax: Option<String>,
}

/// Split at `sep` outside double quotes, trimming each piece.
fn split_unquoted(text: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c == sep && !quoted {
            out.push(std::mem::take(&mut current).trim().to_owned());
        } else {
            current.push(c);
        }
    }
    out.push(current.trim().to_owned());
    out
}

/// The media ranges of an Accept header; `multipart/related` ranges stand for their `type`.
fn media_ranges(accept: &str) -> Vec<MediaRange> {
    split_unquoted(accept, ',')
        .into_iter()
        .filter(|r| !r.is_empty())
        .map(|range| {
            let mut pieces = split_unquoted(&range, ';').into_iter();
            let mut media = pieces.next().unwrap_or_default().to_ascii_lowercase();
            let mut part_type = None;
            let mut transfer_syntax = None;
            for piece in pieces {
                let Some((name, value)) = piece.split_once('=') else { continue };
                let value = value.trim().trim_matches('"').to_owned();
                match name.trim().to_ascii_lowercase().as_str() {
                    "type" => part_type = Some(value.to_ascii_lowercase()),
                    "transfer-syntax" => transfer_syntax = Some(value),
                    _ => {}
                }
            }
            if media == "multipart/related" {
                media = part_type.unwrap_or_else(|| "*/*".to_owned());
            }
            MediaRange { media, transfer_syntax }
        })
        .collect()
}

/// How to answer a frame retrieval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameForm {
    /// The frame's bytes as stored, each part of this media type.
    AsStored {
        /// The part media type, with its transfer-syntax parameter.
        media: String,
    },
    /// Decompressed to native little-endian samples (`application/octet-stream`, Explicit VR
    /// Little Endian).
    Native,
}

/// Choose how to answer frames of an instance stored in `stored_ts` (`encapsulated` when its
/// pixel data is compressed) for the `accept` header (none means anything).
pub fn frames(accept: Option<&str>, stored_ts: &str, encapsulated: bool) -> Result<FrameForm, WebError> {
    let as_stored =
        |media: &str| FrameForm::AsStored { media: format!("{media}; transfer-syntax={stored_ts}") };
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(as_stored(super::OCTET_STREAM));
    };
    for range in media_ranges(accept) {
        let ts = range.transfer_syntax.as_deref();
        let any_ts = matches!(ts, None | Some("*")) || ts == Some(stored_ts);
        match range.media.as_str() {
            "*/*" | "*" => return Ok(as_stored(super::OCTET_STREAM)),
            "application/octet-stream" => {
                if ts == Some("*") || ts == Some(stored_ts) || !encapsulated {
                    return Ok(as_stored(super::OCTET_STREAM));
                }
                if matches!(ts, None | Some(EXPLICIT_VR_LITTLE_ENDIAN)) {
                    return Ok(FrameForm::Native);
                }
            }
            media
                if encapsulated && (media.starts_with("image/") || media.starts_with("video/")) && any_ts =>
            {
                return Ok(as_stored(media));
            }
            _ => {}
        }
    }
    Err(WebError::NotAcceptable {
        reason: format!(
            "frames of this instance are stored in transfer syntax {stored_ts}; accept \
             multipart/related; type=\"application/octet-stream\"; transfer-syntax=* to get them as stored"
        ),
    })
}

/// Check that instances stored in `stored_ts` may be answered as stored for `accept` (none,
/// `*/*`, `application/dicom` without a transfer syntax, with `*` or with `stored_ts`).
pub fn instances(accept: Option<&str>, stored_ts: &str) -> Result<(), WebError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else { return Ok(()) };
    let ok = media_ranges(accept).iter().any(|r| {
        let dicom = matches!(r.media.as_str(), "*/*" | "*" | "application/*" | super::APPLICATION_DICOM);
        let any_ts = matches!(r.transfer_syntax.as_deref(), None | Some("*"));
        (dicom && any_ts) || r.transfer_syntax.as_deref() == Some(stored_ts)
    });
    if ok {
        return Ok(());
    }
    Err(WebError::NotAcceptable {
        reason: format!(
            "instances are sent as stored (transfer syntax {stored_ts}); this node does not transcode, accept \
             multipart/related; type=\"application/dicom\"; transfer-syntax=*"
        ),
    })
}

/// Check that a rendered frame may be answered as `image/png` for `accept` (none, `*/*`,
/// `image/*` or `image/png`).
pub fn rendered(accept: Option<&str>) -> Result<(), WebError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else { return Ok(()) };
    if media_ranges(accept).iter().any(|r| matches!(r.media.as_str(), "*/*" | "*" | "image/*" | "image/png"))
    {
        return Ok(());
    }
    Err(WebError::NotAcceptable { reason: "rendered frames are PNG images; accept image/png".into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const JPEG: &str = "1.2.840.10008.1.2.4.50";

    #[test]
    fn frames_are_sent_as_stored_or_decompressed_as_asked() {
        let star = "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*";
        let plain = "multipart/related; type=\"application/octet-stream\"";
        let stored = |ts: &str| FrameForm::AsStored {
            media: format!("application/octet-stream; transfer-syntax={ts}"),
        };
        assert_eq!(frames(None, JPEG, true).unwrap(), stored(JPEG));
        assert_eq!(frames(Some(star), JPEG, true).unwrap(), stored(JPEG));
        assert_eq!(frames(Some(plain), JPEG, true).unwrap(), FrameForm::Native);
        assert_eq!(
            frames(Some(plain), EXPLICIT_VR_LITTLE_ENDIAN, false).unwrap(),
            stored(EXPLICIT_VR_LITTLE_ENDIAN)
        );
        assert_eq!(frames(Some("multipart/related; type=\"*/*\""), JPEG, true).unwrap(), stored(JPEG));
        assert_eq!(
            frames(
                Some("multipart/related; type=\"image/jpeg\"; transfer-syntax=1.2.840.10008.1.2.4.50"),
                JPEG,
                true
            )
            .unwrap(),
            FrameForm::AsStored { media: format!("image/jpeg; transfer-syntax={JPEG}") }
        );
        let j2k = "multipart/related; type=\"image/jp2\"; transfer-syntax=1.2.840.10008.1.2.4.90";
        assert!(matches!(frames(Some(j2k), JPEG, true), Err(WebError::NotAcceptable { .. })));
        assert_eq!(frames(Some(&format!("{j2k}, {star}")), JPEG, true).unwrap(), stored(JPEG));
    }

    #[test]
    fn rendered_frames_are_png() {
        assert!(rendered(None).is_ok());
        assert!(rendered(Some("image/png")).is_ok());
        assert!(rendered(Some("image/jpeg, image/*;q=0.5")).is_ok());
        assert!(matches!(rendered(Some("image/jpeg")), Err(WebError::NotAcceptable { .. })));
    }

    #[test]
    fn instances_are_sent_as_stored_unless_another_syntax_is_demanded() {
        assert!(instances(None, JPEG).is_ok());
        assert!(instances(Some("multipart/related; type=\"application/dicom\""), JPEG).is_ok());
        assert!(
            instances(Some("multipart/related; type=\"application/dicom\"; transfer-syntax=*"), JPEG).is_ok()
        );
        let ele = "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.1";
        assert!(instances(Some(ele), EXPLICIT_VR_LITTLE_ENDIAN).is_ok());
        assert!(matches!(instances(Some(ele), JPEG), Err(WebError::NotAcceptable { .. })));
    }
}
