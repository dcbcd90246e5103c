//! Link previews (spec: content repository, `GET /media/preview_url`): the
//! pure parts — reading OpenGraph and `<title>`/description out of HTML,
//! deciding which addresses a preview fetch may contact — and the bounded
//! in-memory cache of recent previews.
//!
//! The parser is deliberately small: it scans tags, never builds a DOM, and
//! looks only at the first 256 KiB of a page, so a hostile page costs a
//! bounded amount of work.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

/// How much of a page is examined.
pub const MAX_HTML_BYTES: usize = 256 * 1024;

/// Decodes the few HTML entities that matter in titles and descriptions.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(end) = tail.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &tail[1..];
            continue;
        };
        let entity = &tail[1..end];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" | "#39" => Some('\''),
            "nbsp" => Some(' '),
            e if e.starts_with("#x") || e.starts_with("#X") => {
                u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32)
            }
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &tail[end + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The attributes of one tag's text (`<meta a="b" c='d'>` → [(a,b),(c,d)]).
fn attributes(tag: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = tag.as_bytes();
    let mut i = 0;
    // Skip the tag name.
    while i < b.len() && !b[i].is_ascii_whitespace() {
        i += 1;
    }
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() && b[i] != b'/' {
            i += 1;
        }
        let name = tag[start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let value = if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                i += 1;
                let s = i;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                let v = &tag[s..i.min(tag.len())];
                i += 1;
                v
            } else {
                let s = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                &tag[s..i]
            };
            if !name.is_empty() {
                out.push((name, unescape(value)));
            }
        } else if !name.is_empty() {
            out.push((name, String::new()));
        }
        if i == start {
            i += 1;
        }
    }
    out
}

/// OpenGraph (`og:*`) properties, falling back to `<title>` and the meta
/// description, as the preview response carries them.
pub fn parse_html(html: &str) -> Map<String, Value> {
    let html = match html.char_indices().nth(MAX_HTML_BYTES) {
        Some((i, _)) => &html[..i],
        None => html,
    };
    let mut og = Map::new();
    let mut title = None;
    let mut description = None;
    let lower = html.to_ascii_lowercase();
    let mut pos = 0;
    while let Some(rel) = lower[pos..].find('<') {
        let start = pos + rel + 1;
        let Some(end_rel) = lower[start..].find('>') else { break };
        let end = start + end_rel;
        let tag = &html[start..end];
        let tag_lower = &lower[start..end];
        if tag_lower.starts_with("meta") {
            let attrs = attributes(tag);
            let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let content = get("content");
            if let (Some(p), Some(c)) = (get("property").or_else(|| get("name")), content) {
                let p = p.to_ascii_lowercase();
                if p.starts_with("og:") && !og.contains_key(&p) && !c.is_empty() {
                    og.insert(p, json!(c.trim()));
                } else if p == "description" && description.is_none() {
                    description = Some(c.trim().to_owned());
                }
            }
        } else if tag_lower.starts_with("title")
            && title.is_none()
            && let Some(close) = lower[end..].find("</title")
        {
            let t = unescape(html[end + 1..end + close].trim());
            if !t.is_empty() {
                title = Some(t);
            }
        }
        pos = end + 1;
    }
    if !og.contains_key("og:title")
        && let Some(t) = title
    {
        og.insert("og:title".into(), json!(t));
    }
    if !og.contains_key("og:description")
        && let Some(d) = description
    {
        og.insert("og:description".into(), json!(d));
    }
    og
}

/// One `url_preview_allow` entry: an address or CIDR block, optionally
/// limited to one port (`127.0.0.1:8080`, `192.168.1.0/24:80`,
/// `[fd00::/8]:443`; an IPv6 entry with a port is bracketed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowEntry {
    net: IpAddr,
    prefix: u32,
    port: Option<u16>,
}

