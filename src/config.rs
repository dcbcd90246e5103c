//! Configuration in two stages: the raw TOML file (and command-line
//! overrides) → a validated `Config` the rest of the program uses.
//!
//! Every option has a default, so `hearth` with no file serves `localhost` on
//! `127.0.0.1:8008` from `./hearth-data`. `hearth.example.toml` at the top of
//! the repository documents each key; keep the two in step.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::ids::is_valid_server_name;

/// Who may create accounts through `POST /register`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registration {
    /// Anyone who can reach the server (completes with `m.login.dummy`).
    Open,
    /// Only with a registration token (`m.login.registration_token`).
    Token,
    /// No self-service registration; accounts come from `hearth user add`.
    Closed,
}

impl Registration {
    pub fn parse(s: &str) -> Option<Registration> {
        match s {
            "open" => Some(Registration::Open),
            "token" => Some(Registration::Token),
            "closed" => Some(Registration::Closed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Registration::Open => "open",
            Registration::Token => "token",
            Registration::Closed => "closed",
        }
    }
}

/// The file as written: every field optional, unknown keys rejected so a
/// typo is reported instead of silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server_name: Option<String>,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    public_base_url: Option<String>,
    registration: Option<String>,
    max_connections: Option<u64>,
    max_request_body_bytes: Option<u64>,
    max_request_header_bytes: Option<u64>,
    db_cache_mb: Option<u64>,
    access_token_lifetime_ms: Option<u64>,
    login_attempts_per_minute: Option<u64>,
    presence: Option<bool>,
    user_directory_search_all: Option<bool>,
    log: Option<String>,
    max_upload_mb: Option<u64>,
    media_quota_mb: Option<u64>,
    legacy_media: Option<bool>,
    max_thumbnail_megapixels: Option<u64>,
    metrics_listen: Option<String>,
    admin_contact: Option<String>,
    min_free_disk_mb: Option<u64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    url_previews: Option<bool>,
    url_preview_allow: Option<Vec<String>>,
    federation: Option<bool>,
    mdns: Option<bool>,
    mdns_name: Option<String>,
    mdns_listen: Option<String>,
    max_devices_per_user: Option<u64>,
    login_attempts_per_user_per_minute: Option<u64>,
    registrations_per_minute: Option<u64>,
    registrations_per_minute_loopback: Option<u64>,
    header_read_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    body_read_timeout_ms: Option<u64>,
    turn_uris: Option<Vec<String>>,
    turn_shared_secret: Option<String>,
    turn_username: Option<String>,
    turn_password: Option<String>,
    turn_user_lifetime: Option<String>,
    turn_allow_guests: Option<bool>,
    rtc_foci: Option<Vec<RawRtcFocus>>,
}

/// One `[[rtc_foci]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRtcFocus {
    #[serde(rename = "type")]
    kind: String,
    livekit_service_url: Option<String>,
}

/// Values given on the command line; they win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub server_name: Option<String>,
    pub registration: Option<String>,
}

