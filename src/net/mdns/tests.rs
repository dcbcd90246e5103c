//! Packet parsing and reply building, with malformed and hostile input.

use super::*;

/// A query: `(name, qtype, qclass)` per question, id 0x1234.
fn query(questions: &[(&str, u16, u16)]) -> Vec<u8> {
    let mut p = vec![0x12, 0x34, 0, 0];
    p.extend_from_slice(&(questions.len() as u16).to_be_bytes());
    p.extend_from_slice(&[0; 6]);
    for (name, qtype, qclass) in questions {
        for label in name.split('.') {
            p.push(label.len() as u8);
            p.extend_from_slice(label.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&qclass.to_be_bytes());
    }
    p
}

fn lan() -> Vec<Interface> {
    let i = |name: &str, addr: &str, prefix_len| Interface {
        name: name.into(),
        addr: addr.parse().expect("address"),
        prefix_len,
    };
    vec![
        i("lo", "127.0.0.1", 8),
        i("lo", "::1", 128),
        i("eth0", "192.168.1.10", 24),
        i("eth0", "fe80::1", 64),
        i("eth0", "fd00::10", 64),
        i("wlan0", "10.0.0.5", 24),
    ]
}

fn from(addr: &str) -> SocketAddr {
    addr.parse().expect("socket address")
}

/// A record of a reply: (type, class, ttl, address).
type Record = (u16, u16, u32, IpAddr);

/// Decodes a reply: (id, flags, questions, answers, additional records).
fn decode(p: &[u8]) -> (u16, u16, Vec<Question>, Vec<Record>, Vec<Record>) {
    let counts: Vec<usize> = (0..4).map(|i| usize::from(be16(p, 4 + 2 * i))).collect();
    let mut pos = 12;
    let mut questions = Vec::new();
    for _ in 0..counts[0] {
        let (labels, next) = read_name(p, pos).expect("question name");
        let class = be16(p, next + 2);
        questions.push(Question {
            labels,
            qtype: be16(p, next),
            qclass: class & !UNICAST_RESPONSE,
            unicast_response: class & UNICAST_RESPONSE != 0,
        });
        pos = next + 4;
    }
    let mut records = Vec::new();
    for _ in 0..counts[1] + counts[3] {
        let (labels, next) = read_name(p, pos).expect("record name");
        assert_eq!(labels, [b"hearth".to_vec(), b"local".to_vec()]);
        let (rtype, class) = (be16(p, next), be16(p, next + 2));
        let ttl = u32::from_be_bytes(p[next + 4..next + 8].try_into().expect("ttl"));
        let len = usize::from(be16(p, next + 8));
        let data = &p[next + 10..next + 10 + len];
        let addr = match rtype {
            TYPE_A => IpAddr::from(<[u8; 4]>::try_from(data).expect("A is 4 bytes")),
            TYPE_AAAA => IpAddr::from(<[u8; 16]>::try_from(data).expect("AAAA is 16 bytes")),
            t => panic!("unexpected record type {t}"),
        };
        records.push((rtype, class, ttl, addr));
        pos = next + 10 + len;
    }
    assert_eq!(pos, p.len(), "trailing bytes");
    assert_eq!(counts[2], 0, "no authority records");
    let additional = records.split_off(counts[1]);
    (be16(p, 0), be16(p, 2), questions, records, additional)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[test]
fn parses_questions_with_compressed_names_and_the_qu_bit() {
    let mut p = query(&[("Hearth.LOCAL", TYPE_A, CLASS_IN | UNICAST_RESPONSE)]);
    p[5] = 2;
    // The second question's name is a pointer to the first's (offset 12).
    p.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1]);
    let q = parse_query(&p).expect("valid");
    assert_eq!(q.id, 0x1234);
    let name = vec![b"hearth".to_vec(), b"local".to_vec()];
    assert_eq!(
        q.questions,
        [
            Question {
                labels: name.clone(),
                qtype: TYPE_A,
                qclass: CLASS_IN,
                unicast_response: true
            },
            Question { labels: name, qtype: TYPE_AAAA, qclass: CLASS_IN, unicast_response: false },
        ]
    );
}

#[test]
fn responses_and_other_opcodes_are_not_queries() {
    let mut p = query(&[("hearth.local", TYPE_A, CLASS_IN)]);
    p[2] = 0x84;
    assert_eq!(parse_query(&p), Err(ParseError::NotAQuery));
    p[2] = 0x28; // opcode 5, UPDATE
    assert_eq!(parse_query(&p), Err(ParseError::NotAQuery));
}

#[test]
fn every_truncation_of_a_query_is_rejected() {
    let p = query(&[("hearth.local", TYPE_A, CLASS_IN)]);
    let r = Responder::new("hearth.local", true);
    for len in 0..p.len() {
        assert!(parse_query(&p[..len]).is_err(), "prefix of {len} bytes parsed");
        assert_eq!(r.respond(&p[..len], from("192.168.1.50:5353"), lan), None);
    }
    assert!(parse_query(&p).is_ok());
}