impl AllowEntry {
    /// Parses an entry; the error says what is wrong (for the config).
    pub fn parse(text: &str) -> Result<AllowEntry, String> {
        let text = text.trim();
        let (net, port) = if let Some(rest) = text.strip_prefix('[') {
            let (inner, after) = rest.split_once(']').ok_or("has an unclosed '['")?;
            let port = after.strip_prefix(':').ok_or("needs \":port\" after the brackets")?;
            (inner, Some(port))
        } else if text.matches(':').count() > 1 {
            // Bare IPv6: every colon belongs to the address.
            (text, None)
        } else {
            match text.rsplit_once(':') {
                Some((n, p)) => (n, Some(p)),
                None => (text, None),
            }
        };
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
                _ => return Err(format!("has a bad port {p:?}")),
            },
        };
        let (addr, prefix) = match net.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (net, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IP address (names are not resolved)"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(b) => match b.parse::<u32>() {
                Ok(n) if n <= max && b.bytes().all(|c| c.is_ascii_digit()) => n,
                _ => return Err(format!("has a bad prefix length {b:?} (0 to {max})")),
            },
        };
        Ok(AllowEntry { net, prefix, port })
    }

    /// Does this entry allow connecting to `addr`?
    pub fn matches(&self, addr: SocketAddr) -> bool {
        let ip = canonical(addr.ip());
        if self.port.is_some_and(|p| p != addr.port()) {
            return false;
        }
        match (ip, canonical(self.net)) {
            (IpAddr::V4(a), IpAddr::V4(n)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
                u32::from(a) & mask == u32::from(n) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(n)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix) };
                u128::from(a) & mask == u128::from(n) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The rules a preview fetch follows, for the first request and for every
/// redirect alike: the server's own listeners are never contacted (a
/// preview must not become a request to our own API from inside), and
/// internal addresses only as far as `url_preview_allow` says.
#[derive(Debug, Clone, Default)]
pub struct PreviewPolicy {
    pub allow: Vec<AllowEntry>,
    /// The addresses the server listens on (client API, metrics).
    pub own: Vec<SocketAddr>,
}

impl PreviewPolicy {
    /// Builds the policy from the configured entries; entries that do not
    /// parse were refused by the config check already and are skipped.
    pub fn new(allow: &[String], own: Vec<SocketAddr>) -> PreviewPolicy {
        let allow = allow.iter().filter_map(|e| AllowEntry::parse(e).ok()).collect();
        PreviewPolicy { allow, own }
    }

    /// May a preview fetch connect to `addr`?
    pub fn allows(&self, addr: SocketAddr) -> bool {
        if self.own.iter().any(|l| is_listener(*l, addr)) {
            return false;
        }
        self.allow.iter().any(|e| e.matches(addr)) || ip_public(addr.ip())
    }
}

/// Would connecting to `addr` reach `listener`? A listener on an
/// unspecified address answers on every local address; those cannot all be
/// known here, so any loopback or internal address with its port counts
/// (a public address of this machine would need the far end to be us).
fn is_listener(listener: SocketAddr, addr: SocketAddr) -> bool {
    if listener.port() != addr.port() {
        return false;
    }
    let (l, ip) = (canonical(listener.ip()), canonical(addr.ip()));
    l == ip || (l.is_unspecified() && (ip.is_loopback() || ip.is_unspecified() || !ip_public(ip)))
}

/// Is `ip` a public address? Loopback, private, link-local, unique-local,
/// CGNAT, multicast, documentation and unspecified ranges are not.
pub fn ip_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_unspecified()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

/// How long a preview stays cached, and how many are kept.
const CACHE_TTL: Duration = Duration::from_secs(3600);
const CACHE_MAX: usize = 256;

/// The in-memory preview cache (on the event loop: no locks).
#[derive(Default)]
pub struct PreviewCache {
    entries: HashMap<String, (Instant, Value)>,
}

impl PreviewCache {
    pub fn get(&self, url: &str) -> Option<Value> {
        self.entries.get(url).filter(|(t, _)| t.elapsed() < CACHE_TTL).map(|(_, v)| v.clone())
    }

    pub fn put(&mut self, url: String, v: Value) {
        if self.entries.len() >= CACHE_MAX {
            self.entries.retain(|_, (t, _)| t.elapsed() < CACHE_TTL);
            if self.entries.len() >= CACHE_MAX
                && let Some(oldest) =
                    self.entries.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(url, (Instant::now(), v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opengraph_tags_win_and_title_and_description_fill_in() {
        let html = r#"<html><head><title>Fallback &amp; title</title>
            <meta property="og:title" content="Cake &quot;recipe&quot;">
            <meta name="description" content='A tasty one'>
            <meta property="og:image" content="/img/cake.png" />
            <META PROPERTY="og:site_name" CONTENT="Bakery"></head></html>"#;
        let og = parse_html(html);
        assert_eq!(og["og:title"], "Cake \"recipe\"");
        assert_eq!(og["og:description"], "A tasty one");
        assert_eq!(og["og:image"], "/img/cake.png");
        assert_eq!(og["og:site_name"], "Bakery");
    }

    #[test]
    fn a_page_without_tags_gives_its_title() {
        let og = parse_html("<title>Just a title</title><p>text</p>");
        assert_eq!(og["og:title"], "Just a title");
        assert!(og.get("og:description").is_none());
    }

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn policy(allow: &[&str], own: &[&str]) -> PreviewPolicy {
        let allow: Vec<String> = allow.iter().map(|s| (*s).to_owned()).collect();
        PreviewPolicy::new(&allow, own.iter().map(|s| sock(s)).collect())
    }

    #[test]
    fn internal_addresses_are_refused_unless_allowed() {
        let none = policy(&[], &[]);
        for bad in [
            "127.0.0.1:80",
            "10.1.2.3:80",
            "192.168.1.10:80",
            "169.254.1.1:80",
            "100.64.0.1:80",
            "[::1]:80",
            "[fd00::1]:80",
            "[fe80::1]:80",
            "[::ffff:127.0.0.1]:80",
            "0.0.0.0:80",
        ] {
            assert!(!none.allows(sock(bad)), "{bad}");
        }
        assert!(none.allows(sock("93.184.216.34:443")));
        assert!(none.allows(sock("[2606:4700::1]:443")));
        let lan = policy(&["192.168.1.0/24"], &[]);
        assert!(lan.allows(sock("192.168.1.10:80")));
        assert!(!lan.allows(sock("192.168.2.10:80")));
        assert!(policy(&["127.0.0.1"], &[]).allows(sock("127.0.0.1:8080")));
        assert!(policy(&["::1"], &[]).allows(sock("[::1]:80")));
    }

    #[test]
    fn an_entry_with_a_port_allows_that_port_only() {
        let p = policy(&["127.0.0.1:8080", "192.168.1.0/24:80", "[fd00::/8]:443"], &[]);
        assert!(p.allows(sock("127.0.0.1:8080")));
        assert!(!p.allows(sock("127.0.0.1:8008")));
        assert!(p.allows(sock("192.168.1.77:80")));
        assert!(!p.allows(sock("192.168.1.77:22")));
        assert!(p.allows(sock("[fd12::1]:443")));
        assert!(!p.allows(sock("[fd12::1]:80")));
        assert!(p.allows(sock("[::ffff:127.0.0.1]:8080")), "mapped addresses match as IPv4");
    }

    #[test]
    fn the_servers_own_listeners_are_never_allowed() {
        let p = policy(&["127.0.0.0/8"], &["127.0.0.1:8008"]);
        assert!(!p.allows(sock("127.0.0.1:8008")));
        assert!(p.allows(sock("127.0.0.1:8009")));
        let any = policy(&["0.0.0.0/0", "::/0"], &["0.0.0.0:8008"]);
        for own in ["127.0.0.1:8008", "127.0.0.2:8008", "192.168.1.5:8008", "[::1]:8008"] {
            assert!(!any.allows(sock(own)), "{own}");
        }
        assert!(any.allows(sock("93.184.216.34:8008")), "another host on the same port");
    }

    #[test]
    fn entities_decode() {
        assert_eq!(unescape("a &lt;b&gt; &#65;&#x42; &unknown; &"), "a <b> AB &unknown; &");
    }
}