/// The validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub server_name: String,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Advertised in `/.well-known/matrix/client`; `None` → that answers 404.
    pub public_base_url: Option<String>,
    pub registration: Registration,
    /// True when registration was forced closed because the server listens
    /// beyond loopback and the config did not choose a mode.
    pub registration_defaulted_closed: bool,
    pub max_connections: usize,
    pub max_request_body_bytes: usize,
    pub max_request_header_bytes: usize,
    pub db_cache_bytes: usize,
    /// Lifetime of access tokens issued to clients that asked for a refresh
    /// token; others get non-expiring tokens (spec: "Refreshing access tokens").
    pub access_token_lifetime_ms: u64,
    pub login_attempts_per_minute: u32,
    pub presence: bool,
    /// The user directory finds every local user, not only those sharing a
    /// room with the searcher or sitting in a public room.
    pub user_directory_search_all: bool,
    /// A `tracing` filter, e.g. `info` or `hearth=debug`.
    pub log: String,
    /// Serve link previews (`/media/preview_url`); off for offline installs.
    pub url_previews: bool,
    /// Addresses (CIDRs) previews may fetch although they are internal
    /// (loopback, private, link-local…), e.g. a LAN's own web server.
    pub url_preview_allow: Vec<String>,
    /// Largest upload in bytes (`m.upload.size`).
    pub max_upload_bytes: u64,
    /// Media bytes each user may store; 0 = no quota.
    pub media_quota_bytes: u64,
    /// Serve the deprecated unauthenticated `/_matrix/media/v3/download`
    /// and `/thumbnail` for older clients.
    pub legacy_media: bool,
    /// Images with more pixels are not thumbnailed (decompression bombs).
    pub max_thumbnail_pixels: u64,
    /// Serve Prometheus metrics here (plain HTTP, `/metrics`); `None` → off.
    pub metrics_listen: Option<SocketAddr>,
    /// Where users can reach the admin (`mailto:` or `https:` URI): sent as
    /// `admin_contact` with `M_RESOURCE_LIMIT_EXCEEDED` when the disk is full.
    pub admin_contact: Option<String>,
    /// Writes are refused while the data directory has less free space.
    pub min_free_disk_bytes: u64,
    /// Serve HTTPS with this certificate and key; `None` → plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Answer mDNS queries for a `.local` name (`net::mdns`); `None` → off.
    pub mdns: Option<MdnsConfig>,
    /// Devices (sessions) one user may have; a new login past it deletes
    /// the least recently seen device, one without keys first (`quota`).
    pub max_devices_per_user: usize,
    /// Failed logins per minute against one account from all addresses
    /// together: a ceiling for distributed guessing, far above what one
    /// address may try (`login_attempts_per_minute`).
    pub login_attempts_per_user_per_minute: u32,
    /// Accounts one client address may create per minute (a burst of as
    /// many, then one every `60 / n` seconds).
    pub registrations_per_minute: u32,
    /// The same for loopback addresses, where a reverse proxy on the same
    /// machine makes every client look alike.
    pub registrations_per_minute_loopback: u32,
    /// Connection limits while the server waits for the client (`http::connections`).
    pub timeouts: Timeouts,
    /// The TURN relay handed out by `/voip/turnServer`; `None` → not configured.
    pub turn: Option<TurnConfig>,
    /// MatrixRTC foci (MSC4143) for group calls; empty → none advertised.
    pub rtc_foci: Vec<RtcFocus>,
}

/// `turn_*`: the TURN server clients relay calls through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnConfig {
    /// `turn:` / `turns:` URIs, as given.
    pub uris: Vec<String>,
    pub credentials: TurnCredentials,
    /// How long handed-out credentials are valid (the response's `ttl`).
    pub user_lifetime_secs: u64,
    /// Whether guests get credentials too. Hearth issues no guest accounts
    /// (guest registration is refused), so today every caller is a full user.
    pub allow_guests: bool,
}

/// How `/voip/turnServer` makes credentials.
#[derive(Clone, PartialEq, Eq)]
pub enum TurnCredentials {
    /// `turn_shared_secret`: time-limited credentials by the TURN REST API
    /// convention (coturn's `use-auth-secret`), see [`crate::voip`].
    SharedSecret(String),
    /// `turn_username` + `turn_password`: the same static pair for everyone.
    Static { username: String, password: String },
}

/// Secrets stay out of logs and debug output.
impl fmt::Debug for TurnCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TurnCredentials::SharedSecret(_) => f.write_str("SharedSecret(..)"),
            TurnCredentials::Static { username, .. } => {
                write!(f, "Static {{ username: {username:?}, .. }}")
            }
        }
    }
}

/// One `[[rtc_foci]]` entry: a MatrixRTC focus for group calls (MSC4143).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcFocus {
    /// A LiveKit SFU behind its JWT service (what Element Call uses);
    /// `service_url` is that service's base URL (`livekit_service_url`).
    LiveKit { service_url: String },
}