#[test]
fn pointer_loops_and_bad_labels_are_rejected() {
    let header = |extra: &[u8]| {
        let mut p = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(extra);
        p
    };
    // A pointer to itself, and one pointing forwards.
    assert_eq!(parse_query(&header(&[0xc0, 12, 0, 1, 0, 1])), Err(ParseError::BadName));
    assert_eq!(parse_query(&header(&[0xc0, 14, 0, 0, 1, 0, 1])), Err(ParseError::BadName));
    // A label followed by a pointer back to it: a loop ended by the length limit.
    assert_eq!(parse_query(&header(&[1, b'a', 0xc0, 12, 0, 1, 0, 1])), Err(ParseError::BadName));
    // Reserved label types 0x40 and 0x80.
    assert_eq!(parse_query(&header(&[0x41, b'a', 0, 0, 1, 0, 1])), Err(ParseError::BadName));
    assert_eq!(parse_query(&header(&[0x81, b'a', 0, 0, 1, 0, 1])), Err(ParseError::BadName));
    // A pointer cut in half.
    assert_eq!(parse_query(&header(&[0xc0])), Err(ParseError::Truncated));
}

#[test]
fn names_longer_than_255_bytes_are_rejected() {
    let long = vec!["a".repeat(63); 4].join(".");
    assert_eq!(parse_query(&query(&[(&long, TYPE_A, CLASS_IN)])), Err(ParseError::BadName));
    let fits = vec!["a".repeat(63); 3].join(".") + "." + &"a".repeat(61);
    assert!(parse_query(&query(&[(&fits, TYPE_A, CLASS_IN)])).is_ok());
}

#[test]
fn a_question_count_beyond_the_packet_is_truncated() {
    let mut p = query(&[("hearth.local", TYPE_A, CLASS_IN)]);
    p[4] = 0xff;
    p[5] = 0xff;
    assert_eq!(parse_query(&p), Err(ParseError::Truncated));
}

#[test]
fn random_and_mutated_packets_never_panic() {
    let r = Responder::new("hearth.local", true);
    let valid = query(&[("hearth.local", TYPE_ANY, CLASS_IN), ("other.local", TYPE_A, CLASS_IN)]);
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..20_000 {
        let mut p = if round % 2 == 0 {
            let len = (next() % 80) as usize;
            (0..len).map(|_| next() as u8).collect()
        } else {
            valid.clone()
        };
        for _ in 0..1 + next() % 4 {
            if !p.is_empty() {
                let i = (next() as usize) % p.len();
                p[i] = next() as u8;
            }
        }
        // Answers must come from our name; anything else is dropped.
        if let Some(reply) = r.respond(&p, from("192.168.1.50:5353"), lan) {
            decode(&reply.packet);
        }
    }
}

#[test]
fn a_legacy_unicast_query_gets_a_conventional_reply_with_the_querier_link_address() {
    let r = Responder::new("hearth.local", true);
    let p = query(&[("hearth.local", TYPE_A, CLASS_IN)]);
    let reply = r.respond(&p, from("192.168.1.50:40000"), lan).expect("answered");
    assert_eq!(reply.to, from("192.168.1.50:40000"));
    assert_eq!(reply.via, None);
    let (id, flags, questions, answers, additional) = decode(&reply.packet);
    assert_eq!((id, flags), (0x1234, RESPONSE_FLAGS));
    assert_eq!(questions.len(), 1);
    assert_eq!((questions[0].qtype, questions[0].qclass), (TYPE_A, CLASS_IN));
    assert_eq!(answers, [(TYPE_A, CLASS_IN, LEGACY_TTL, ip("192.168.1.10"))]);
    // The IPv6 address of the same link, but not its link-local one.
    assert_eq!(additional, [(TYPE_AAAA, CLASS_IN, LEGACY_TTL, ip("fd00::10"))]);
}

#[test]
fn a_multicast_query_gets_a_multicast_reply_out_of_the_querier_link() {
    let r = Responder::new("hearth.local", true);
    let p = query(&[("hearth.local", TYPE_A, CLASS_IN)]);
    let reply = r.respond(&p, from("10.0.0.77:5353"), lan).expect("answered");
    assert_eq!(reply.to, from("224.0.0.251:5353"));
    assert_eq!(reply.via, Some(Ipv4Addr::new(10, 0, 0, 5)));
    let (id, _, questions, answers, additional) = decode(&reply.packet);
    assert_eq!(id, 0);
    assert!(questions.is_empty());
    assert_eq!(answers, [(TYPE_A, CLASS_IN | CACHE_FLUSH, HOST_TTL, ip("10.0.0.5"))]);
    // wlan0 has no IPv6 address, and eth0's are not on the querier's link.
    assert!(additional.is_empty());
    // Nothing on wlan0 answers AAAA.
    let p = query(&[("hearth.local", TYPE_AAAA, CLASS_IN)]);
    assert_eq!(r.respond(&p, from("10.0.0.77:5353"), lan), None);
}

