//! A minimal multicast DNS responder (RFC 6762): it answers `A` and `AAAA`
//! questions for one configured `.local` name with this machine's
//! addresses, so phones on the LAN find the server without a DNS server.
//!
//! It only ever answers. It does not probe, announce, browse or offer DNS-SD
//! services, and it sends nothing except replies to queries it received:
//! to the querier, or to the mDNS group on the querier's link. Off by
//! default (`mdns = true` in the config). One task on the event loop; a
//! query costs an interface lookup only when it asks for our name.
//!
//! Packets come from anyone on the LAN, so parsing trusts no count or
//! length: anything malformed is dropped without a reply.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::UdpSocket;

use crate::config::MdnsConfig;

/// The mDNS port; queries from any other port are "legacy unicast" (§6.7).
pub const MDNS_PORT: u16 = 5353;
/// The IPv4 mDNS group (§3).
pub const MDNS_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;
const CLASS_ANY: u16 = 255;
/// Top bit of a question's class: the querier wants a unicast reply (QU, §5.4).
const UNICAST_RESPONSE: u16 = 0x8000;
/// Top bit of a record's class: these records replace any cached ones (§10.2).
const CACHE_FLUSH: u16 = 0x8000;
/// Response, authoritative answer (§18.2, §18.4).
const RESPONSE_FLAGS: u16 = 0x8400;
/// TTL of records that carry a host name (§10).
const HOST_TTL: u32 = 120;
/// Legacy unicast replies must not be cached for longer (§6.7).
const LEGACY_TTL: u32 = 10;
/// The largest mDNS message (§17).
const MAX_PACKET: usize = 9000;
/// At most this many addresses of each family in a reply: bounds its size
/// on a machine with many interfaces.
const MAX_ADDRESSES: usize = 8;
/// A record may be multicast on an interface at most once a second (§6).
const MULTICAST_INTERVAL: Duration = Duration::from_secs(1);
/// Interfaces that come up later (Wi-Fi after boot) join the group then.
const REJOIN_INTERVAL: Duration = Duration::from_secs(30);

/// Why a packet was dropped.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    /// A count or length points past the end of the packet.
    Truncated,
    /// A response, or an opcode other than a standard query (§18.3).
    NotAQuery,
    /// A name over 255 bytes, a reserved label type or a pointer that does
    /// not point backwards.
    BadName,
}

/// One question of a query. The name is kept as its labels, lower-cased:
/// DNS labels may contain dots, so a dotted string could be confused.
#[derive(Debug, PartialEq, Eq)]
pub struct Question {
    pub labels: Vec<Vec<u8>>,
    pub qtype: u16,
    /// The class without the QU bit.
    pub qclass: u16,
    pub unicast_response: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    pub questions: Vec<Question>,
}

/// Parses a DNS query (RFC 1035 §4.1). Only the header and the question
/// section are read; known answers (§7.1) are not used.
pub fn parse_query(packet: &[u8]) -> Result<Query, ParseError> {
    let header = packet.get(..12).ok_or(ParseError::Truncated)?;
    let flags = be16(header, 2);
    if flags & 0x8000 != 0 || (flags >> 11) & 0xf != 0 {
        return Err(ParseError::NotAQuery);
    }
    let mut pos = 12;
    let mut questions = Vec::new();
    for _ in 0..be16(header, 4) {
        let (labels, next) = read_name(packet, pos)?;
        let fixed = packet.get(next..next + 4).ok_or(ParseError::Truncated)?;
        let class = be16(fixed, 2);
        questions.push(Question {
            labels,
            qtype: be16(fixed, 0),
            qclass: class & !UNICAST_RESPONSE,
            unicast_response: class & UNICAST_RESPONSE != 0,
        });
        pos = next + 4;
    }
    Ok(Query { id: be16(header, 0), questions })
}

