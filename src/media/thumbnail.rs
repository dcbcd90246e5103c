//! Thumbnails for PNG, JPEG, GIF and WebP (spec: content repository,
//! "Thumbnails"). Called on the blocking pool; decoding is bounded by a
//! pixel budget checked from the header *before* any pixel is decoded, and
//! by the decoder's allocation limit, so a decompression bomb is refused.

use std::io::Cursor;

use image::codecs::gif::{GifDecoder, GifEncoder, Repeat};
use image::codecs::png::PngDecoder;
use image::codecs::webp::WebPDecoder;
use image::imageops::FilterType;
use image::{AnimationDecoder, DynamicImage, Frame, ImageFormat, ImageReader, Limits};

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
/// `Ok(None)` means the original is no larger than asked and may be served
/// as is (the spec forbids upscaling).
///
/// `animated` (spec: the `animated` query parameter): an animated GIF,
/// WebP or APNG gets an animated GIF thumbnail when asked for and within
/// the pixel budget (frames × width × height), else a still of its first
/// frame. A still is never answered with an animated original.
pub fn make(
    data: &[u8],
    width: u32,
    height: u32,
    crop: bool,
    animated: bool,
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
    let moving = is_animated(data, format);
    let small = w <= width && h <= height;
    if small && (animated || !moving) {
        return Ok(None);
    }
    if animated && moving {
        let (tw, th) = target(w, h, width, height, crop);
        if let Some(t) = animated_gif(data, format, (w, h), (tw, th), max_pixels)? {
            return Ok(Some(t));
        }
    }
    let mut reader = ImageReader::new(Cursor::new(data));
    reader.set_format(format);
    reader.limits(decode_limits(max_pixels));
    let img = reader.decode().map_err(decode_error)?;
    let out: DynamicImage = if small {
        // A still of a small animation: its first frame, as it is.
        img
    } else if crop {
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

/// The content type of a stored thumbnail, from its first bytes.
pub fn sniff(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"GIF8") {
        "image/gif"
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "image/webp"
    } else {
        "image/png"
    }
}

/// The most frames an animated thumbnail keeps.
const MAX_FRAMES: usize = 500;

fn decode_limits(max_pixels: u64) -> Limits {
    let mut limits = Limits::default();
    // Four bytes a pixel, plus slack for the decoder's own buffers.
    limits.max_alloc = Some(max_pixels.saturating_mul(4).saturating_add(16 << 20));
    limits
}

fn decode_error(e: image::ImageError) -> ThumbError {
    match e {
        image::ImageError::Limits(_) => ThumbError::TooLarge,
        other => ThumbError::Decode(other.to_string()),
    }
}

/// The size a thumbnail of a `w`×`h` image gets.
fn target(w: u32, h: u32, width: u32, height: u32, crop: bool) -> (u32, u32) {
    if crop {
        return (width.min(w), height.min(h));
    }
    if w <= width && h <= height {
        return (w, h);
    }
    // Fit inside the box, keeping the aspect ratio (as `resize` does).
    let ratio = f64::min(f64::from(width) / f64::from(w), f64::from(height) / f64::from(h));
    let fit = |x: u32| ((f64::from(x) * ratio).round() as u32).max(1);
    (fit(w), fit(h))
}

/// The frames of an animated image (`None` for a still).
fn frames(data: &[u8], format: ImageFormat) -> Option<image::Frames<'_>> {
    let frames = match format {
        ImageFormat::Gif => GifDecoder::new(Cursor::new(data)).ok()?.into_frames(),
        ImageFormat::WebP => {
            let d = WebPDecoder::new(Cursor::new(data)).ok()?;
            if !d.has_animation() {
                return None;
            }
            d.into_frames()
        }
        ImageFormat::Png => {
            let d = PngDecoder::new(Cursor::new(data)).ok()?;
            if !d.is_apng().ok()? {
                return None;
            }
            d.apng().ok()?.into_frames()
        }
        _ => return None,
    };
    Some(frames)
}

/// Whether the image has more than one frame.
fn is_animated(data: &[u8], format: ImageFormat) -> bool {
    frames(data, format).is_some_and(|f| f.take(2).filter(Result::is_ok).count() == 2)
}

