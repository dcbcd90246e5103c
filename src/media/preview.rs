//! Link previews (spec: content repository, `GET /media/preview_url`): the
//! pure parts — reading OpenGraph and `<title>`/description out of HTML, and
//! deciding which addresses a preview fetch may contact.
//!
//! The parser is deliberately small: it scans tags, never builds a DOM, and
//! looks only at the first 256 KiB of a page, so a hostile page costs a
//! bounded amount of work.

use std::net::IpAddr;

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

/// May a preview fetch connect to `ip`? Loopback, private, link-local,
/// unique-local, CGNAT, multicast, documentation and unspecified ranges are
/// refused unless the address is in `allowed` (CIDR strings, so a LAN
/// install can preview its own hosts).
pub fn ip_allowed(ip: IpAddr, allowed: &[String]) -> bool {
    if allowed.iter().any(|cidr| in_cidr(ip, cidr)) {
        return true;
    }
    match ip {
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
            if let Some(v4) = v6.to_ipv4_mapped() {
                return ip_allowed(IpAddr::V4(v4), allowed);
            }
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

/// Is `ip` inside `cidr` (`a.b.c.d/n`, `x::/n`, or a bare address)?
pub fn in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let (net, bits) = match cidr.split_once('/') {
        Some((n, b)) => (n, b.parse::<u32>().ok()),
        None => (cidr, None),
    };
    let Ok(net) = net.trim().parse::<IpAddr>() else { return false };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
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

    #[test]
    fn internal_addresses_are_refused_unless_allowed() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.10",
            "169.254.1.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            let ip: IpAddr = bad.parse().expect("ip");
            assert!(!ip_allowed(ip, &[]), "{bad}");
        }
        assert!(ip_allowed("93.184.216.34".parse().expect("ip"), &[]));
        assert!(ip_allowed("2606:4700::1".parse().expect("ip"), &[]));
        let lan = vec!["192.168.1.0/24".to_owned()];
        assert!(ip_allowed("192.168.1.10".parse().expect("ip"), &lan));
        assert!(!ip_allowed("192.168.2.10".parse().expect("ip"), &lan));
        assert!(ip_allowed("127.0.0.1".parse().expect("ip"), &["127.0.0.1".to_owned()]));
    }

    #[test]
    fn entities_decode() {
        assert_eq!(unescape("a &lt;b&gt; &#65;&#x42; &unknown; &"), "a <b> AB &unknown; &");
    }
}