/// Reads the name at `start`: its labels (lower-cased) and the offset just
/// after it. Compression pointers must point before the pointer itself, and
/// a name is at most 255 bytes, so every name ends (RFC 1035 §4.1.4).
fn read_name(packet: &[u8], start: usize) -> Result<(Vec<Vec<u8>>, usize), ParseError> {
    let mut labels = Vec::new();
    let mut pos = start;
    let mut end = None;
    let mut length = 1;
    loop {
        let len = *packet.get(pos).ok_or(ParseError::Truncated)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Ok((labels, end.unwrap_or(pos + 1))),
            0x00 => {
                let len = usize::from(len);
                length += len + 1;
                if length > 255 {
                    return Err(ParseError::BadName);
                }
                let label = packet.get(pos + 1..pos + 1 + len).ok_or(ParseError::Truncated)?;
                labels.push(label.to_ascii_lowercase());
                pos += 1 + len;
            }
            0xc0 => {
                let low = *packet.get(pos + 1).ok_or(ParseError::Truncated)?;
                let target = usize::from(len & 0x3f) << 8 | usize::from(low);
                if target >= pos {
                    return Err(ParseError::BadName);
                }
                end.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return Err(ParseError::BadName),
        }
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// An address of a network interface that is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl Interface {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix_len.min(32)));
                let mask = mask.unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix_len.min(128)));
                let mask = mask.unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

/// The addresses to answer a querier at `source` with: those of the
/// interfaces on the querier's subnet (the link the query came over, so the
/// querier can reach them). A querier on none of our subnets gets nothing:
/// mDNS is for the local link (§11), and replies must not leave the LAN.
/// IPv6 link-local addresses are left out: without a zone index a phone
/// cannot use them, and a client would try them before the IPv4 address.
pub fn select_addresses(source: IpAddr, interfaces: &[Interface]) -> Vec<IpAddr> {
    let on_link: HashSet<&str> =
        interfaces.iter().filter(|i| i.contains(source)).map(|i| i.name.as_str()).collect();
    let chosen = interfaces.iter().filter(|i| on_link.contains(i.name.as_str()));
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for i in chosen {
        match i.addr {
            IpAddr::V4(a) if !v4.contains(&a) && v4.len() < MAX_ADDRESSES => v4.push(a),
            IpAddr::V6(a)
                if !a.is_unicast_link_local() && !v6.contains(&a) && v6.len() < MAX_ADDRESSES =>
            {
                v6.push(a)
            }
            _ => {}
        }
    }
    v4.into_iter().map(IpAddr::V4).chain(v6.into_iter().map(IpAddr::V6)).collect()
}

/// A reply and where it goes.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub packet: Vec<u8>,
    pub to: SocketAddr,
    /// For a multicast reply: the local IPv4 address of the querier's link,
    /// to send it out of that interface.
    pub via: Option<Ipv4Addr>,
}

/// Answers queries for one name.
#[derive(Debug)]
pub struct Responder {
    labels: Vec<Vec<u8>>,
    /// False on a loopback socket: every reply then goes back to the querier.
    can_multicast: bool,
}

impl Responder {
    /// `name` is a validated `.local` host name (`config::MdnsConfig`).
    pub fn new(name: &str, can_multicast: bool) -> Responder {
        let labels = name.split('.').map(|l| l.as_bytes().to_ascii_lowercase()).collect();
        Responder { labels, can_multicast }
    }