/// Resizes every frame into an animated GIF; `None` when the animation is
/// over the pixel budget (the caller then makes a still).
fn animated_gif(
    data: &[u8],
    format: ImageFormat,
    (w, h): (u32, u32),
    (tw, th): (u32, u32),
    max_pixels: u64,
) -> Result<Option<Thumb>, ThumbError> {
    let Some(frames) = frames(data, format) else { return Ok(None) };
    let per_frame = u64::from(w) * u64::from(h);
    let mut out = Vec::new();
    for (i, frame) in frames.enumerate() {
        if i >= MAX_FRAMES || per_frame.saturating_mul(i as u64 + 1) > max_pixels {
            return Ok(None);
        }
        let frame = frame.map_err(decode_error)?;
        let delay = frame.delay();
        let img = DynamicImage::ImageRgba8(frame.into_buffer());
        let small = img.resize_to_fill(tw, th, FilterType::Triangle).to_rgba8();
        out.push(Frame::from_parts(small, 0, 0, delay));
    }
    let mut bytes = Vec::new();
    {
        let mut enc = GifEncoder::new_with_speed(&mut bytes, 10);
        enc.set_repeat(Repeat::Infinite).map_err(|e| ThumbError::Decode(e.to_string()))?;
        enc.encode_frames(out).map_err(|e| ThumbError::Decode(e.to_string()))?;
    }
    Ok(Some(Thumb { bytes, content_type: "image/gif", width: tw, height: th }))
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
        let t = make(&png(800, 400), 320, 240, false, false, 1 << 24).expect("ok").expect("thumb");
        assert_eq!((t.width, t.height), (320, 160));
        assert_eq!(t.content_type, "image/png");
    }

    #[test]
    fn crop_gives_the_exact_size() {
        let t = make(&png(800, 400), 96, 96, true, false, 1 << 24).expect("ok").expect("thumb");
        assert_eq!((t.width, t.height), (96, 96));
    }

    #[test]
    fn small_images_are_served_as_they_are() {
        assert!(make(&png(20, 20), 32, 32, true, false, 1 << 24).expect("ok").is_none());
    }

    #[test]
    fn a_header_claiming_too_many_pixels_is_refused_before_decoding() {
        assert_eq!(
            make(&png(300, 300), 32, 32, true, false, 10_000).err(),
            Some(ThumbError::TooLarge)
        );
    }

    #[test]
    fn non_images_are_unsupported() {
        assert_eq!(
            make(b"hello world", 32, 32, true, false, 1 << 24).err(),
            Some(ThumbError::Unsupported)
        );
    }

    fn gif(w: u32, h: u32, frames: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        {
            let mut enc = GifEncoder::new(&mut bytes);
            enc.set_repeat(Repeat::Infinite).expect("repeat");
            for i in 0..frames {
                let shade = u8::try_from(i * 40 % 256).expect("shade");
                let img = image::RgbaImage::from_pixel(w, h, image::Rgba([shade, 0, 0, 255]));
                enc.encode_frame(Frame::new(img)).expect("frame");
            }
        }
        bytes
    }

    fn frame_count(gif: &[u8]) -> usize {
        GifDecoder::new(Cursor::new(gif)).expect("gif").into_frames().count()
    }

    #[test]
    fn animations_stay_animated_only_when_asked() {
        let src = gif(200, 100, 3);
        let t = make(&src, 50, 50, false, true, 1 << 24).expect("ok").expect("thumb");
        assert_eq!((t.content_type, t.width, t.height), ("image/gif", 50, 25));
        assert_eq!(frame_count(&t.bytes), 3);
        assert_eq!(sniff(&t.bytes), "image/gif");
        let still = make(&src, 50, 50, false, false, 1 << 24).expect("ok").expect("thumb");
        assert_eq!((still.content_type, still.width), ("image/png", 50));
        // A small animation is served as is only when animation is wanted.
        let small = gif(20, 20, 2);
        assert!(make(&small, 64, 64, false, true, 1 << 24).expect("ok").is_none());
        let still = make(&small, 64, 64, false, false, 1 << 24).expect("ok").expect("thumb");
        assert_eq!((still.content_type, still.width, still.height), ("image/png", 20, 20));
        // Over the budget in frames: a still instead.
        let t = make(&src, 50, 50, true, true, 200 * 100 * 2).expect("ok").expect("thumb");
        assert_eq!((t.content_type, t.width, t.height), ("image/png", 50, 50));
        // A one-frame GIF is a still.
        assert!(make(&gif(20, 20, 1), 64, 64, false, false, 1 << 24).expect("ok").is_none());
    }
}
