//! Link previews against a small web server on loopback.

use std::io::Cursor;

use serde_json::Value;

use crate::support::{TestServer, urlencode};

/// Serves `/page` (HTML with OpenGraph tags and a relative image), `/img`
/// (a PNG), `/moved` (a redirect to /page) and `/plain` (no tags).
async fn web_server() -> String {
    web_server_redirecting(String::new()).await
}

/// [`web_server`], plus `/elsewhere`: a redirect to `elsewhere`.
async fn web_server_redirecting(elsewhere: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut png = Vec::new();
    image::DynamicImage::new_rgb8(40, 20)
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("png");
    let png = bytes::Bytes::from(png);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let png = png.clone();
            let elsewhere = elsewhere.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let png = png.clone();
                        let elsewhere = elsewhere.clone();
                        async move {
                            let (status, ctype, body, location) = match req.uri().path() {
                            "/page" => (200, "text/html; charset=utf-8", bytes::Bytes::from_static(
                                br#"<html><head><title>Ignored</title><meta property="og:title" content="Family BBQ">
                                <meta property="og:description" content="Saturday at noon"><meta property="og:image" content="/img"></head></html>"#), None),
                            "/plain" => (200, "text/html", bytes::Bytes::from_static(b"<title>Just a title</title>"), None),
                            "/img" => (200, "image/png", png, None),
                            "/moved" => (302, "text/plain", bytes::Bytes::new(), Some("/page")),
                            "/elsewhere" => (302, "text/plain", bytes::Bytes::new(), Some(elsewhere.as_str())),
                            _ => (404, "text/plain", bytes::Bytes::new(), None),
                        };
                            let mut r = hyper::Response::new(http_body_util::Full::new(body));
                            *r.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
                            r.headers_mut().insert(
                                "content-type",
                                hyper::header::HeaderValue::from_static(ctype),
                            );
                            if let Some(l) = location {
                                r.headers_mut().insert(
                                    "location",
                                    hyper::header::HeaderValue::from_str(l).expect("location"),
                                );
                            }
                            Ok::<_, std::convert::Infallible>(r)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_page_preview_carries_opengraph_fields_and_a_stored_image() {
    let web = web_server().await;
    let s = TestServer::start_with(|c| c.url_preview_allow = vec!["127.0.0.1/32".into()]);
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let p = alice
        .get(&format!(
            "/_matrix/client/v1/media/preview_url?url={}&ts=0",
            urlencode(&format!("{web}/moved"))
        ))
        .await
        .ok();
    assert_eq!(p["og:title"], "Family BBQ", "{p}");
    assert_eq!(p["og:description"], "Saturday at noon");
    let image = p["og:image"].as_str().expect("og:image");
    assert!(image.starts_with("mxc://localhost/"), "{image}");
    assert_eq!(p["og:image:width"], 40);
    assert_eq!(p["matrix:image:size"].as_u64().map(|n| n > 0), Some(true));
    // The image is real media the client can download.
    let got = alice
        .http
        .get(format!("{}/_matrix/client/v1/media/download/{}", s.base, &image[6..]))
        .bearer_auth(alice.token.as_deref().expect("t"))
        .send()
        .await
        .expect("get");
    assert_eq!(got.status(), 200);
    let plain = alice
        .get(&format!(
            "/_matrix/client/v1/media/preview_url?url={}",
            urlencode(&format!("{web}/plain"))
        ))
        .await
        .ok();
    assert_eq!(plain["og:title"], "Just a title");
    // Cached: a second request is answered without the page (404 now would
    // show it was fetched again).
    let again = alice
        .get(&format!(
            "/_matrix/client/v1/media/preview_url?url={}&ts=0",
            urlencode(&format!("{web}/moved"))
        ))
        .await
        .ok();
    assert_eq!(again["og:title"], "Family BBQ");
}

#[tokio::test]
async fn internal_addresses_are_refused_without_the_allow_list() {
    let web = web_server().await;
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r = alice
        .get(&format!(
            "/_matrix/client/v1/media/preview_url?url={}",
            urlencode(&format!("{web}/page"))
        ))
        .await;
    assert!(r.status.is_client_error(), "{} {}", r.status, r.body);
    assert!(r.body["error"].as_str().unwrap_or("").contains("not allowed"), "{}", r.body);
    let off = TestServer::start_with(|c| c.url_previews = false);
    let (bob, _) = off.client().register("bob", "pw-bob-1").await;
    bob.get("/_matrix/client/v1/media/preview_url?url=http%3A%2F%2Fexample.org%2F")
        .await
        .expect_err(403, "M_FORBIDDEN");
    bob.get("/_matrix/client/v1/media/preview_url").await.expect_err(403, "M_FORBIDDEN");
    let _ = Value::Null;
}

async fn preview(c: &crate::support::Client, url: &str) -> crate::support::Resp {
    c.get(&format!("/_matrix/client/v1/media/preview_url?url={}", urlencode(url))).await
}

/// Previewing `url` is refused because an address on the way is not allowed.
async fn assert_not_allowed(c: &crate::support::Client, url: &str) {
    let r = preview(c, url).await;
    assert!(r.status.is_client_error(), "{url}: {} {}", r.status, r.body);
    assert!(r.body["error"].as_str().unwrap_or("").contains("not allowed"), "{url}: {}", r.body);
}

#[tokio::test]
async fn an_allow_list_entry_with_a_port_allows_that_port_and_redirects_follow_the_same_rules() {
    let other = web_server().await;
    let web = web_server_redirecting(format!("{other}/page")).await;
    let port = web.rsplit(':').next().expect("port").to_owned();
    let s = TestServer::start_with(|c| c.url_preview_allow = vec![format!("127.0.0.1:{port}")]);
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let p = preview(&alice, &format!("{web}/moved")).await.ok();
    assert_eq!(p["og:title"], "Family BBQ", "{p}");
    assert_eq!(p["og:url"], format!("{web}/page"), "og:url is where the page was found");
    // The same host on another port is not on the list, directly or by redirect.
    for url in [format!("{other}/page"), format!("{web}/elsewhere")] {
        assert_not_allowed(&alice, &url).await;
    }
}

#[tokio::test]
async fn the_server_never_previews_its_own_listener() {
    let s = TestServer::start_with(|c| c.url_preview_allow = vec!["127.0.0.0/8".into()]);
    let web = web_server_redirecting(format!("{}/_matrix/client/versions", s.base)).await;
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    for url in [format!("{}/_matrix/client/versions", s.base), format!("{web}/elsewhere")] {
        assert_not_allowed(&alice, &url).await;
    }
    preview(&alice, &format!("{web}/page")).await.ok();
}
