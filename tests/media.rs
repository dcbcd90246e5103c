//! Content repository: uploads, dedup, limits, async uploads, downloads
//! with ranges and safe headers, thumbnails, the bomb guard.

use std::io::Cursor;

use serde_json::json;

use crate::support::{Client, TestServer};

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::DynamicImage::new_rgb8(w, h);
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).expect("encode");
    out
}

async fn upload(c: &Client, body: Vec<u8>, content_type: &str, name: &str) -> reqwest::Response {
    c.http
        .post(format!("{}/_matrix/media/v3/upload?filename={name}", c.base))
        .bearer_auth(c.token.as_deref().unwrap_or(""))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("upload")
}

async fn mxc(c: &Client, body: Vec<u8>, content_type: &str, name: &str) -> String {
    let r = upload(c, body, content_type, name).await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.expect("json");
    v["content_uri"].as_str().expect("content_uri").to_owned()
}

fn media_path(uri: &str) -> String {
    uri.strip_prefix("mxc://").expect("mxc").to_owned()
}

fn files_in(dir: &std::path::Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| {
            if e.path().is_dir() && e.file_name() != "tmp" {
                files_in(&e.path())
            } else if e.path().is_file() {
                1
            } else {
                0
            }
        })
        .sum()
}

#[tokio::test]
async fn upload_and_download_round_trip_with_safe_headers() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let uri = mxc(&alice, b"hello, media".to_vec(), "text/plain", "note.txt").await;
    let r = alice
        .http
        .get(format!("{}/_matrix/client/v1/media/download/{}", s.base, media_path(&uri)))
        .bearer_auth(alice.token.as_deref().expect("t"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "text/plain");
    assert!(h["content-disposition"].to_str().expect("cd").starts_with("inline"), "{h:?}");
    assert!(h["content-disposition"].to_str().expect("cd").contains("note.txt"));
    assert!(h["content-security-policy"].to_str().expect("csp").contains("sandbox"));
    assert_eq!(r.bytes().await.expect("body").as_ref(), b"hello, media");
    // HTML is never inline.
    let html = mxc(&alice, b"<script>alert(1)</script>".to_vec(), "text/html", "x.html").await;
    let r = s
        .client()
        .http
        .get(format!("{}/_matrix/media/v3/download/{}", s.base, media_path(&html)))
        .send()
        .await
        .expect("get");
    assert!(r.headers()["content-disposition"].to_str().expect("cd").starts_with("attachment"));
    // Authenticated endpoints need a token; unknown IDs are 404.
    s.client()
        .get(&format!("/_matrix/client/v1/media/download/{}", media_path(&uri)))
        .await
        .expect_err(401, "M_MISSING_TOKEN");
    alice
        .get("/_matrix/client/v1/media/download/localhost/nosuchmedia")
        .await
        .expect_err(404, "M_NOT_FOUND");
    alice
        .get("/_matrix/client/v1/media/download/localhost/..%2f..%2fetc")
        .await
        .expect_err(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn identical_uploads_are_stored_once() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let a = mxc(&alice, vec![7u8; 5000], "application/octet-stream", "a.bin").await;
    let b = mxc(&alice, vec![7u8; 5000], "application/octet-stream", "b.bin").await;
    assert_ne!(a, b, "two media IDs");
    assert_eq!(files_in(&s.dir.join("media")), 1, "one file on disk");
}

#[tokio::test]
async fn range_requests_serve_parts() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let uri = mxc(&alice, (0u8..100).collect(), "audio/mpeg", "song.mp3").await;
    let url = format!("{}/_matrix/client/v1/media/download/{}", s.base, media_path(&uri));
    let get = |range: &'static str| {
        alice
            .http
            .get(&url)
            .bearer_auth(alice.token.as_deref().expect("t"))
            .header("range", range)
            .send()
    };
    let r = get("bytes=10-19").await.expect("get");
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 10-19/100");
    assert_eq!(r.bytes().await.expect("b").as_ref(), &(10u8..20).collect::<Vec<_>>()[..]);
    let r = get("bytes=-5").await.expect("get");
    assert_eq!(r.bytes().await.expect("b").as_ref(), &[95, 96, 97, 98, 99]);
    assert_eq!(get("bytes=500-600").await.expect("get").status(), 416);
}

#[tokio::test]
async fn the_upload_limit_and_quota_are_enforced() {
    let s = TestServer::start_with(|c| {
        c.max_upload_bytes = 10_000;
        c.media_quota_bytes = 15_000;
    });
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r = upload(&alice, vec![1u8; 20_000], "application/octet-stream", "big").await;
    assert_eq!(r.status(), 413);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["errcode"], "M_TOO_LARGE");
    let cfg = alice.get("/_matrix/client/v1/media/config").await.ok();
    assert_eq!(cfg["m.upload.size"], 10_000);
    mxc(&alice, vec![1u8; 9_000], "application/octet-stream", "one").await;
    let r = upload(&alice, vec![2u8; 9_000], "application/octet-stream", "two").await;
    assert_eq!(r.status(), 403, "over the quota");
    assert_eq!(files_in(&s.dir.join("media/tmp")), 0, "refused uploads leave nothing behind");
}

