//! Tests of hashing, event IDs and signatures, many against the spec's
//! worked examples.

use serde_json::json;

use super::*;

// appendices/#cryptographic-test-vectors
const TEST_SEED: &str = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
const TEST_SERVER: &str = "domain";
const TEST_KEY_ID: &str = "ed25519:1";

fn test_key() -> ServerKey {
    let seed: [u8; 32] = decode_unpadded_base64(TEST_SEED)
        .expect("spec seed is Base64")
        .try_into()
        .expect("spec seed is 32 bytes");
    ServerKey::from_seed(&seed, TEST_KEY_ID)
}

/// The first, minimal event of appendices/#event-signing.
fn minimal_event() -> Value {
    json!({
        "room_id": "!x:domain",
        "sender": "@a:domain",
        "origin": "domain",
        "origin_server_ts": 1000000,
        "signatures": {},
        "hashes": {},
        "type": "X",
        "content": {},
        "prev_events": [],
        "auth_events": [],
        "depth": 3,
        "unsigned": {
            "age_ts": 1000000
        }
    })
}

/// The second event of appendices/#event-signing, with redactable content.
fn message_event() -> Value {
    json!({
        "content": {
            "body": "Here is the message content"
        },
        "event_id": "$0:domain",
        "origin": "domain",
        "origin_server_ts": 1000000,
        "type": "m.room.message",
        "room_id": "!r:domain",
        "sender": "@u:domain",
        "signatures": {},
        "unsigned": {
            "age_ts": 1000000
        }
    })
}

/// A v12-shaped create PDU (no `room_id`).
fn create_event() -> Value {
    json!({
        "auth_events": [],
        "content": {"room_version": "12"},
        "depth": 1,
        "origin_server_ts": 1_700_000_000_000_u64,
        "prev_events": [],
        "sender": "@alice:example.org",
        "state_key": "",
        "type": "m.room.create",
    })
}

#[test]
fn unpadded_base64_matches_spec_examples() {
    let examples = [
        ("", ""),
        ("f", "Zg"),
        ("fo", "Zm8"),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg"),
        ("fooba", "Zm9vYmE"),
        ("foobar", "Zm9vYmFy"),
    ];
    for (plain, encoded) in examples {
        assert_eq!(encode_unpadded_base64(plain.as_bytes()), encoded);
        assert_eq!(decode_unpadded_base64(encoded).expect("decodes"), plain.as_bytes());
    }
}

#[test]
fn base64_decoding_accepts_padding() {
    assert_eq!(decode_unpadded_base64("Zg==").expect("decodes"), b"f");
    assert_eq!(decode_url_safe_base64("Zm8=").expect("decodes"), b"fo");
}

#[test]
fn url_safe_base64_uses_minus_and_underscore() {
    let bytes = [0xfb, 0xff, 0xbf];
    assert_eq!(encode_unpadded_base64(&bytes), "+/+/");
    assert_eq!(encode_url_safe_base64(&bytes), "-_-_");
    assert_eq!(decode_url_safe_base64("-_-_").expect("decodes"), bytes);
    assert!(decode_url_safe_base64("+/+/").is_err());
    assert!(decode_unpadded_base64("-_-_").is_err());
}

#[test]
fn spec_test_seed_decodes_despite_trailing_bits() {
    assert_eq!(test_key().seed().len(), 32);
    assert_eq!(encode_unpadded_base64(&test_key().seed())[..42], TEST_SEED[..42]);
}

#[test]
fn spec_json_signing_empty_object() {
    let mut value = json!({});
    sign_json(&mut value, TEST_SERVER, &test_key()).expect("signs");
    assert_eq!(
        value,
        json!({
            "signatures": {
                "domain": {
                    "ed25519:1": "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"
                }
            }
        })
    );
}

#[test]
fn spec_json_signing_object_with_data() {
    let mut value = json!({"one": 1, "two": "Two"});
    sign_json(&mut value, TEST_SERVER, &test_key()).expect("signs");
    assert_eq!(
        value,
        json!({
            "one": 1,
            "signatures": {
                "domain": {
                    "ed25519:1": "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
                }
            },
            "two": "Two"
        })
    );
}

