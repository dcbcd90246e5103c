//! The content repository (spec: modules/content_repo): uploads (plain and
//! asynchronous), downloads through memory maps with range support and
//! safe headers, thumbnails, and the upload limit.

use std::time::Duration;

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use serde_json::json;

use crate::account::now_ms;
use crate::api::{Reply, Request, bytes_reply, json, media_reply};
use crate::app::App;
use crate::error::{ErrorKind, MatrixError};
use crate::media::thumbnail::{self, ThumbError};
use crate::media::{IngestError, inline_safe, uploads, valid_media_id};
use crate::store::MediaRecord;

/// How long an ID from `POST /media/v1/create` stays reserved.
const RESERVATION: Duration = Duration::from_secs(24 * 3600);
/// How many unused reservations a user may hold.
const MAX_RESERVATIONS: usize = 64;

fn random_media_id() -> Result<String, MatrixError> {
    let mut b = [0u8; 18];
    getrandom::fill(&mut b).map_err(|e| MatrixError::internal("OS randomness", e))?;
    Ok(crate::room::pdu::encode_url_safe_base64(&b))
}

fn too_large(limit: u64) -> MatrixError {
    MatrixError::new(ErrorKind::TooLarge, format!("Uploads are limited to {limit} bytes"))
}

/// Streams the request body into the media store and returns the record.
async fn receive(app: &App, req: &Request, uploader: &str) -> Result<MediaRecord, MatrixError> {
    let limit = app.config.max_upload_bytes;
    let quota = app.config.media_quota_bytes;
    let declared = req
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let used = app.store.read()?.media_usage(uploader)?;
    if quota > 0 && used + declared.unwrap_or(0) > quota {
        return Err(MatrixError::forbidden("Your media storage quota is used up"));
    }
    let body =
        req.take_body_stream().ok_or_else(|| MatrixError::internal("upload", "no body stream"))?;
    let ingested =
        app.media.ingest(limit, &mut crate::api::BodyStream(body)).await.map_err(|e| match e {
            IngestError::TooLarge => too_large(limit),
            IngestError::Io(e) => MatrixError::internal("storing an upload", e),
        })?;
    if quota > 0 && used + ingested.size > quota {
        return Err(MatrixError::forbidden("Your media storage quota is used up"));
    }
    let content_type =
        req.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    Ok(MediaRecord {
        hash: Some(ingested.hash),
        content_type,
        file_name: req.query("filename").map(str::to_owned),
        size: ingested.size,
        uploader: uploader.to_owned(),
        created_ms: now_ms(),
        expires_ms: None,
        last_access_ms: None,
    })
}

/// `POST /_matrix/media/v3/upload`
pub async fn upload(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let uploader = req.caller()?.user_id.to_string();
    let record = receive(app, req, &uploader).await?;
    let media_id = random_media_id()?;
    let server = app.config.server_name.clone();
    let (s, m) = (server.clone(), media_id.clone());
    app.store.write(move |ctx| uploads::record_upload(ctx, &s, &m, &record)).await?;
    app.media_uploaded.notify_waiters();
    Ok(json(&json!({ "content_uri": format!("mxc://{server}/{media_id}") })))
}

/// `POST /_matrix/media/v1/create`: reserves an ID for a later upload.
pub async fn create(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let uploader = req.caller()?.user_id.to_string();
    let media_id = random_media_id()?;
    let server = app.config.server_name.clone();
    let expires = now_ms() + RESERVATION.as_millis() as u64;
    let pending = app
        .store
        .read()?
        .all_media()?
        .into_iter()
        .filter(|(_, _, r)| {
            r.uploader == uploader && r.hash.is_none() && r.expires_ms.is_some_and(|e| e > now_ms())
        })
        .count();
    if pending >= MAX_RESERVATIONS {
        return Err(MatrixError::limit_exceeded(60_000));
    }
    let record = MediaRecord {
        uploader,
        created_ms: now_ms(),
        expires_ms: Some(expires),
        ..MediaRecord::default()
    };
    let (s, m) = (server.clone(), media_id.clone());
    app.store
        .write(move |ctx| {
            ctx.put_media(&s, &m, &record)?;
            Ok(Ok::<_, MatrixError>(()))
        })
        .await?;
    Ok(json(
        &json!({ "content_uri": format!("mxc://{server}/{media_id}"), "unused_expires_at": expires }),
    ))
}

