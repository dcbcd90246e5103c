//! A small outbound HTTP client: one request per connection, HTTP/1.1 over
//! TCP or TLS (rustls, ring, Mozilla's roots from `webpki-roots`), run on
//! the event loop (`spawn_local`).
//!
//! What it bounds, because the far end is not trusted: total time per call
//! (connect, handshake, redirects and body together), the response head
//! (64 KiB), the response body ([`Client::max_body_bytes`]) and redirects
//! ([`Client::max_redirects`], GET only). It keeps no connection pool: push
//! deliveries and previews are rare, and a board's memory is better spent
//! elsewhere than on idle sockets.
//!
//! It does not filter destinations: a caller that fetches user-supplied URLs
//! (link previews) must decide which hosts it may reach.

use std::cell::OnceCell;
use std::fmt;
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Largest response head (status line and headers) accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;

const USER_AGENT: &str = concat!("Hearth/", env!("CARGO_PKG_VERSION"));

/// An `http` or `https` URL, split into what a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    /// Lower-case host name, or an IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`; the fragment is dropped.
    pub path: String,
}

impl Url {
    /// Parses an absolute `http://` or `https://` URL. User info
    /// (`user:pass@`) is refused: nothing we fetch needs it, and it is a
    /// classic way to disguise a host.
    pub fn parse(s: &str) -> Result<Url, ClientError> {
        let bad = |why: &str| ClientError::Url(format!("{s:?}: {why}"));
        if s.bytes().any(|b| b <= b' ' || b == 0x7f || !b.is_ascii()) {
            return Err(bad("contains spaces, control or non-ASCII characters"));
        }
        let (https, rest) = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
            _ => return Err(bad("not an http or https URL")),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err(bad("user info in URLs is not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or_else(|| bad("unclosed IPv6 address"))?;
            addr.parse::<Ipv6Addr>().map_err(|_| bad("bad IPv6 address"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after the IPv6 address"))?),
            };
            (addr.to_ascii_lowercase(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
                None => (authority.to_ascii_lowercase(), None),
            }
        };
        let host_ok = !host.is_empty()
            && (host.contains(':')
                || host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)));
        if !host_ok {
            return Err(bad("bad host"));
        }
        let port = match port {
            None => {
                if https {
                    443
                } else {
                    80
                }
            }
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(bad("bad port")),
            },
        };
        let without_fragment = tail.split('#').next().unwrap_or("");
        let path = match without_fragment {
            "" => "/".to_owned(),
            q if q.starts_with('?') => format!("/{q}"),
            p => p.to_owned(),
        };
        Ok(Url { https, host, port, path })
    }

    /// `host[:port]` as the `Host` header wants it (no default port).
    pub fn authority(&self) -> String {
        let host =
            if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let default = if self.https { 443 } else { 80 };
        if self.port == default { host } else { format!("{host}:{}", self.port) }
    }

    /// Resolves a redirect's `Location` against this URL: absolute,
    /// scheme-relative (`//host/p`), absolute-path (`/p`) or relative (`p`).
    pub fn join(&self, location: &str) -> Result<Url, ClientError> {
        let scheme = if self.https { "https" } else { "http" };
        if location.contains("://") {
            Url::parse(location)
        } else if let Some(rest) = location.strip_prefix("//") {
            Url::parse(&format!("{scheme}://{rest}"))
        } else {
            let path = if location.starts_with('/') {
                location.to_owned()
            } else {
                let base = self.path.split('?').next().unwrap_or("/");
                let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
                format!("{dir}{location}")
            };
            let dir = if path.starts_with('/') { path } else { format!("/{path}") };
            Url::parse(&format!("{scheme}://{}{dir}", self.authority()))
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.path)
    }
}