// The event signing vectors predate v11 and sign a redacted form that
// keeps the top-level `origin`, so they match the v10 algorithm.

#[test]
fn spec_event_signing_minimal_event() {
    let mut event = minimal_event();
    hash_and_sign_event(&mut event, RoomVersion::V10, TEST_SERVER, &test_key()).expect("signs");
    assert_eq!(
        event,
        json!({
            "auth_events": [],
            "content": {},
            "depth": 3,
            "hashes": {
                "sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"
            },
            "origin": "domain",
            "origin_server_ts": 1000000,
            "prev_events": [],
            "room_id": "!x:domain",
            "sender": "@a:domain",
            "signatures": {
                "domain": {
                    "ed25519:1": "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"
                }
            },
            "type": "X",
            "unsigned": {
                "age_ts": 1000000
            }
        })
    );
}

#[test]
fn spec_event_signing_redactable_event() {
    let mut event = message_event();
    hash_and_sign_event(&mut event, RoomVersion::V10, TEST_SERVER, &test_key()).expect("signs");
    assert_eq!(
        event,
        json!({
            "content": {
                "body": "Here is the message content"
            },
            "event_id": "$0:domain",
            "hashes": {
                "sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"
            },
            "origin": "domain",
            "origin_server_ts": 1000000,
            "type": "m.room.message",
            "room_id": "!r:domain",
            "sender": "@u:domain",
            "signatures": {
                "domain": {
                    "ed25519:1": "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA"
                }
            },
            "unsigned": {
                "age_ts": 1000000
            }
        })
    );
}

#[test]
fn spec_content_hashes_do_not_depend_on_the_room_version() {
    for version in RoomVersion::ALL {
        for (mut event, expected) in [
            (minimal_event(), "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"),
            (message_event(), "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"),
        ] {
            hash_and_sign_event(&mut event, version, TEST_SERVER, &test_key()).expect("signs");
            assert_eq!(event["hashes"]["sha256"], expected, "{version}");
            assert_eq!(content_hash_matches(&event), Ok(true), "{version}");
        }
    }
}

#[test]
fn event_signatures_from_v11_differ_because_origin_is_redacted() {
    let mut v10 = minimal_event();
    let mut v11 = minimal_event();
    hash_and_sign_event(&mut v10, RoomVersion::V10, TEST_SERVER, &test_key()).expect("signs");
    hash_and_sign_event(&mut v11, RoomVersion::V11, TEST_SERVER, &test_key()).expect("signs");
    assert_ne!(v10["signatures"], v11["signatures"]);
    verify_event(&v11, RoomVersion::V11, TEST_SERVER, TEST_KEY_ID, &test_key().verifying_key())
        .expect("v11 signature verifies");
}

#[test]
fn signed_json_verifies() {
    let key = test_key();
    let mut value = json!({"one": 1, "unsigned": {"age": 3}});
    sign_json(&mut value, TEST_SERVER, &key).expect("signs");
    assert_eq!(value["unsigned"], json!({"age": 3}));
    assert_eq!(verify_json(&value, TEST_SERVER, TEST_KEY_ID, &key.verifying_key()), Ok(()));
}

#[test]
fn verification_ignores_unsigned_and_other_signatures() {
    let key = test_key();
    let mut value = json!({"one": 1});
    sign_json(&mut value, TEST_SERVER, &key).expect("signs");
    value["unsigned"] = json!({"age": 99});
    value["signatures"]["other.example"] = json!({"ed25519:x": "AAAA"});
    assert_eq!(verify_json(&value, TEST_SERVER, TEST_KEY_ID, &key.verifying_key()), Ok(()));
}

#[test]
fn sign_json_keeps_existing_signatures() {
    let key = test_key();
    let mut value = json!({
        "one": 1,
        "signatures": {"other.example": {"ed25519:a": "sig"}, "domain": {"ed25519:old": "old"}},
    });
    sign_json(&mut value, TEST_SERVER, &key).expect("signs");
    assert_eq!(value["signatures"]["other.example"]["ed25519:a"], "sig");
    assert_eq!(value["signatures"]["domain"]["ed25519:old"], "old");
    assert!(value["signatures"]["domain"]["ed25519:1"].is_string());
}