/// `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}`
pub async fn upload_to(
    app: &App,
    req: &Request,
    server: &str,
    media_id: &str,
) -> Result<Reply, MatrixError> {
    let uploader = req.caller()?.user_id.to_string();
    if server != app.config.server_name || !valid_media_id(media_id) {
        return Err(MatrixError::not_found("No such media ID"));
    }
    let reserved = app
        .store
        .read()?
        .media(server, media_id)?
        .ok_or_else(|| MatrixError::not_found("No such media ID"))?;
    if reserved.uploader != uploader {
        return Err(MatrixError::forbidden("This media ID was reserved by someone else"));
    }
    if reserved.hash.is_some() {
        return Err(MatrixError::new(
            ErrorKind::CannotOverwriteMedia,
            "Media has already been uploaded to this ID",
        ));
    }
    if reserved.expires_ms.is_some_and(|e| e <= now_ms()) {
        return Err(MatrixError::not_found("The media ID has expired"));
    }
    let record = receive(app, req, &uploader).await?;
    let (s, m) = (server.to_owned(), media_id.to_owned());
    app.store.write(move |ctx| uploads::complete_upload(ctx, &s, &m, &record)).await?;
    app.media_uploaded.notify_waiters();
    Ok(json(&json!({})))
}

/// Finds uploaded media, waiting up to `timeout_ms` (default 20 s) for an
/// asynchronous upload to arrive (spec: `M_NOT_YET_UPLOADED` after that).
async fn find(
    app: &App,
    req: &Request,
    server: &str,
    media_id: &str,
) -> Result<(MediaRecord, String), MatrixError> {
    if !valid_media_id(media_id) || crate::ids::is_valid_server_name(server).then_some(()).is_none()
    {
        return Err(MatrixError::not_found("Media not found"));
    }
    if server != app.config.server_name {
        // No federation: remote media cannot be fetched.
        return Err(MatrixError::not_found("Media not found (this server does not federate)"));
    }
    let timeout_ms: u64 = match req.query("timeout_ms") {
        Some(t) => {
            t.parse().map_err(|_| MatrixError::invalid_param("timeout_ms must be an integer"))?
        }
        None => 20_000,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms.min(120_000));
    loop {
        let notified = app.media_uploaded.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let record = app
            .store
            .read()?
            .media(server, media_id)?
            .ok_or_else(|| MatrixError::not_found("Media not found"))?;
        if let Some(hash) = record.hash.clone() {
            return Ok((record, hash));
        }
        if record.expires_ms.is_some_and(|e| e <= now_ms()) {
            return Err(MatrixError::not_found("Media not found"));
        }
        if tokio::time::Instant::now() >= deadline || app.is_shutting_down() {
            return Err(MatrixError::new(
                ErrorKind::NotYetUploaded,
                "The media has not been uploaded yet",
            ));
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// RFC 6266 `Content-Disposition` with a UTF-8 file name.
fn disposition(inline: bool, file_name: Option<&str>) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    match file_name.filter(|f| !f.is_empty()) {
        Some(name) => {
            let ascii: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }
                })
                .collect();
            let encoded =
                percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
            format!("{kind}; filename=\"{ascii}\"; filename*=utf-8''{encoded}")
        }
        None => kind.to_owned(),
    }
}

/// Parses a single `bytes=a-b` range against `len`.
fn parse_range(h: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = h.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // multiple ranges: serve the whole body
    }
    let (a, b) = spec.split_once('-')?;
    let range = match (a.trim(), b.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            if n == 0 || len == 0 {
                return Some(Err(()));
            }
            (len.saturating_sub(n), len - 1)
        }
        (start, "") => (start.parse().ok()?, len.checked_sub(1)?),
        (start, end) => (start.parse().ok()?, end.parse::<u64>().ok()?.min(len.saturating_sub(1))),
    };
    if range.0 > range.1 || range.0 >= len {
        return Some(Err(()));
    }
    Some(Ok(range))
}

fn serve(
    app: &App,
    req: &Request,
    record: &MediaRecord,
    hash: &str,
    name_override: Option<&str>,
) -> Result<Reply, MatrixError> {
    let data = app.media.map_file(hash).map_err(|e| MatrixError::internal("opening media", e))?;
    let content_type =
        record.content_type.clone().unwrap_or_else(|| "application/octet-stream".into());
    let name = name_override.or(record.file_name.as_deref());
    let len = data.len() as u64;
    let range = req
        .headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| parse_range(h, len));
    let (status, body, content_range) = match range {
        Some(Ok((a, b))) => {
            (206, data.body(a as usize..b as usize + 1), Some(format!("bytes {a}-{b}/{len}")))
        }
        Some(Err(())) => {
            let mut r = bytes_reply(416, "text/plain", Bytes::new());
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
        None => (200, data.body(0..data.len()), None),
    };
    let mut r = media_reply(status, body);
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&disposition(inline_safe(&content_type), name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(cr) = content_range.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::CONTENT_RANGE, cr);
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';"),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert("Cross-Origin-Resource-Policy", HeaderValue::from_static("cross-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400, immutable"));
    Ok(r)
}

