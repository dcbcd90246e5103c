//! Thumbnails for PNG, JPEG, GIF and WebP (spec: content repository,
//! "Thumbnails"). Called on the blocking pool; decoding is bounded by a
//! pixel budget checked from the header *before* any pixel is decoded, and
//! by the decoder's allocation limit, so a decompression bomb is refused.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};

/// A generated thumbnail.
#[derive(Debug)]
pub struct Thumb {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ThumbError {
    /// More pixels than the budget: refuse rather than decode.
    TooLarge,
    /// Not an image format we thumbnail.
    Unsupported,
    /// The file claims a format but does not decode.
    Decode(String),
}

/// Makes a `width`×`height` thumbnail (`crop`: exactly that size, cropped
/// from the middle; else scaled to fit inside it, keeping the aspect ratio).
/// `Ok(None)` means the original is no larger than asked: serve it as is
/// (the spec forbids upscaling).
pub fn make(
    data: &[u8],
    width: u32,
    height: u32,
    crop: bool,
    max_pixels: u64,
) -> Result<Option<Thumb>, ThumbError> {
    let reader = ImageReader::new(Cursor::new(data))
        .with_guessed_format()
        .map_err(|_| ThumbError::Unsupported)?;
    let format = reader.format().ok_or(ThumbError::Unsupported)?;
    if !matches!(
        format,
        ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP
    ) {
        return Err(ThumbError::Unsupported);
    }
    let (w, h) = reader.into_dimensions().map_err(|e| ThumbError::Decode(e.to_string()))?;
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(ThumbError::TooLarge);
    }
    if w <= width && h <= height {
        return Ok(None);
    }
    let mut reader = ImageReader::new(Cursor::new(data));
    reader.set_format(format);
    let mut limits = Limits::default();
    // Four bytes a pixel, plus slack for the decoder's own buffers.
    limits.max_alloc = Some(max_pixels.saturating_mul(4).saturating_add(16 << 20));
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => ThumbError::TooLarge,
        other => ThumbError::Decode(other.to_string()),
    })?;
    let out: DynamicImage = if crop {
        img.resize_to_fill(width.min(w), height.min(h), FilterType::Triangle)
    } else {
        img.resize(width, height, FilterType::Triangle)
    };
    let (content_type, fmt) = if format == ImageFormat::Jpeg {
        ("image/jpeg", ImageFormat::Jpeg)
    } else {
        ("image/png", ImageFormat::Png)
    };
    let out = if fmt == ImageFormat::Jpeg { DynamicImage::ImageRgb8(out.to_rgb8()) } else { out };
    let mut bytes = Vec::new();
    out.write_to(&mut Cursor::new(&mut bytes), fmt)
        .map_err(|e| ThumbError::Decode(e.to_string()))?;
    Ok(Some(Thumb { bytes, content_type, width: out.width(), height: out.height() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = DynamicImage::new_rgb8(w, h);
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png).expect("encode");
        out
    }

    #[test]
    fn scale_keeps_the_aspect_ratio_inside_the_box() {
        let t = make(&png(800, 400), 320, 240, false, 1 << 24).expect("ok").expect("thumb");
        assert_eq!((t.width, t.height), (320, 160));
        assert_eq!(t.content_type, "image/png");
    }

    #[test]
    fn crop_gives_the_exact_size() {
        let t = make(&png(800, 400), 96, 96, true, 1 << 24).expect("ok").expect("thumb");
        assert_eq!((t.width, t.height), (96, 96));
    }

    #[test]
    fn small_images_are_served_as_they_are() {
        assert!(make(&png(20, 20), 32, 32, true, 1 << 24).expect("ok").is_none());
    }

    #[test]
    fn a_header_claiming_too_many_pixels_is_refused_before_decoding() {
        assert_eq!(make(&png(300, 300), 32, 32, true, 10_000).err(), Some(ThumbError::TooLarge));
    }

    #[test]
    fn non_images_are_unsupported() {
        assert_eq!(
            make(b"hello world", 32, 32, true, 1 << 24).err(),
            Some(ThumbError::Unsupported)
        );
    }
}