#[test]
fn tampered_json_does_not_verify() {
    let key = test_key();
    let mut value = json!({"one": 1});
    sign_json(&mut value, TEST_SERVER, &key).expect("signs");
    value["one"] = json!(2);
    assert_eq!(
        verify_json(&value, TEST_SERVER, TEST_KEY_ID, &key.verifying_key()),
        Err(SignatureError::InvalidSignature)
    );
}

#[test]
fn wrong_key_does_not_verify() {
    let mut value = json!({"one": 1});
    sign_json(&mut value, TEST_SERVER, &test_key()).expect("signs");
    let other = ServerKey::from_seed(&[7; 32], TEST_KEY_ID);
    assert_eq!(
        verify_json(&value, TEST_SERVER, TEST_KEY_ID, &other.verifying_key()),
        Err(SignatureError::InvalidSignature)
    );
}

#[test]
fn verification_reports_missing_and_malformed_signatures() {
    let key = test_key().verifying_key();
    assert_eq!(
        verify_json(&json!({"one": 1}), TEST_SERVER, TEST_KEY_ID, &key),
        Err(SignatureError::MissingSignature)
    );
    let wrong_server = json!({"signatures": {"elsewhere": {"ed25519:1": "AAAA"}}});
    assert_eq!(
        verify_json(&wrong_server, TEST_SERVER, TEST_KEY_ID, &key),
        Err(SignatureError::MissingSignature)
    );
    let not_base64 = json!({"signatures": {"domain": {"ed25519:1": "!!!"}}});
    assert_eq!(
        verify_json(&not_base64, TEST_SERVER, TEST_KEY_ID, &key),
        Err(SignatureError::MalformedSignature)
    );
    let too_short = json!({"signatures": {"domain": {"ed25519:1": "AAAA"}}});
    assert_eq!(
        verify_json(&too_short, TEST_SERVER, TEST_KEY_ID, &key),
        Err(SignatureError::MalformedSignature)
    );
    assert_eq!(
        verify_json(&too_short, TEST_SERVER, "curve25519:1", &key),
        Err(SignatureError::UnsupportedAlgorithm)
    );
    assert_eq!(
        verify_json(&json!([]), TEST_SERVER, TEST_KEY_ID, &key),
        Err(SignatureError::NotAnObject)
    );
}

#[test]
fn signing_non_canonical_json_fails_and_leaves_value_unchanged() {
    let mut value = json!({"half": 2.5, "signatures": {}, "unsigned": {"a": 1}});
    let before = value.clone();
    assert!(matches!(
        sign_json(&mut value, TEST_SERVER, &test_key()),
        Err(SignatureError::Canonical(CanonicalJsonError::Float(_)))
    ));
    assert_eq!(value, before);
    assert_eq!(
        sign_json(&mut json!("text"), TEST_SERVER, &test_key()),
        Err(SignatureError::NotAnObject)
    );
}

#[test]
fn event_signature_survives_redaction() {
    let key = test_key();
    for version in RoomVersion::ALL {
        let mut event = message_event();
        event.as_object_mut().expect("object").remove("event_id");
        hash_and_sign_event(&mut event, version, TEST_SERVER, &key).expect("signs");
        let redacted = redact(&event, version);
        for copy in [&event, &redacted] {
            verify_event(copy, version, TEST_SERVER, TEST_KEY_ID, &key.verifying_key())
                .expect("signature verifies");
        }
        assert_eq!(content_hash_matches(&event), Ok(true));
        assert_eq!(content_hash_matches(&redacted), Ok(false));
    }
}