/// Why a call failed. [`ClientError::is_permanent`] says whether trying
/// again later could help.
#[derive(Debug)]
pub enum ClientError {
    /// Not a URL we can fetch.
    Url(String),
    /// DNS or TCP connect failed.
    Connect(String),
    /// The TLS handshake failed (untrusted certificate, wrong name, …).
    Tls(String),
    /// The server broke HTTP, or the connection dropped mid-response.
    Protocol(String),
    /// The whole call took longer than the client's timeout.
    Timeout,
    /// The response body is larger than allowed.
    TooLarge { limit: usize },
    /// More redirects than allowed (or a redirect without `Location`).
    TooManyRedirects { limit: usize },
}

impl ClientError {
    /// True for failures that repeating the same call will not fix.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ClientError::Url(_)
                | ClientError::TooLarge { .. }
                | ClientError::TooManyRedirects { .. }
        )
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Url(m) => write!(f, "bad URL {m}"),
            ClientError::Connect(m) => write!(f, "cannot connect: {m}"),
            ClientError::Tls(m) => write!(f, "TLS: {m}"),
            ClientError::Protocol(m) => write!(f, "HTTP: {m}"),
            ClientError::Timeout => f.write_str("timed out"),
            ClientError::TooLarge { limit } => write!(f, "response larger than {limit} bytes"),
            ClientError::TooManyRedirects { limit } => {
                write!(f, "more than {limit} redirects")
            }
        }
    }
}

impl std::error::Error for ClientError {}

/// A complete response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Where the response came from (differs from the request after
    /// redirects).
    pub url: Url,
}

/// The client. Cheap to keep for the life of a task; the TLS config (the
/// parsed root store) is built on the first `https` call only.
pub struct Client {
    timeout: Duration,
    max_body_bytes: usize,
    max_redirects: usize,
    roots: Option<RootCertStore>,
    tls: OnceCell<Arc<ClientConfig>>,
    /// Which resolved addresses (IP and port) may be contacted (link
    /// previews refuse internal ones); `None` allows all.
    allow_addr: Option<std::rc::Rc<dyn Fn(std::net::SocketAddr) -> bool>>,
}

impl Default for Client {
    fn default() -> Client {
        Client::new()
    }
}

impl Client {
    /// 15 s per call, 1 MiB bodies, 5 redirects, Mozilla's root CAs.
    pub fn new() -> Client {
        Client {
            timeout: Duration::from_secs(15),
            max_body_bytes: 1 << 20,
            max_redirects: 5,
            roots: None,
            tls: OnceCell::new(),
            allow_addr: None,
        }
    }

    /// Only connect to addresses `allow` accepts. The name is resolved
    /// here and the connection made to an accepted address itself, so a DNS
    /// answer cannot change between the check and the connect; redirects
    /// are checked the same way.
    pub fn allow_addr(mut self, allow: impl Fn(std::net::SocketAddr) -> bool + 'static) -> Client {
        self.allow_addr = Some(std::rc::Rc::new(allow));
        self
    }

    /// Trusts exactly `roots` instead of the built-in CAs (a private CA, tests).
    pub fn with_roots(mut self, roots: RootCertStore) -> Client {
        self.roots = Some(roots);
        self.tls = OnceCell::new();
        self
    }

    /// Time allowed for a whole call, redirects and body included.
    pub fn timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// Largest response body read; a bigger one fails with `TooLarge`.
    pub fn max_body_bytes(mut self, bytes: usize) -> Client {
        self.max_body_bytes = bytes;
        self
    }

    /// Redirects a GET follows; one more fails with `TooManyRedirects`.
    pub fn max_redirects(mut self, n: usize) -> Client {
        self.max_redirects = n;
        self
    }

    /// `POST url` with `body`; redirects are not followed (a gateway that
    /// redirects a POST is misconfigured, and re-sending is not ours to do).
    pub async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<Response, ClientError> {
        let url = Url::parse(url)?;
        let content_type = HeaderValue::from_str(content_type)
            .map_err(|_| ClientError::Url("bad content type".into()))?;
        let call = async {
            let req = request(hyper::Method::POST, &url)
                .header(header::CONTENT_TYPE, content_type)
                .body(Full::new(body))
                .map_err(|e| ClientError::Url(e.to_string()))?;
            let resp = self.send(&url, req).await?;
            self.finish(resp, url.clone()).await
        };
        tokio::time::timeout(self.timeout, call).await.map_err(|_| ClientError::Timeout)?
    }