/// How long a connection may keep the server waiting for the client. The
/// time a request waits for the server (a `/sync` long-poll, a commit) never
/// counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A request's head (request line and headers) must arrive within this,
    /// counted from the connection's start or the first byte of the head.
    pub header_read: Duration,
    /// A connection with no request in flight and no traffic is closed
    /// after this (keep-alive between requests; also bounds a client that
    /// stops reading a response).
    pub idle: Duration,
    /// While a request body is being read, the client must send something
    /// at least this often.
    pub body_read: Duration,
}

/// `mdns`, `mdns_name` and `mdns_listen`: the optional mDNS responder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdnsConfig {
    /// The name answered for, lower case, ending in `.local`.
    pub name: String,
    /// The UDP address the responder binds. On port 5353 of an unspecified
    /// or LAN address it joins the mDNS multicast group; on a loopback
    /// address it only answers unicast queries (tests).
    pub listen: SocketAddr,
}

/// `tls_cert` and `tls_key`: PEM files, read when the server starts and on
/// SIGHUP (`http::tls`). Only their presence is checked here, so admin
/// commands work without read access to the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A configuration problem, naming the key and what is wrong.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Loads `path` (if any), applies the overrides and validates.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let raw = match path {
            None => RawConfig::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    ConfigError(format!("cannot read config file {}: {e}", p.display()))
                })?;
                toml::from_str(&text).map_err(|e| {
                    ConfigError(format!("config file {}: {}", p.display(), e.message().trim()))
                        .with_span(&text, e.span())
                })?
            }
        };
        Config::from_raw(raw, overrides)
    }

    /// Defaults only (plus overrides): what tests and `hearth` with no file use.
    pub fn with_overrides(overrides: &Overrides) -> Result<Config, ConfigError> {
        Config::from_raw(RawConfig::default(), overrides)
    }

    fn from_raw(raw: RawConfig, ov: &Overrides) -> Result<Config, ConfigError> {
        let server_name =
            ov.server_name.clone().or(raw.server_name).unwrap_or_else(|| "localhost".into());
        if !is_valid_server_name(&server_name) {
            return Err(ConfigError(format!(
                "server_name: {server_name:?} is not a valid Matrix server name (hostname[:port])"
            )));
        }
        let listen_text =
            ov.listen.clone().or(raw.listen).unwrap_or_else(|| "127.0.0.1:8008".into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            ConfigError(format!("listen: {listen_text:?} is not an address like 127.0.0.1:8008"))
        })?;
        let data_dir = ov.data_dir.clone().or(raw.data_dir).unwrap_or_else(|| "hearth-data".into());
        if data_dir.as_os_str().is_empty() {
            return Err(ConfigError("data_dir: must not be empty".into()));
        }
        if let Some(url) = &raw.public_base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError(format!(
                "public_base_url: {url:?} must start with http:// or https://"
            )));
        }
        let chosen = ov.registration.clone().or(raw.registration);
        let (registration, registration_defaulted_closed) = match chosen {
            Some(s) => match Registration::parse(&s) {
                Some(r) => (r, false),
                None => {
                    return Err(ConfigError(format!(
                        "registration: {s:?} is not one of \"open\", \"token\", \"closed\""
                    )));
                }
            },
            // Open registration is only a safe default where nobody else can reach us.
            None if listen.ip().is_loopback() => (Registration::Open, false),
            None => (Registration::Closed, true),
        };
        let bounded = |key: &str, v: Option<u64>, default: u64, min: u64, max: u64| {
            let v = v.unwrap_or(default);
            if v < min || v > max {
                Err(ConfigError(format!("{key}: {v} is out of range ({min} to {max})")))
            } else {
                Ok(v)
            }
        };
        let max_connections = bounded("max_connections", raw.max_connections, 1024, 1, 1 << 20)?;
        let max_request_body_bytes =
            bounded("max_request_body_bytes", raw.max_request_body_bytes, 1 << 20, 1024, 1 << 30)?;
        let max_request_header_bytes = bounded(
            "max_request_header_bytes",
            raw.max_request_header_bytes,
            16 * 1024,
            1024,
            1 << 20,
        )?;
        let db_cache_mb = bounded("db_cache_mb", raw.db_cache_mb, 16, 1, 64 * 1024)?;
        let access_token_lifetime_ms = bounded(
            "access_token_lifetime_ms",
            raw.access_token_lifetime_ms,
            5 * 60 * 1000,
            1000,
            365 * 24 * 3600 * 1000,
        )?;
        let login_attempts_per_minute =
            bounded("login_attempts_per_minute", raw.login_attempts_per_minute, 10, 1, 100_000)?;
        let max_upload_mb = bounded("max_upload_mb", raw.max_upload_mb, 100, 1, 64 * 1024)?;
        let media_quota_mb = bounded("media_quota_mb", raw.media_quota_mb, 0, 0, 1 << 30)?;
        let max_thumbnail_megapixels =
            bounded("max_thumbnail_megapixels", raw.max_thumbnail_megapixels, 40, 1, 1000)?;
        let metrics_listen = match raw.metrics_listen {
            None => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                ConfigError(format!(
                    "metrics_listen: {text:?} is not an address like 127.0.0.1:9108"
                ))
            })?),
        };
        let min_free_disk_mb = bounded("min_free_disk_mb", raw.min_free_disk_mb, 16, 0, 1 << 20)?;
        let tls = match (raw.tls_cert, raw.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (Some(_), None) => {
                return Err(ConfigError("tls_key: must be set when tls_cert is".into()));
            }
            (None, Some(_)) => {
                return Err(ConfigError("tls_cert: must be set when tls_key is".into()));
            }
        };
        // There is no server-server code yet, so `true` cannot be honoured;
        // refusing it beats an operator believing the server federates.
        if raw.federation == Some(true) {
            return Err(ConfigError(
                "federation: Hearth does not federate yet; only `federation = false` is supported"
                    .into(),
            ));
        }
        let mdns = match raw.mdns {
            Some(true) => Some(mdns_config(&server_name, raw.mdns_name, raw.mdns_listen)?),
            Some(false) | None => None,
        };
        let turn = turn_config(
            raw.turn_uris,
            raw.turn_shared_secret,
            raw.turn_username,
            raw.turn_password,
            raw.turn_user_lifetime,
            raw.turn_allow_guests,
        )?;
        let rtc_foci = raw
            .rtc_foci
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, f)| rtc_focus(i, f))
            .collect::<Result<Vec<_>, _>>()?;
        let login_attempts_per_user_per_minute = bounded(
            "login_attempts_per_user_per_minute",
            raw.login_attempts_per_user_per_minute,
            100,
            1,
            1_000_000,
        )?;
        let registrations_per_minute =
            bounded("registrations_per_minute", raw.registrations_per_minute, 5, 1, 100_000)?;
        let registrations_per_minute_loopback = bounded(
            "registrations_per_minute_loopback",
            raw.registrations_per_minute_loopback,
            300,
            1,
            100_000,
        )?;
        let hour = 3600 * 1000;
        let timeouts = Timeouts {
            header_read: Duration::from_millis(bounded(
                "header_read_timeout_ms",
                raw.header_read_timeout_ms,
                30_000,
                100,
                hour,
            )?),
            idle: Duration::from_millis(bounded(
                "idle_timeout_ms",
                raw.idle_timeout_ms,
                60_000,
                100,
                hour,
            )?),
            body_read: Duration::from_millis(bounded(
                "body_read_timeout_ms",
                raw.body_read_timeout_ms,
                60_000,
                100,
                hour,
            )?),
        };
        let url_preview_allow = raw.url_preview_allow.unwrap_or_default();
        for entry in &url_preview_allow {
            crate::media::preview::AllowEntry::parse(entry)
                .map_err(|why| ConfigError(format!("url_preview_allow: {entry:?} {why}")))?;
        }
        let max_devices_per_user =
            bounded("max_devices_per_user", raw.max_devices_per_user, 100, 2, 100_000)?;
        Ok(Config {
            server_name,
            listen,
            data_dir,
            public_base_url: raw.public_base_url.map(|u| u.trim_end_matches('/').to_owned()),
            registration,
            registration_defaulted_closed,
            max_connections: max_connections as usize,
            max_request_body_bytes: max_request_body_bytes as usize,
            max_request_header_bytes: max_request_header_bytes as usize,
            db_cache_bytes: (db_cache_mb as usize) << 20,
            access_token_lifetime_ms,
            login_attempts_per_minute: login_attempts_per_minute as u32,
            presence: raw.presence.unwrap_or(true),
            user_directory_search_all: raw.user_directory_search_all.unwrap_or(false),
            log: raw.log.unwrap_or_else(|| "info".into()),
            url_previews: raw.url_previews.unwrap_or(true),
            url_preview_allow,
            max_upload_bytes: max_upload_mb << 20,
            media_quota_bytes: media_quota_mb << 20,
            legacy_media: raw.legacy_media.unwrap_or(true),
            max_thumbnail_pixels: max_thumbnail_megapixels * 1_000_000,
            metrics_listen,
            admin_contact: raw.admin_contact.filter(|c| !c.trim().is_empty()),
            min_free_disk_bytes: min_free_disk_mb << 20,
            tls,
            mdns,
            turn,
            rtc_foci,
            login_attempts_per_user_per_minute: login_attempts_per_user_per_minute as u32,
            registrations_per_minute: registrations_per_minute as u32,
            registrations_per_minute_loopback: registrations_per_minute_loopback as u32,
            timeouts,
            max_devices_per_user: max_devices_per_user as usize,
        })
    }
}

