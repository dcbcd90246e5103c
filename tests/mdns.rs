//! The offline LAN: the mDNS responder answering a unicast query on
//! loopback (nothing here multicasts); without federation, `federation =
//! true` refused and no server discovery.

use std::net::{Ipv4Addr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use hearth::config::MdnsConfig;
use hearth::server::Sockets;

use crate::support::TestServer;

/// A one-question query with the given id, for `name` and `qtype`.
fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut p = id.to_be_bytes().to_vec();
    p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.extend_from_slice(&[0]);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    p
}

/// Sends `packet` to the responder until a reply arrives (it may still be
/// starting) or 10 s pass; returns the reply.
fn ask(socket: &UdpSocket, port: u16, packet: &[u8]) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        socket.send_to(packet, ("127.0.0.1", port)).expect("send");
        socket.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            assert_eq!(from.port(), port, "reply from the responder's port");
            return buf[..n].to_vec();
        }
    }
    panic!("no mDNS reply within 10 s");
}

fn u16_at(p: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([p[at], p[at + 1]])
}

/// Starts a server answering mDNS for `name` on a loopback UDP socket
/// bound here and handed over (no other process can take the port between
/// binding and serving); returns the server and the socket's port.
fn start_responder(name: &str) -> (TestServer, u16) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = socket.local_addr().expect("addr").port();
    let name = name.to_owned();
    let server = TestServer::start_with_sockets(
        move |c| {
            c.mdns = Some(MdnsConfig { name, listen: (Ipv4Addr::LOCALHOST, port).into() });
        },
        Sockets { mdns: Some(socket), ..Sockets::default() },
    );
    (server, port)
}

#[tokio::test]
async fn mdns_answers_a_unicast_query_for_its_name_with_the_loopback_address() {
    let (_server, port) = start_responder("hearth-test.local");
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let q = query(0xbeef, "Hearth-Test.LOCAL", 1);
    let reply = ask(&socket, port, &q);

    // A legacy unicast reply (RFC 6762 §6.7): same id, response +
    // authoritative, the question repeated, one A record, TTL at most 10 s,
    // class IN without the cache-flush bit.
    assert_eq!(u16_at(&reply, 0), 0xbeef);
    assert_eq!(u16_at(&reply, 2), 0x8400);
    assert_eq!(u16_at(&reply, 4), 1, "questions");
    assert_eq!(u16_at(&reply, 6), 1, "answers");
    let name = b"\x0bhearth-test\x05local\x00";
    let question_end = 12 + name.len() + 4;
    assert_eq!(&reply[12..12 + name.len()], name);
    let answer = &reply[question_end..];
    assert_eq!(&answer[..name.len()], name);
    let fixed = &answer[name.len()..];
    assert_eq!(u16_at(fixed, 0), 1, "type A");
    assert_eq!(u16_at(fixed, 2), 1, "class IN");
    let ttl = u32::from_be_bytes(fixed[4..8].try_into().expect("ttl"));
    assert!((1..=10).contains(&ttl), "ttl {ttl}");
    assert_eq!(u16_at(fixed, 8), 4, "rdlength");
    assert_eq!(&fixed[10..14], &[127, 0, 0, 1]);
}

#[tokio::test]
async fn mdns_ignores_other_names_and_survives_malformed_packets() {
    let (_server, port) = start_responder("hearth-test.local");
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    // Make sure it is up before sending what must go unanswered.
    ask(&socket, port, &query(1, "hearth-test.local", 1));

    for packet in [
        query(2, "someone-else.local", 1),
        query(3, "hearth-test.local", 15),
        vec![0xff; 3],
        // A name whose compression pointer points at itself.
        vec![0, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1],
    ] {
        socket.send_to(&packet, ("127.0.0.1", port)).expect("send");
    }
    // Datagrams on loopback arrive in order: the next reply must be to the
    // last query, none to the ones before it.
    let reply = ask(&socket, port, &query(5, "hearth-test.local", 1));
    assert_eq!(u16_at(&reply, 0), 5, "the first reply after them answers query 5");
}

#[test]
fn federation_true_stops_the_server_with_a_config_error() {
    let temp = tempfile::tempdir().expect("tempdir");
    let config = temp.path().join("hearth.toml");
    std::fs::write(&config, "federation = true\nlisten = \"127.0.0.1:0\"\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(temp.path().join("data"))
        .output()
        .expect("run hearth");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("federation:"), "{stderr}");
}

#[tokio::test]
async fn without_federation_there_is_no_server_well_known() {
    // Serving /.well-known/matrix/server would invite other servers to
    // federate with one that cannot; it comes with federation.
    let s = TestServer::start();
    let r = s.client().get("/.well-known/matrix/server").await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.errcode().starts_with("M_"), "{}", r.body);
}