#[test]
fn multicast_answers_carry_the_cache_flush_bit_and_the_host_ttl() {
    let r = Responder::new("hearth.local", true);
    let p = query(&[("HEARTH.Local", TYPE_ANY, CLASS_IN)]);
    let reply = r.respond(&p, from("192.168.1.50:5353"), lan).expect("answered");
    let (_, _, _, answers, additional) = decode(&reply.packet);
    assert_eq!(
        answers,
        [
            (TYPE_A, CLASS_IN | CACHE_FLUSH, HOST_TTL, ip("192.168.1.10")),
            (TYPE_AAAA, CLASS_IN | CACHE_FLUSH, HOST_TTL, ip("fd00::10")),
        ]
    );
    assert!(additional.is_empty());
}

#[test]
fn the_qu_bit_or_a_loopback_socket_makes_the_reply_unicast() {
    let p = query(&[("hearth.local", TYPE_A, CLASS_IN | UNICAST_RESPONSE)]);
    let reply = Responder::new("hearth.local", true)
        .respond(&p, from("192.168.1.50:5353"), lan)
        .expect("qu");
    assert_eq!(reply.to, from("192.168.1.50:5353"));
    assert_eq!(decode(&reply.packet).0, 0x1234);
    let p = query(&[("hearth.local", TYPE_A, CLASS_IN)]);
    let reply = Responder::new("hearth.local", false)
        .respond(&p, from("127.0.0.1:5353"), lan)
        .expect("loopback");
    assert_eq!(reply.to, from("127.0.0.1:5353"));
    let (_, _, _, answers, additional) = decode(&reply.packet);
    assert_eq!(answers, [(TYPE_A, CLASS_IN | CACHE_FLUSH, HOST_TTL, ip("127.0.0.1"))]);
    assert_eq!(additional, [(TYPE_AAAA, CLASS_IN | CACHE_FLUSH, HOST_TTL, ip("::1"))]);
}

#[test]
fn other_names_classes_and_types_get_no_reply_and_no_interface_lookup() {
    let r = Responder::new("hearth.local", true);
    for p in [
        query(&[("other.local", TYPE_A, CLASS_IN)]),
        query(&[("hearth.local.local", TYPE_A, CLASS_IN)]),
        query(&[("local", TYPE_A, CLASS_IN)]),
        query(&[("hearth.local", 15, CLASS_IN)]),
        query(&[("hearth.local", TYPE_A, 3)]),
    ] {
        let reply = r.respond(&p, from("192.168.1.50:5353"), || panic!("looked up interfaces"));
        assert_eq!(reply, None);
    }
}

#[test]
fn no_reply_without_an_address_of_the_asked_family() {
    let r = Responder::new("hearth.local", true);
    let v4_only =
        || vec![Interface { name: "eth0".into(), addr: ip("192.168.1.10"), prefix_len: 24 }];
    let p = query(&[("hearth.local", TYPE_AAAA, CLASS_IN)]);
    assert_eq!(r.respond(&p, from("192.168.1.50:5353"), v4_only), None);
    assert_eq!(r.respond(&p, from("192.168.1.50:5353"), Vec::new), None);
}

#[test]
fn a_querier_off_our_links_gets_no_reply() {
    assert!(select_addresses(ip("172.16.0.9"), &lan()).is_empty());
    let p = query(&[("hearth.local", TYPE_ANY, CLASS_IN)]);
    let r = Responder::new("hearth.local", true);
    assert_eq!(r.respond(&p, from("172.16.0.9:5353"), lan), None);
    assert_eq!(r.respond(&p, from("8.8.8.8:40000"), lan), None);
    let local = select_addresses(ip("127.0.0.1"), &lan());
    assert_eq!(local, [ip("127.0.0.1"), ip("::1")]);
}

#[test]
fn subnet_membership_follows_the_prefix_length() {
    let i = |addr: &str, prefix_len| Interface { name: "x".into(), addr: ip(addr), prefix_len };
    assert!(i("192.168.1.10", 24).contains(ip("192.168.1.200")));
    assert!(!i("192.168.1.10", 24).contains(ip("192.168.2.10")));
    assert!(!i("192.168.1.10", 32).contains(ip("192.168.1.11")));
    assert!(i("192.168.1.10", 0).contains(ip("8.8.8.8")));
    assert!(i("fd00::10", 64).contains(ip("fd00::ffff")));
    assert!(!i("fd00::10", 64).contains(ip("fd01::10")));
    assert!(!i("fd00::10", 0).contains(ip("10.0.0.1")));
}

#[test]
fn this_machine_has_a_loopback_interface() {
    let all = interfaces();
    assert!(
        all.iter().any(|i| i.addr == ip("127.0.0.1") && i.prefix_len == 8),
        "getifaddrs found {all:?}"
    );
}