/// Validates the `turn_*` keys: URIs and credentials come together or not
/// at all, and exactly one kind of credentials.
fn turn_config(
    uris: Option<Vec<String>>,
    secret: Option<String>,
    username: Option<String>,
    password: Option<String>,
    lifetime: Option<String>,
    allow_guests: Option<bool>,
) -> Result<Option<TurnConfig>, ConfigError> {
    let uris = uris.unwrap_or_default();
    for uri in &uris {
        // spec: `uris` items match `^turns?:`; a host must follow.
        let rest = uri.strip_prefix("turn:").or_else(|| uri.strip_prefix("turns:"));
        let host = rest.map(|r| r.split(['?', ':']).next().unwrap_or(""));
        if host.is_none_or(|h| h.is_empty() || h.contains(char::is_whitespace)) {
            return Err(ConfigError(format!(
                "turn_uris: {uri:?} is not a TURN URI like \"turn:turn.example.org:3478?transport=udp\" \
                 (turn: or turns:, then a host)"
            )));
        }
    }
    let credentials = match (secret, username, password) {
        (None, None, None) => None,
        (Some(s), None, None) => {
            if s.trim().is_empty() {
                return Err(ConfigError("turn_shared_secret: must not be empty".into()));
            }
            Some(TurnCredentials::SharedSecret(s))
        }
        (Some(_), _, _) => {
            return Err(ConfigError(
                "turn_shared_secret: set either it or turn_username and turn_password, not both"
                    .into(),
            ));
        }
        (None, Some(username), Some(password)) => {
            if username.is_empty() || password.is_empty() {
                return Err(ConfigError(
                    "turn_username: it and turn_password must not be empty".into(),
                ));
            }
            Some(TurnCredentials::Static { username, password })
        }
        (None, Some(_), None) => {
            return Err(ConfigError("turn_password: must be set when turn_username is".into()));
        }
        (None, None, Some(_)) => {
            return Err(ConfigError("turn_username: must be set when turn_password is".into()));
        }
    };
    let user_lifetime_secs = match lifetime {
        None => 24 * 3600,
        Some(text) => parse_duration_secs(&text)
            .filter(|s| (60..=30 * 24 * 3600).contains(s))
            .ok_or_else(|| {
                ConfigError(format!(
                    "turn_user_lifetime: {text:?} is not a duration from 1 minute to 30 days \
                     with a unit, like \"1d\", \"12h\", \"30m\" or \"3600s\""
                ))
            })?,
    };
    match (uris.is_empty(), credentials) {
        (true, None) => Ok(None),
        (false, Some(credentials)) => Ok(Some(TurnConfig {
            uris,
            credentials,
            user_lifetime_secs,
            allow_guests: allow_guests.unwrap_or(true),
        })),
        (false, None) => Err(ConfigError(
            "turn_uris: needs turn_shared_secret (or turn_username and turn_password)".into(),
        )),
        (true, Some(_)) => Err(ConfigError(
            "turn_uris: must list the TURN server's URIs when TURN credentials are set".into(),
        )),
    }
}