    /// `GET url`, following up to `max_redirects` redirects.
    pub async fn get(&self, url: &str) -> Result<Response, ClientError> {
        let mut url = Url::parse(url)?;
        let call = async {
            let mut redirects = 0;
            loop {
                let req = request(hyper::Method::GET, &url)
                    .body(Full::new(Bytes::new()))
                    .map_err(|e| ClientError::Url(e.to_string()))?;
                let resp = self.send(&url, req).await?;
                if !matches!(resp.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
                    return self.finish(resp, url).await;
                }
                let limit = self.max_redirects;
                let location = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or(ClientError::TooManyRedirects { limit })?;
                if redirects == limit {
                    return Err(ClientError::TooManyRedirects { limit });
                }
                redirects += 1;
                url = url.join(location)?;
            }
        };
        tokio::time::timeout(self.timeout, call).await.map_err(|_| ClientError::Timeout)?
    }

    fn tls_config(&self) -> Arc<ClientConfig> {
        self.tls
            .get_or_init(|| {
                let roots = self.roots.clone().unwrap_or_else(|| RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                });
                let config = ClientConfig::builder_with_provider(crate::http::tls::provider())
                    .with_safe_default_protocol_versions()
                    .expect("the ring provider supports TLS 1.2 and 1.3")
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Arc::new(config)
            })
            .clone()
    }

    async fn send(
        &self,
        url: &Url,
        req: hyper::Request<Full<Bytes>>,
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        let tcp = match &self.allow_addr {
            None => TcpStream::connect((url.host.as_str(), url.port))
                .await
                .map_err(|e| ClientError::Connect(format!("{}: {e}", url.authority())))?,
            Some(allow) => {
                let host = url.host.trim_start_matches('[').trim_end_matches(']');
                let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, url.port))
                    .await
                    .map_err(|e| ClientError::Connect(format!("{}: {e}", url.authority())))?
                    .collect();
                // Every answer must be acceptable: a name that also points
                // inside the network is refused outright.
                if addrs.is_empty() || addrs.iter().any(|a| !allow(*a)) {
                    return Err(ClientError::Url(format!(
                        "{}: address not allowed for this request",
                        url.authority()
                    )));
                }
                TcpStream::connect(addrs.as_slice())
                    .await
                    .map_err(|e| ClientError::Connect(format!("{}: {e}", url.authority())))?
            }
        };
        let _ = tcp.set_nodelay(true);
        if !url.https {
            return exchange(tcp, req).await;
        }
        let name = ServerName::try_from(url.host.clone())
            .map_err(|_| ClientError::Url(format!("{url}: host is not a valid TLS name")))?;
        let tls = TlsConnector::from(self.tls_config())
            .connect(name, tcp)
            .await
            .map_err(|e| ClientError::Tls(format!("{}: {e}", url.authority())))?;
        exchange(tls, req).await
    }

    /// Reads the body within the cap.
    async fn finish(
        &self,
        resp: hyper::Response<Incoming>,
        url: Url,
    ) -> Result<Response, ClientError> {
        let limit = self.max_body_bytes;
        let (parts, body) = resp.into_parts();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(ClientError::TooLarge { limit });
        }
        let body = match Limited::new(body, limit).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(ClientError::TooLarge { limit });
            }
            Err(e) => return Err(ClientError::Protocol(e.to_string())),
        };
        Ok(Response { status: parts.status.as_u16(), headers: parts.headers, body, url })
    }
}

fn request(method: hyper::Method, url: &Url) -> hyper::http::request::Builder {
    hyper::Request::builder()
        .method(method)
        .uri(url.path.as_str())
        .header(header::HOST, url.authority())
        .header(header::USER_AGENT, USER_AGENT)
}

