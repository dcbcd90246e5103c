//! A thin HTTP/1.1 client over hyper with one error type.
//!
//! Every call carries its own timeout; the body is read completely before
//! the call returns, and the time taken includes reading it, so a latency
//! here is what a client would wait for the whole response.

use std::fmt;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// What went wrong with one request, worded for the report.
#[derive(Debug, Clone)]
pub(crate) enum Error {
    /// Connecting, writing or reading failed.
    Transport(String),
    /// No complete response within the request's time limit.
    Timeout { what: String, after: Duration },
    /// The server answered with a non-2xx status.
    Status { what: String, status: u16, errcode: Option<String>, message: String },
    /// A 2xx response without the fields the spec promises.
    Unexpected(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Transport(e) => write!(f, "transport error: {e}"),
            Error::Timeout { what, after } => {
                write!(f, "{what}: no response within {:.0} s", after.as_secs_f64())
            }
            Error::Status { what, status, errcode, message } => {
                write!(f, "{what}: HTTP {status}")?;
                if let Some(code) = errcode {
                    write!(f, " {code}")?;
                }
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
            Error::Unexpected(e) => write!(f, "unexpected response: {e}"),
        }
    }
}

/// A complete response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
    /// From just before the request was handed to hyper until the last body
    /// byte was read.
    pub(crate) elapsed: Duration,
    /// When the last body byte was read.
    pub(crate) received_at: Instant,
    /// `METHOD /path` without the query string, for error messages.
    pub(crate) what: String,
    /// The `Server` response header, if any (names the implementation).
    pub(crate) server: Option<String>,
}

impl Reply {
    /// The body as JSON if the status is 2xx, else the server's Matrix error.
    pub(crate) fn json(&self) -> Result<Value, Error> {
        if !(200..300).contains(&self.status) {
            return Err(self.error());
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::Unexpected(format!("{}: body is not JSON: {e}", self.what)))
    }

    /// This (non-2xx) response as an [`Error::Status`].
    pub(crate) fn error(&self) -> Error {
        let parsed: Option<Value> = serde_json::from_slice(&self.body).ok();
        let field = |name: &str| {
            parsed.as_ref().and_then(|v| v.get(name)).and_then(Value::as_str).map(str::to_owned)
        };
        let message = field("error").unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&self.body);
            text.chars().take(200).collect()
        });
        Error::Status {
            what: self.what.clone(),
            status: self.status,
            errcode: field("errcode"),
            message,
        }
    }
}

/// Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub(crate) struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base_url: String,
}

impl Http {
    pub(crate) fn new(base_url: &str) -> Http {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Http { client, base_url: base_url.to_owned() }
    }

    /// Sends one request. `path_and_query` starts with `/`; `token` becomes
    /// a bearer `Authorization` header; `body` is sent as JSON.
    pub(crate) async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        token: Option<&str>,
        body: Option<&Value>,
        limit: Duration,
    ) -> Result<Reply, Error> {
        let path = path_and_query.split('?').next().unwrap_or_default();
        let what = format!("{method} {path}");
        let mut request =
            Request::builder().method(method).uri(format!("{}{}", self.base_url, path_and_query));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let payload = match body {
            Some(value) => {
                request = request.header("content-type", "application/json");
                Bytes::from(value.to_string())
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(payload))
            .map_err(|e| Error::Transport(format!("{what}: cannot build request: {e}")))?;

        let started = Instant::now();
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| Error::Transport(format!("{what}: {}", error_chain(&e))))?;
            let status = response.status().as_u16();
            let server =
                response.headers().get("server").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| Error::Transport(format!("{what}: reading body: {e}")))?
                .to_bytes();
            Ok::<_, Error>((status, server, body))
        };
        let (status, server, body) = tokio::time::timeout(limit, exchange)
            .await
            .map_err(|_| Error::Timeout { what: what.clone(), after: limit })??;
        let received_at = Instant::now();
        Ok(Reply { status, body, elapsed: received_at - started, received_at, what, server })
    }
}

/// hyper's errors keep the interesting part (e.g. "connection refused") in
/// their sources; show the whole chain.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