    /// The reply to `packet` from `source`, or `None` when it asks nothing
    /// we answer. `interfaces` is called only for a question about our name.
    pub fn respond(
        &self,
        packet: &[u8],
        source: SocketAddr,
        interfaces: impl FnOnce() -> Vec<Interface>,
    ) -> Option<Reply> {
        let query = parse_query(packet).ok()?;
        let ours: Vec<&Question> = query
            .questions
            .iter()
            .filter(|q| {
                q.labels == self.labels
                    && matches!(q.qclass, CLASS_IN | CLASS_ANY)
                    && matches!(q.qtype, TYPE_A | TYPE_AAAA | TYPE_ANY)
            })
            .collect();
        if ours.is_empty() {
            return None;
        }
        let wants = |t: u16| ours.iter().any(|q| q.qtype == t || q.qtype == TYPE_ANY);
        let (want_a, want_aaaa) = (wants(TYPE_A), wants(TYPE_AAAA));
        let interfaces = interfaces();
        let addresses = select_addresses(source.ip(), &interfaces);
        // §6.2: the other family's addresses go in the additional section,
        // saving the querier a second query.
        let (answers, additional): (Vec<IpAddr>, Vec<IpAddr>) =
            addresses.into_iter().partition(|a| if a.is_ipv4() { want_a } else { want_aaaa });
        if answers.is_empty() {
            return None;
        }
        // §6.7: a query from another port than 5353 is a plain DNS client
        // (e.g. `dig -p 5353`): it gets a conventional unicast reply that
        // repeats the id and the questions, with short TTLs and no
        // cache-flush bit.
        let legacy = source.port() != MDNS_PORT;
        let unicast = legacy || !self.can_multicast || ours.iter().any(|q| q.unicast_response);
        let (ttl, class) =
            if legacy { (LEGACY_TTL, CLASS_IN) } else { (HOST_TTL, CLASS_IN | CACHE_FLUSH) };
        let mut packet = Vec::with_capacity(512);
        let questions = if legacy { ours.as_slice() } else { &[] };
        // §18.1: multicast replies carry id 0; unicast ones echo the query's.
        packet.extend_from_slice(&(if unicast { query.id } else { 0 }).to_be_bytes());
        packet.extend_from_slice(&RESPONSE_FLAGS.to_be_bytes());
        for count in [questions.len(), answers.len(), 0, additional.len()] {
            packet.extend_from_slice(&(count as u16).to_be_bytes());
        }
        for q in questions {
            self.put_name(&mut packet);
            packet.extend_from_slice(&q.qtype.to_be_bytes());
            packet.extend_from_slice(&CLASS_IN.to_be_bytes());
        }
        for addr in answers.iter().chain(&additional) {
            self.put_address(&mut packet, *addr, class, ttl);
        }
        let to = if unicast { source } else { SocketAddr::from((MDNS_GROUP, MDNS_PORT)) };
        let via = (!unicast)
            .then(|| {
                interfaces.iter().find_map(|i| match i.addr {
                    IpAddr::V4(a) if i.contains(source.ip()) => Some(a),
                    _ => None,
                })
            })
            .flatten();
        Some(Reply { packet, to, via })
    }

    fn put_name(&self, out: &mut Vec<u8>) {
        for label in &self.labels {
            out.push(label.len() as u8);
            out.extend_from_slice(label);
        }
        out.push(0);
    }

    fn put_address(&self, out: &mut Vec<u8>, addr: IpAddr, class: u16, ttl: u32) {
        self.put_name(out);
        let (rtype, data) = match addr {
            IpAddr::V4(a) => (TYPE_A, a.octets().to_vec()),
            IpAddr::V6(a) => (TYPE_AAAA, a.octets().to_vec()),
        };
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&class.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(&data);
    }
}

/// Binds the responder and spawns it on the current `LocalSet`. A socket
/// that cannot be bound is logged and leaves mDNS off; the server runs on.
pub fn spawn(config: &MdnsConfig) -> Option<tokio::task::JoinHandle<()>> {
    let multicast = is_multicast_listen(config.listen);
    start(config, config.listen, multicast, bind(config.listen, multicast))
}

/// [`spawn`] on a socket the caller bound, used in place of binding
/// `config.listen`: a test binds port 0 and hands the socket over, so no
/// other process can take the port between binding and serving.
pub fn spawn_on(
    config: &MdnsConfig,
    socket: std::net::UdpSocket,
) -> Option<tokio::task::JoinHandle<()>> {
    let listen = socket.local_addr().unwrap_or(config.listen);
    let multicast = is_multicast_listen(listen);
    start(config, listen, multicast, adopt(socket, multicast))
}

/// Only the mDNS port on a non-loopback address takes part in multicast;
/// anything else answers unicast queries only.
fn is_multicast_listen(listen: SocketAddr) -> bool {
    !listen.ip().is_loopback() && listen.port() == MDNS_PORT
}