/// One request on a fresh connection; the connection task ends when the
/// response body is read or dropped.
async fn exchange<T>(
    io: T,
    req: hyper::Request<Full<Bytes>>,
) -> Result<hyper::Response<Incoming>, ClientError>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_HEAD_BYTES)
        .handshake::<_, Full<Bytes>>(TokioIo::new(io))
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    sender.send_request(req).await.map_err(|e| ClientError::Protocol(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::future::Future;

    use rustls_pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn urls_split_into_scheme_host_port_and_path() {
        assert_eq!(
            url("http://127.0.0.1:5000/_matrix/push/v1/notify"),
            Url {
                https: false,
                host: "127.0.0.1".into(),
                port: 5000,
                path: "/_matrix/push/v1/notify".into()
            }
        );
        let u = url("HTTPS://Push.Example/x?y=1#frag");
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.path.as_str()),
            (true, "push.example", 443, "/x?y=1")
        );
        assert_eq!(url("http://push.lan").path, "/");
        assert_eq!(url("http://push.lan?q").path, "/?q");
        assert_eq!(url("http://push.lan").port, 80);
        let v6 = url("https://[::1]:8448/p");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8448));
        assert_eq!(v6.authority(), "[::1]:8448");
        assert_eq!(url("https://a.example:443/").authority(), "a.example");
        assert_eq!(url("http://a.example:8080/").to_string(), "http://a.example:8080/");
    }

    #[test]
    fn unfetchable_urls_are_refused() {
        for bad in [
            "ftp://x/",
            "push.example/notify",
            "http://",
            "http:///path",
            "http://user:pw@host/",
            "http://host:0/",
            "http://host:99999/",
            "http://host:+80/",
            "http://[::1/",
            "http://[nothost]/",
            "http://ho st/",
            "http://host/a b",
            "http://hôst/",
        ] {
            assert!(matches!(Url::parse(bad), Err(ClientError::Url(_))), "{bad} accepted");
        }
    }

    #[test]
    fn redirect_locations_resolve_against_the_request() {
        let base = url("https://a.example/dir/page?q=1");
        assert_eq!(base.join("http://b.example/x").expect("abs").to_string(), "http://b.example/x");
        assert_eq!(
            base.join("//c.example/y").expect("scheme-rel").to_string(),
            "https://c.example/y"
        );
        assert_eq!(base.join("/root").expect("path-abs").to_string(), "https://a.example/root");
        assert_eq!(base.join("next?z").expect("rel").to_string(), "https://a.example/dir/next?z");
        assert!(base.join("javascript://x").is_err());
    }

    #[test]
    fn permanent_errors_are_the_ones_a_retry_cannot_fix() {
        assert!(ClientError::Url("x".into()).is_permanent());
        assert!(ClientError::TooLarge { limit: 1 }.is_permanent());
        assert!(ClientError::TooManyRedirects { limit: 1 }.is_permanent());
        assert!(!ClientError::Timeout.is_permanent());
        assert!(!ClientError::Connect("x".into()).is_permanent());
    }

    /// A server that answers every connection with `answer(path)`, raw.
    async fn canned(answer: fn(&str, usize) -> String) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::task::spawn_local(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::task::spawn_local(async move {
                    let (path, body_len) = read_request(&mut s).await;
                    let _ = s.write_all(answer(&path, body_len).as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        format!("127.0.0.1:{}", addr.port())
    }

    /// Reads a request head and its body; returns the path and body length.
    async fn read_request<S: AsyncRead + Unpin>(s: &mut S) -> (String, usize) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            let n = s.read(&mut chunk).await.expect("read");
            assert!(n > 0, "request ended early");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let path = head.split(' ').nth(1).unwrap_or("").to_owned();
        let len = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
            })
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let n = s.read(&mut chunk).await.expect("read body");
            assert!(n > 0, "body ended early");
            buf.extend_from_slice(&chunk[..n]);
        }
        (path, len)
    }

    fn ok(body: &str) -> String {
        format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len())
    }

    fn local<F: Future>(f: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        tokio::task::LocalSet::new().block_on(&rt, f)
    }

    #[test]
    fn post_sends_the_body_and_reads_the_answer() {
        local(async {
            let addr = canned(|path, len| ok(&format!("{path} {len}"))).await;
            let r = Client::new()
                .post(
                    &format!("http://{addr}/notify"),
                    "application/json",
                    Bytes::from_static(b"{}"),
                )
                .await
                .expect("post");
            assert_eq!((r.status, &r.body[..]), (200, b"/notify 2".as_slice()));
        });
    }

    #[test]
    fn bodies_over_the_cap_fail_declared_or_chunked() {
        local(async {
            let addr = canned(|path, _| {
                let big = "x".repeat(100);
                if path == "/declared" {
                    ok(&big)
                } else {
                    format!("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n64\r\n{big}\r\n0\r\n\r\n")
                }
            })
            .await;
            let client = Client::new().max_body_bytes(99);
            for path in ["/declared", "/chunked"] {
                let r = client.get(&format!("http://{addr}{path}")).await;
                assert!(matches!(r, Err(ClientError::TooLarge { limit: 99 })), "{path}: {r:?}");
            }
            let exact =
                Client::new().max_body_bytes(100).get(&format!("http://{addr}/chunked")).await;
            assert_eq!(exact.expect("at the cap").body.len(), 100);
        });
    }

    #[test]
    fn redirects_are_followed_up_to_the_limit() {
        local(async {
            let addr = canned(|path, _| {
                // /hop/N redirects to /hop/N-1; /hop/0 answers.
                let n: u32 = path.trim_start_matches("/hop/").parse().unwrap_or(0);
                if n == 0 {
                    ok("landed")
                } else {
                    format!(
                        "HTTP/1.1 302 Found\r\nlocation: {}\r\ncontent-length: 0\r\n\r\n",
                        n - 1
                    )
                }
            })
            .await;
            let client = Client::new().max_redirects(3);
            let r = client.get(&format!("http://{addr}/hop/3")).await.expect("3 hops");
            assert_eq!((&r.body[..], r.url.path.as_str()), (b"landed".as_slice(), "/hop/0"));
            let r = client.get(&format!("http://{addr}/hop/4")).await;
            assert!(matches!(r, Err(ClientError::TooManyRedirects { limit: 3 })), "{r:?}");
        });
    }

    #[test]
    fn a_silent_server_times_out() {
        local(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let client = Client::new().timeout(Duration::from_millis(200));
            let r = client.get(&format!("http://{addr}/")).await;
            assert!(matches!(r, Err(ClientError::Timeout)), "{r:?}");
            drop(listener);
        });
    }

    #[test]
    fn https_works_with_a_trusted_root_and_fails_without() {
        local(async {
            let cert = crate::http::tls::self_signed("localhost", &[]).expect("cert");
            let dir = tempfile::tempdir().expect("tempdir");
            let files = crate::config::TlsFiles {
                cert: dir.path().join("c.pem"),
                key: dir.path().join("k.pem"),
            };
            std::fs::write(&files.cert, &cert.cert_pem).expect("write");
            std::fs::write(&files.key, &cert.key_pem).expect("write");
            let acceptor = crate::http::tls::Tls::load(&files).expect("load").acceptor();
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let port = listener.local_addr().expect("addr").port();
            tokio::task::spawn_local(async move {
                while let Ok((s, _)) = listener.accept().await {
                    let acceptor = acceptor.clone();
                    tokio::task::spawn_local(async move {
                        let Ok(mut s) = acceptor.accept(s).await else { return };
                        let _ = read_request(&mut s).await;
                        let _ = s.write_all(ok("secret").as_bytes()).await;
                        let _ = s.shutdown().await;
                    });
                }
            });
            let url = format!("https://localhost:{port}/");
            let untrusting = Client::new().get(&url).await;
            assert!(matches!(untrusting, Err(ClientError::Tls(_))), "{untrusting:?}");
            let mut roots = RootCertStore::empty();
            let der = rustls_pki_types::CertificateDer::from_pem_slice(cert.ca_pem.as_bytes())
                .expect("pem");
            roots.add(der).expect("root");
            let r = Client::new().with_roots(roots).get(&url).await.expect("trusted");
            assert_eq!(&r.body[..], b"secret");
        });
    }
}
