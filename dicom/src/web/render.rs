//! Rendered frames (PS3.18 10.4.1.1.3): one frame decoded with dicom-pixeldata (native, RLE,
//! JPEG baseline/extended/lossless), the modality LUT applied, then window/level to 8 bits and
//! encoded as a grayscale or RGB PNG. Only the header and the one frame are read from the file.

use super::frames::read_frame_fragments;
use crate::catalog::{read_header, CatalogRecord};
use crate::error::WebError;
use crate::pixel_location::PixelLocation;
use dicom_core::value::{PixelFragmentSequence, Value as DicomValue};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::{ConvertOptions, ModalityLutOption, PixelDecoder, VoiLutOption};
use std::path::Path;
use std::str::FromStr;

/// A VOI LUT function (PS3.3 C.11.2.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowFunction {
    /// LINEAR (the default).
    #[default]
    Linear,
    /// LINEAR_EXACT.
    LinearExact,
    /// SIGMOID.
    Sigmoid,
}

/// A window: center and width in output units of the modality LUT (e.g. Hounsfield units).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Window Center.
    pub center: f64,
    /// Window Width (at least 1).
    pub width: f64,
    /// VOI LUT function.
    pub function: WindowFunction,
}

impl Window {
    /// A CT preset by name: `brain` 40/80, `soft-tissue` 40/400, `lung` −600/1500, `bone` 300/1500.
    pub fn preset(name: &str) -> Option<Window> {
        let (center, width) = match name {
            "brain" => (40.0, 80.0),
            "soft-tissue" => (40.0, 400.0),
            "lung" => (-600.0, 1500.0),
            "bone" => (300.0, 1500.0),
            _ => return None,
        };
        Some(Window { center, width, function: WindowFunction::Linear })
    }