#[test]
fn returned_event_id_is_the_reference_hash_of_the_signed_event() {
    for version in RoomVersion::ALL {
        let mut event = create_event();
        let id = hash_and_sign_event(&mut event, version, TEST_SERVER, &test_key()).expect("signs");
        assert_eq!(Ok(id.clone()), event_id(&event, version));
        assert!(id.starts_with('$'));
        // 32 bytes of unpadded Base64 are 43 characters.
        assert_eq!(id.len(), 44, "{id}");
        assert!(
            id[1..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{id}"
        );
    }
}

#[test]
fn event_id_changes_when_content_changes() {
    for version in RoomVersion::ALL {
        // Content that survives redaction, so the reference hash sees it
        // directly, and content that does not, which it sees through the
        // content hash.
        for (event_type, content) in [
            ("m.room.create", json!({"room_version": "11"})),
            ("m.room.message", json!({"body": "edited"})),
        ] {
            let mut original = create_event();
            original["type"] = json!(event_type);
            let mut changed = original.clone();
            changed["content"] = content;
            let original_id = hash_and_sign_event(&mut original, version, TEST_SERVER, &test_key())
                .expect("signs");
            let changed_id = hash_and_sign_event(&mut changed, version, TEST_SERVER, &test_key())
                .expect("signs");
            assert_ne!(original_id, changed_id, "{event_type} {version}");
        }
    }
}

#[test]
fn event_id_ignores_unsigned_and_signatures() {
    for version in RoomVersion::ALL {
        let mut event = create_event();
        let id = hash_and_sign_event(&mut event, version, TEST_SERVER, &test_key()).expect("signs");
        event["unsigned"] = json!({"age": 1234, "transaction_id": "t"});
        event["signatures"]["other.example"] = json!({"ed25519:z": "sig"});
        assert_eq!(event_id(&event, version), Ok(id));
    }
}

#[test]
fn reference_hash_rejects_non_canonical_events() {
    let mut event = create_event();
    event["depth"] = json!(1.5);
    assert!(matches!(event_id(&event, RoomVersion::V12), Err(CanonicalJsonError::Float(_))));
    assert!(matches!(content_hash(&event), Err(CanonicalJsonError::Float(_))));
}

#[test]
fn v12_room_id_is_derived_deterministically_from_the_create_event() {
    let mut create = create_event();
    hash_and_sign_event(&mut create, RoomVersion::V12, TEST_SERVER, &test_key()).expect("signs");
    let room_id = room_id_from_create_event(&create, RoomVersion::V12).expect("hashes");
    assert_eq!(room_id_from_create_event(&create, RoomVersion::V12), Ok(room_id.clone()));
    assert!(room_id.starts_with('!'));
    let event_id = event_id(&create, RoomVersion::V12).expect("hashes");
    assert_eq!(room_id[1..], event_id[1..]);

    let mut other = create_event();
    other["origin_server_ts"] = json!(1_700_000_000_001_u64);
    hash_and_sign_event(&mut other, RoomVersion::V12, TEST_SERVER, &test_key()).expect("signs");
    assert_ne!(room_id_from_create_event(&other, RoomVersion::V12), Ok(room_id));
}

#[test]
fn hash_and_sign_replaces_stale_hashes() {
    let mut event = create_event();
    event["hashes"] = json!({"sha256": "stale", "sha512": "old"});
    hash_and_sign_event(&mut event, RoomVersion::V12, TEST_SERVER, &test_key()).expect("signs");
    assert_eq!(event["hashes"].as_object().map(Map::len), Some(1));
    assert_eq!(content_hash_matches(&event), Ok(true));
}

#[test]
fn server_key_round_trips_through_its_seed() {
    let key = ServerKey::generate();
    assert!(key.key_id().starts_with("ed25519:"));
    let version = &key.key_id()["ed25519:".len()..];
    assert!(!version.is_empty());
    assert!(version.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    let restored = ServerKey::from_seed(&key.seed(), key.key_id());
    assert_eq!(restored.public_key_base64(), key.public_key_base64());
    assert_eq!(
        decode_unpadded_base64(&key.public_key_base64()).expect("Base64"),
        key.verifying_key().as_bytes()
    );
}

#[test]
fn generated_keys_differ() {
    assert_ne!(ServerKey::generate().seed(), ServerKey::generate().seed());
}

#[test]
fn debug_output_hides_the_seed() {
    let key = test_key();
    let debug = format!("{key:?}");
    assert!(debug.contains("ed25519:1"), "{debug}");
    assert!(!debug.contains(&encode_unpadded_base64(&key.seed())), "{debug}");
}