/// `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]`
/// and the legacy unauthenticated `/_matrix/media/v3/download/…`.
pub async fn download(
    app: &App,
    req: &Request,
    server: &str,
    media_id: &str,
    file_name: Option<&str>,
    legacy: bool,
) -> Result<Reply, MatrixError> {
    if legacy && !app.config.legacy_media {
        return Err(MatrixError::not_found(
            "Unauthenticated media is disabled; use /_matrix/client/v1/media",
        ));
    }
    let (record, hash) = find(app, req, server, media_id).await?;
    let day = 24 * 3600 * 1000;
    if record.last_access_ms.is_none_or(|t| t + day < now_ms()) {
        // At most one write a day per file: `hearth media purge` keeps
        // what people still open.
        let (s, m, mut rec) = (server.to_owned(), media_id.to_owned(), record.clone());
        rec.last_access_ms = Some(now_ms());
        app.store
            .write(move |ctx| {
                ctx.put_media(&s, &m, &rec)?;
                Ok(Ok::<_, MatrixError>(()))
            })
            .await?;
    }
    serve(app, req, &record, &hash, file_name)
}

/// `GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}` (and legacy).
pub async fn thumbnail(
    app: &App,
    req: &Request,
    server: &str,
    media_id: &str,
    legacy: bool,
) -> Result<Reply, MatrixError> {
    if legacy && !app.config.legacy_media {
        return Err(MatrixError::not_found(
            "Unauthenticated media is disabled; use /_matrix/client/v1/media",
        ));
    }
    let dim = |k: &str| -> Result<u32, MatrixError> {
        let v =
            req.query(k).ok_or_else(|| MatrixError::missing_param(format!("{k} is required")))?;
        let n: u32 = v
            .parse()
            .map_err(|_| MatrixError::invalid_param(format!("{k} must be a positive integer")))?;
        if n == 0 || n > 4096 {
            return Err(MatrixError::invalid_param(format!("{k} must be between 1 and 4096")));
        }
        Ok(n)
    };
    let (width, height) = (dim("width")?, dim("height")?);
    let method = req.query("method").unwrap_or("scale");
    if method != "scale" && method != "crop" {
        return Err(MatrixError::invalid_param("method must be crop or scale"));
    }
    let animated = req.query_bool("animated", false)?;
    // Animated and still thumbnails of one size are cached apart.
    let cache_key = if animated { format!("{method}+animated") } else { method.to_owned() };
    let (record, hash) = find(app, req, server, media_id).await?;
    if let Some(thumb_hash) =
        app.store.read()?.thumbnail(server, media_id, width, height, &cache_key)?
    {
        if thumb_hash == hash {
            return serve(app, req, &record, &hash, None);
        }
        let head = app.media.map(&thumb_hash).map_err(|e| MatrixError::internal("thumbnail", e))?;
        let content_type = thumbnail::sniff(&head[..head.len().min(16)]).to_owned();
        let rec = MediaRecord { content_type: Some(content_type), file_name: None, ..record };
        return serve(app, req, &rec, &thumb_hash, None);
    }
    let data = app.media.map(&hash).map_err(|e| MatrixError::internal("opening media", e))?;
    let max_pixels = app.config.max_thumbnail_pixels;
    let crop = method == "crop";
    let _slot = app
        .hash_slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| MatrixError::internal("thumbnail slots", e))?;
    let made = tokio::task::spawn_blocking(move || {
        thumbnail::make(&data, width, height, crop, animated, max_pixels)
    })
    .await
    .map_err(|e| MatrixError::internal("thumbnail task", e))?;
    let (serve_hash, content_type) = match made {
        Ok(Some(t)) => {
            let stored = app
                .media
                .store_bytes(t.bytes)
                .await
                .map_err(|e| MatrixError::internal("storing a thumbnail", e))?;
            (stored.hash, t.content_type.to_owned())
        }
        // Smaller than asked: the original is the thumbnail.
        Ok(None) => (hash.clone(), record.content_type.clone().unwrap_or_default()),
        Err(ThumbError::TooLarge) => {
            return Err(MatrixError::new(
                ErrorKind::TooLarge,
                "The image is too large to thumbnail",
            ));
        }
        Err(ThumbError::Unsupported) => {
            return Err(MatrixError::not_found("No thumbnail can be made for this media type"));
        }
        Err(ThumbError::Decode(e)) => {
            tracing::info!("thumbnail of mxc://{server}/{media_id} failed: {e}");
            return Err(MatrixError::not_found("The image could not be decoded"));
        }
    };
    let (s, m, mm, th) = (server.to_owned(), media_id.to_owned(), cache_key, serve_hash.clone());
    app.store
        .write(move |ctx| {
            ctx.put_thumbnail(&s, &m, width, height, &mm, &th)?;
            Ok(Ok::<_, MatrixError>(()))
        })
        .await?;
    let rec = MediaRecord { content_type: Some(content_type), file_name: None, ..record };
    serve(app, req, &rec, &serve_hash, None)
}

/// `GET /_matrix/client/v1/media/config` and `/_matrix/media/v3/config`
pub fn config(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    req.caller()?;
    Ok(json(&json!({ "m.upload.size": app.config.max_upload_bytes })))
}