    /// Map one value to 0..=255.
    fn apply(&self, x: f64) -> u8 {
        let (c, w) = (self.center, self.width);
        let y = match self.function {
            WindowFunction::Linear => {
                let w1 = (w - 1.0).max(1.0);
                if x <= c - 0.5 - w1 / 2.0 {
                    0.0
                } else if x > c - 0.5 + w1 / 2.0 {
                    1.0
                } else {
                    (x - (c - 0.5)) / w1 + 0.5
                }
            }
            WindowFunction::LinearExact => (x - c) / w.max(f64::MIN_POSITIVE) + 0.5,
            WindowFunction::Sigmoid => 1.0 / (1.0 + (-4.0 * (x - c) / w.max(f64::MIN_POSITIVE)).exp()),
        };
        (y.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

impl FromStr for Window {
    type Err = WebError;

    /// `center,width[,linear|linear-exact|sigmoid]` (PS3.18 `window` parameter) or a preset name.
    fn from_str(s: &str) -> Result<Window, WebError> {
        if let Some(w) = Window::preset(s.trim()) {
            return Ok(w);
        }
        let bad = || {
            WebError::BadRequest {
            reason: format!(
                "window {s:?} is not usable; give center,width[,function] with width ≥ 1 and function linear, \
                 linear-exact or sigmoid (e.g. 40,400), or a preset: brain, soft-tissue, lung, bone"
            ),
        }
        };
        let mut parts = s.split(',').map(str::trim);
        let center: f64 = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let width: f64 = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let function = match parts.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("linear") => WindowFunction::Linear,
            Some("linear-exact") | Some("linear_exact") => WindowFunction::LinearExact,
            Some("sigmoid") => WindowFunction::Sigmoid,
            Some(_) => return Err(bad()),
        };
        if parts.next().is_some() || !center.is_finite() || !width.is_finite() || width < 1.0 {
            return Err(bad());
        }
        Ok(Window { center, width, function })
    }
}

/// Render frame `frame` (1-based) of the stored file at `path` as a PNG. Without `window`,
/// grayscale images use the file's first Window Center/Width, else the frame's min/max.
pub fn render_png(
    path: &Path,
    record: &CatalogRecord,
    frame: u32,
    window: Option<Window>,
) -> Result<Vec<u8>, WebError> {
    let fail = |e: &dyn std::fmt::Display| WebError::Render { reason: e.to_string() };
    let obj = single_frame_object(path, record, frame)?;
    let decoded = obj.decode_pixel_data().map_err(|e| fail(&e))?;
    let (width, height) = (decoded.columns(), decoded.rows());
    let samples = decoded.samples_per_pixel();
    let values: Vec<f64> = if samples == 1 {
        let options = ConvertOptions::new().with_voi_lut(VoiLutOption::Identity);
        decoded.to_vec_frame_with_options(0, &options).map_err(|e| fail(&e))?
    } else {
        let options = ConvertOptions::new().with_modality_lut(ModalityLutOption::None);
        decoded.to_vec_frame_with_options(0, &options).map_err(|e| fail(&e))?
    };
    let (pixels, color) = if samples == 1 {
        let window = window.or_else(|| file_window(&obj)).unwrap_or_else(|| min_max_window(&values));
        let mut gray: Vec<u8> = values.iter().map(|v| window.apply(*v)).collect();
        if decoded.photometric_interpretation().to_string() == "MONOCHROME1" {
            gray.iter_mut().for_each(|v| *v = 255 - *v);
        }
        (gray, png::ColorType::Grayscale)
    } else {
        let max = if decoded.bits_allocated() > 8 { 65535.0 } else { 255.0 };
        let window = window.unwrap_or(Window {
            center: max / 2.0,
            width: max + 1.0,
            function: WindowFunction::Linear,
        });
        (values.iter().map(|v| window.apply(*v)).collect(), png::ColorType::Rgb)
    };
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| fail(&e))?;
    writer.write_image_data(&pixels).map_err(|e| fail(&e))?;
    writer.finish().map_err(|e| fail(&e))?;
    Ok(out)
}

/// The header of the stored file with only frame `frame` as its pixel data (Number of Frames
/// 1), ready for dicom-pixeldata to decode without loading the other frames.
fn single_frame_object(
    path: &Path,
    record: &CatalogRecord,
    frame: u32,
) -> Result<DefaultDicomObject, WebError> {
    let mut obj = read_header(path)?;
    let pieces = read_frame_fragments(path, record, frame)?;
    let value: DicomValue<_, _> = match record.pixel_data {
        Some(PixelLocation::Native { .. }) => DicomValue::Primitive(PrimitiveValue::from(pieces.concat())),
        _ => PixelFragmentSequence::new(Vec::<u32>::new(), pieces).into(),
    };
    obj.put(DataElement::new(Tag(0x7FE0, 0x0010), VR::OB, value));
    obj.put(DataElement::new(Tag(0x0028, 0x0008), VR::IS, PrimitiveValue::from("1")));
    Ok(obj)
}

/// Frame `frame` (1-based) of the stored file at `path`, decoded to native little-endian
/// samples (what `application/octet-stream` with Explicit VR Little Endian means for frames).
pub fn native_frame(path: &Path, record: &CatalogRecord, frame: u32) -> Result<Vec<u8>, WebError> {
    let obj = single_frame_object(path, record, frame)?;
    let decoded = obj.decode_pixel_data().map_err(|e| WebError::NotAcceptable {
        reason: format!("its pixel data cannot be decompressed here ({e}); ask for transfer-syntax=*"),
    })?;
    let bytes = decoded.frame_data(0).map_err(|e| WebError::Render { reason: e.to_string() })?;
    Ok(bytes.to_vec())
}

/// The first Window Center/Width of the file, if both are present and usable.
fn file_window(obj: &DefaultDicomObject) -> Option<Window> {
    let first = |tag| -> Option<f64> {
        let text = obj.get(tag)?.to_str().ok()?;
        text.split('\\').next()?.trim().parse().ok()
    };
    let center = first(Tag(0x0028, 0x1050))?;
    let width = first(Tag(0x0028, 0x1051))?;
    (width >= 1.0).then_some(Window { center, width, function: WindowFunction::Linear })
}

/// A window spanning the frame's values.
fn min_max_window(values: &[f64]) -> Window {
    let (lo, hi) = values.iter().fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    if lo > hi {
        return Window { center: 0.0, width: 1.0, function: WindowFunction::Linear };
    }
    Window { center: (lo + hi) / 2.0, width: (hi - lo).max(1.0), function: WindowFunction::LinearExact }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_map() {
        let w: Window = "40,400".parse().unwrap();
        assert_eq!(w, Window { center: 40.0, width: 400.0, function: WindowFunction::Linear });
        assert_eq!("lung".parse::<Window>().unwrap().center, -600.0);
        assert_eq!("1,2,sigmoid".parse::<Window>().unwrap().function, WindowFunction::Sigmoid);
        assert!("40".parse::<Window>().is_err());
        assert!("40,0".parse::<Window>().is_err());
        assert!("40,400,cubic".parse::<Window>().is_err());
        assert_eq!(w.apply(-1000.0), 0);
        assert_eq!(w.apply(1000.0), 255);
        assert!((120..=135).contains(&w.apply(40.0)));
    }
}