fn start(
    config: &MdnsConfig,
    listen: SocketAddr,
    multicast: bool,
    socket: io::Result<UdpSocket>,
) -> Option<tokio::task::JoinHandle<()>> {
    let socket = match socket {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("mDNS: cannot bind udp {listen}: {e}; not answering mDNS");
            return None;
        }
    };
    tracing::info!("mDNS: answering for {} on udp {listen}", config.name);
    Some(tokio::task::spawn_local(run(Responder::new(&config.name, multicast), socket)))
}

fn bind(listen: SocketAddr, multicast: bool) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    // avahi-daemon (on Raspberry Pi OS by default) may hold port 5353 too;
    // with address reuse each socket gets its own copy of every multicast
    // query.
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&listen.into())?;
    adopt(socket.into(), multicast)
}

/// Readies a bound socket for the event loop.
fn adopt(socket: std::net::UdpSocket, multicast: bool) -> io::Result<UdpSocket> {
    socket.set_nonblocking(true)?;
    if multicast {
        // §11: mDNS packets are sent with IP TTL 255, so receivers can tell
        // they came from the local link.
        socket.set_multicast_ttl_v4(255)?;
    }
    UdpSocket::from_std(socket)
}

async fn run(responder: Responder, socket: UdpSocket) {
    let mut buf = vec![0; MAX_PACKET];
    let mut rejoin = tokio::time::interval(REJOIN_INTERVAL);
    let mut last_multicast: HashMap<Option<Ipv4Addr>, Instant> = HashMap::new();
    loop {
        let (len, source) = tokio::select! {
            _ = rejoin.tick(), if responder.can_multicast => {
                join_group(&socket);
                continue;
            }
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!("mDNS: receive: {e}");
                    continue;
                }
            },
        };
        let Some(reply) = responder.respond(&buf[..len], source, interfaces) else { continue };
        if reply.to.ip().is_multicast() {
            let now = Instant::now();
            if last_multicast.get(&reply.via).is_some_and(|t| now - *t < MULTICAST_INTERVAL) {
                continue;
            }
            last_multicast.insert(reply.via, now);
            if let Some(via) = reply.via
                && let Err(e) = SockRef::from(&socket).set_multicast_if_v4(&via)
            {
                tracing::debug!("mDNS: cannot send out of {via}: {e}");
            }
        }
        if let Err(e) = socket.send_to(&reply.packet, reply.to).await {
            tracing::debug!("mDNS: reply to {}: {e}", reply.to);
        }
    }
}

/// Joins the mDNS group on every IPv4 interface but loopback; those already
/// joined answer "address in use", which is fine.
fn join_group(socket: &UdpSocket) {
    for i in interfaces() {
        if let IpAddr::V4(a) = i.addr
            && !a.is_loopback()
            && let Err(e) = socket.join_multicast_v4(MDNS_GROUP, a)
            && e.kind() != io::ErrorKind::AddrInUse
        {
            tracing::debug!("mDNS: cannot join {MDNS_GROUP} on {} ({a}): {e}", i.name);
        }
    }
}

/// The addresses of the interfaces that are up (`getifaddrs(3)`).
pub fn interfaces() -> Vec<Interface> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we own until freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet
        // freed; its name is a NUL-terminated string, and its address and
        // netmask, when not null, are sockaddrs of the family in sa_family.
        unsafe {
            let ifa = &*cur;
            cur = ifa.ifa_next;
            if ifa.ifa_flags & libc::IFF_UP as u32 == 0 || ifa.ifa_addr.is_null() {
                continue;
            }
            let name = std::ffi::CStr::from_ptr(ifa.ifa_name).to_string_lossy().into_owned();
            let (addr, prefix_len) = match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    let mask = if ifa.ifa_netmask.is_null() {
                        32
                    } else {
                        let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
                        u32::from_be(m.sin_addr.s_addr).count_ones() as u8
                    };
                    (IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))), mask)
                }
                libc::AF_INET6 => {
                    let a = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let mask = if ifa.ifa_netmask.is_null() {
                        128
                    } else {
                        let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in6);
                        u128::from_be_bytes(m.sin6_addr.s6_addr).count_ones() as u8
                    };
                    (IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr)), mask)
                }
                _ => continue,
            };
            out.push(Interface { name, addr, prefix_len });
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

#[cfg(test)]
mod tests;