#[tokio::test]
async fn asynchronous_upload_reserves_then_fills_an_id_once() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let created = alice.post("/_matrix/media/v1/create", json!({})).await.ok();
    let uri = created["content_uri"].as_str().expect("uri").to_owned();
    assert!(created["unused_expires_at"].as_u64().is_some());
    let path = media_path(&uri);
    // Not there yet: a short wait ends with M_NOT_YET_UPLOADED.
    alice
        .get(&format!("/_matrix/client/v1/media/download/{path}?timeout_ms=50"))
        .await
        .expect_err(504, "M_NOT_YET_UPLOADED");
    let put = |c: &Client, body: &'static [u8]| {
        c.http
            .put(format!("{}/_matrix/media/v3/upload/{path}", c.base))
            .bearer_auth(c.token.as_deref().unwrap_or(""))
            .header("content-type", "text/plain")
            .body(body)
            .send()
    };
    assert_eq!(put(&bob, b"not yours").await.expect("put").status(), 403);
    assert_eq!(put(&alice, b"filled later").await.expect("put").status(), 200);
    let again = put(&alice, b"twice").await.expect("put");
    assert_eq!(again.status(), 409);
    let v: serde_json::Value = again.json().await.expect("json");
    assert_eq!(v["errcode"], "M_CANNOT_OVERWRITE_MEDIA");
    let r = alice
        .http
        .get(format!("{}/_matrix/client/v1/media/download/{path}", s.base))
        .bearer_auth(alice.token.as_deref().expect("t"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.bytes().await.expect("b").as_ref(), b"filled later");
}

#[tokio::test]
async fn thumbnails_have_the_expected_sizes_and_bombs_are_refused() {
    let s = TestServer::start_with(|c| c.max_thumbnail_pixels = 3_000_000);
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let uri = mxc(&alice, png(800, 400), "image/png", "pic.png").await;
    let path = media_path(&uri);
    let thumb = |q: String| {
        alice
            .http
            .get(format!("{}/_matrix/client/v1/media/thumbnail/{path}?{q}", s.base))
            .bearer_auth(alice.token.as_deref().expect("t"))
            .send()
    };
    for (q, want) in [
        ("width=320&height=240&method=scale", (320, 160)),
        ("width=96&height=96&method=crop", (96, 96)),
    ] {
        let r = thumb(q.to_owned()).await.expect("get");
        assert_eq!(r.status(), 200, "{q}");
        let bytes = r.bytes().await.expect("b");
        let img = image::load_from_memory(&bytes).expect("decodes");
        assert_eq!((img.width(), img.height()), want, "{q}");
    }
    // Asking again serves the cached thumbnail.
    let again = thumb("width=96&height=96&method=crop".to_owned()).await.expect("get");
    assert_eq!(image::load_from_memory(&again.bytes().await.expect("b")).expect("img").width(), 96);
    // Smaller than asked: the original, never upscaled.
    let r = thumb("width=1600&height=1600&method=scale".to_owned()).await.expect("get");
    assert_eq!(image::load_from_memory(&r.bytes().await.expect("b")).expect("img").width(), 800);
    // A 4000x4000 image exceeds the 3-megapixel budget.
    let bomb = mxc(&alice, png(4000, 4000), "image/png", "bomb.png").await;
    let r = alice
        .http
        .get(format!(
            "{}/_matrix/client/v1/media/thumbnail/{}?width=32&height=32",
            s.base,
            media_path(&bomb)
        ))
        .bearer_auth(alice.token.as_deref().expect("t"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 413);
    let r = thumb("width=0&height=10".to_owned()).await.expect("get");
    assert_eq!(r.status(), 400);
}

/// An animated GIF of `frames` frames.
fn gif(w: u32, h: u32, frames: u8) -> Vec<u8> {
    use image::AnimationDecoder as _;
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        enc.set_repeat(image::codecs::gif::Repeat::Infinite).expect("repeat");
        for i in 0..frames {
            let img = image::RgbaImage::from_pixel(w, h, image::Rgba([i * 60, 90, 0, 255]));
            enc.encode_frame(image::Frame::new(img)).expect("frame");
        }
    }
    let n = image::codecs::gif::GifDecoder::new(Cursor::new(&out)).expect("gif").into_frames();
    assert_eq!(n.count(), usize::from(frames));
    out
}

#[tokio::test]
async fn animated_thumbnails_are_served_only_when_asked_for() {
    use image::AnimationDecoder as _;
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let uri = mxc(&alice, gif(300, 150, 4), "image/gif", "dance.gif").await;
    let path = media_path(&uri);
    let thumb = |q: &str| {
        alice
            .http
            .get(format!("{}/_matrix/client/v1/media/thumbnail/{path}?{q}", s.base))
            .bearer_auth(alice.token.as_deref().expect("t"))
            .send()
    };
    for round in 0..2 {
        // The second round is answered from the cache, the same way.
        let r = thumb("width=100&height=100&method=scale&animated=true").await.expect("get");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "image/gif", "round {round}");
        let bytes = r.bytes().await.expect("b");
        let frames = image::codecs::gif::GifDecoder::new(Cursor::new(bytes.as_ref()))
            .expect("gif")
            .into_frames()
            .collect_frames()
            .expect("frames");
        assert_eq!(frames.len(), 4);
        assert_eq!(frames[0].buffer().dimensions(), (100, 50));
        let r = thumb("width=100&height=100&method=scale&animated=false").await.expect("get");
        assert_eq!(r.headers()["content-type"], "image/png", "round {round}");
        let img = image::load_from_memory(&r.bytes().await.expect("b")).expect("png");
        assert_eq!((img.width(), img.height()), (100, 50));
    }
    // Without `animated`, a still, even when the GIF is smaller than asked.
    let r = thumb("width=800&height=800").await.expect("get");
    assert_eq!(r.headers()["content-type"], "image/png");
    let r = thumb("width=100&height=100&animated=maybe").await.expect("get");
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn legacy_downloads_can_be_switched_off() {
    let s = TestServer::start_with(|c| c.legacy_media = false);
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let uri = mxc(&alice, b"x".to_vec(), "text/plain", "x").await;
    s.client()
        .get(&format!("/_matrix/media/v3/download/{}", media_path(&uri)))
        .await
        .expect_err(404, "M_NOT_FOUND");
}
