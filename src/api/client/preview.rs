//! `GET /_matrix/client/v1/media/preview_url` (and the legacy path): link
//! previews. The page is fetched with a guarded client (loopback, private
//! and other internal addresses are refused unless allow-listed, by address
//! and port; the server's own listeners always; checked for every address
//! a name resolves to and on every redirect), read for
//! OpenGraph and `<title>`, its image stored as media of our own, and the
//! result cached in memory (`media::preview::PreviewCache`).

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::{ErrorKind, MatrixError};
use crate::media::preview::{PreviewPolicy, parse_html};
use crate::net::client::Client;
use crate::store::MediaRecord;

/// Largest page and image fetched.
const MAX_PAGE: usize = 2 << 20;
const MAX_IMAGE: usize = 8 << 20;

fn guarded_client(app: &App, max_body: usize) -> Client {
    let policy = PreviewPolicy::new(&app.config.url_preview_allow, app.own_addrs.borrow().clone());
    Client::new()
        .timeout(Duration::from_secs(10))
        .max_body_bytes(max_body)
        .max_redirects(5)
        .allow_addr(move |addr| policy.allows(addr))
}

fn content_type(resp: &crate::net::client::Response) -> String {
    resp.headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Stores fetched image bytes as local media; returns `og:image*` fields.
async fn store_image(
    app: &App,
    bytes: bytes::Bytes,
    ctype: &str,
    uploader: &str,
) -> Result<Map<String, Value>, MatrixError> {
    let size = bytes.len() as u64;
    let dims = image::ImageReader::new(std::io::Cursor::new(&bytes[..]))
        .with_guessed_format()
        .ok()
        .and_then(|r| r.into_dimensions().ok());
    let stored = app
        .media
        .store_bytes(bytes.to_vec())
        .await
        .map_err(|e| MatrixError::internal("storing a preview image", e))?;
    let mut b = [0u8; 18];
    getrandom::fill(&mut b).map_err(|e| MatrixError::internal("OS randomness", e))?;
    let media_id = crate::room::pdu::encode_url_safe_base64(&b);
    let record = MediaRecord {
        hash: Some(stored.hash),
        content_type: Some(ctype.to_owned()),
        file_name: None,
        size,
        uploader: uploader.to_owned(),
        created_ms: crate::account::now_ms(),
        expires_ms: None,
        last_access_ms: None,
    };
    let (server, id) = (app.config.server_name.clone(), media_id.clone());
    app.store
        .write(move |ctx| {
            ctx.put_media(&server, &id, &record)?;
            Ok(Ok::<_, MatrixError>(()))
        })
        .await?;
    let mut out = Map::new();
    out.insert("og:image".into(), json!(format!("mxc://{}/{media_id}", app.config.server_name)));
    out.insert("og:image:type".into(), json!(ctype));
    out.insert("matrix:image:size".into(), json!(size));
    if let Some((w, h)) = dims {
        out.insert("og:image:width".into(), json!(w));
        out.insert("og:image:height".into(), json!(h));
    }
    Ok(out)
}

/// `GET /_matrix/client/v1/media/preview_url?url=&ts=`
pub async fn preview_url(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    if !app.config.url_previews {
        return Err(MatrixError::forbidden("Link previews are switched off on this server"));
    }
    let url =
        req.query("url").ok_or_else(|| MatrixError::missing_param("url is required"))?.to_owned();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(MatrixError::invalid_param("url must be an http or https URL"));
    }
    if let Some(v) = app.previews.borrow().get(&url) {
        return Ok(json(&v));
    }
    let uploader = caller.user_id.to_string();
    let page = guarded_client(app, MAX_PAGE).get(&url).await.map_err(|e| {
        MatrixError::new(ErrorKind::NotFound, format!("Could not fetch the page: {e}"))
    })?;
    if !(200..300).contains(&page.status) {
        return Err(MatrixError::not_found(format!("The page answered {}", page.status)));
    }
    let ctype = content_type(&page);
    let mut og = if ctype.starts_with("image/") {
        store_image(app, page.body.clone(), &ctype, &uploader).await?
    } else if ctype == "text/html" || ctype == "application/xhtml+xml" {
        let html = String::from_utf8_lossy(&page.body);
        let mut og = parse_html(&html);
        if let Some(img) = og.get("og:image").and_then(Value::as_str).map(str::to_owned) {
            og.remove("og:image");
            if let Ok(target) = page.url.join(&img) {
                let fetched = guarded_client(app, MAX_IMAGE).get(&target.to_string()).await;
                if let Ok(resp) = fetched {
                    let ict = content_type(&resp);
                    if (200..300).contains(&resp.status) && ict.starts_with("image/") {
                        og.extend(store_image(app, resp.body, &ict, &uploader).await?);
                    }
                }
            }
        }
        og
    } else {
        return Err(MatrixError::not_found(format!("No preview for content of type {ctype}")));
    };
    // Where the page really is, after redirects (unless it names itself).
    og.entry("og:url").or_insert_with(|| json!(page.url.to_string()));
    let v = Value::Object(og);
    app.previews.borrow_mut().put(url, v.clone());
    Ok(json(&v))
}