/// `"90s"`, `"30m"`, `"12h"`, `"1d"` → seconds.
fn parse_duration_secs(text: &str) -> Option<u64> {
    let text = text.trim();
    let unit = match text.chars().last()? {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 24 * 3600,
        _ => return None,
    };
    let number = &text[..text.len() - 1];
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number.parse::<u64>().ok()?.checked_mul(unit)
}

/// Validates the `i`th `[[rtc_foci]]` entry.
fn rtc_focus(i: usize, raw: RawRtcFocus) -> Result<RtcFocus, ConfigError> {
    if raw.kind != "livekit" {
        return Err(ConfigError(format!(
            "rtc_foci[{i}].type: {:?} is not a supported focus type (only \"livekit\")",
            raw.kind
        )));
    }
    let Some(url) = raw.livekit_service_url else {
        return Err(ConfigError(format!(
            "rtc_foci[{i}].livekit_service_url: must be set for a \"livekit\" focus"
        )));
    };
    let host = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    if host.is_none_or(|h| h.is_empty() || h.starts_with('/') || h.contains(char::is_whitespace)) {
        return Err(ConfigError(format!(
            "rtc_foci[{i}].livekit_service_url: {url:?} is not an http:// or https:// URL"
        )));
    }
    // Served exactly as written: clients resolve paths against it, so a
    // trailing slash matters.
    Ok(RtcFocus::LiveKit { service_url: url })
}

/// Validates the mDNS keys: the name defaults to `server_name` when that is
/// a `.local` name; the responder speaks IPv4 only.
fn mdns_config(
    server_name: &str,
    name: Option<String>,
    listen: Option<String>,
) -> Result<MdnsConfig, ConfigError> {
    let name = match name {
        Some(n) => n.trim_end_matches('.').to_ascii_lowercase(),
        None => {
            // The server name may carry a port; mDNS resolves the host only.
            let host = server_name.rsplit_once(':').map_or(server_name, |(h, _)| h);
            let host = host.to_ascii_lowercase();
            if !host.ends_with(".local") {
                return Err(ConfigError(format!(
                    "mdns_name: must be set when mdns = true and server_name {server_name:?} \
                     is not a .local name"
                )));
            }
            host
        }
    };
    if !is_local_host_name(&name) {
        return Err(ConfigError(format!(
            "mdns_name: {name:?} is not a host name ending in .local, like \"hearth.local\""
        )));
    }
    let text = listen.unwrap_or_else(|| "0.0.0.0:5353".into());
    let listen: SocketAddr = text.parse().map_err(|_| {
        ConfigError(format!("mdns_listen: {text:?} is not an address like 0.0.0.0:5353"))
    })?;
    if !listen.is_ipv4() {
        return Err(ConfigError(format!(
            "mdns_listen: {text:?} is not an IPv4 address (the responder speaks mDNS over IPv4)"
        )));
    }
    Ok(MdnsConfig { name, listen })
}

/// A DNS host name (letters, digits, hyphens; labels of 1 to 63 bytes, at
/// most 253 in all) whose last label is `local`.
fn is_local_host_name(name: &str) -> bool {
    name.len() <= 253
        && name.ends_with(".local")
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl ConfigError {
    /// Adds the line number of a TOML error to the message.
    fn with_span(self, text: &str, span: Option<std::ops::Range<usize>>) -> ConfigError {
        match span {
            Some(r) => {
                let line = text[..r.start.min(text.len())].matches('\n').count() + 1;
                ConfigError(format!("{} (line {line})", self.0))
            }
            None => self,
        }
    }
}

#[cfg(test)]
mod tests;
