//! Event hashes, event IDs and ed25519 signatures on JSON and PDUs.
//!
//! spec: server-server-api/#calculating-the-content-hash-for-an-event,
//! server-server-api/#calculating-the-reference-hash-for-an-event,
//! server-server-api/#signing-events, appendices/#signing-details,
//! appendices/#checking-for-a-signature, rooms/v4/#event-ids, and
//! appendices/#room-ids (v12 room IDs).
//!
//! This module owns the server's signing key type and every byte that goes
//! into a hash or a signature. It works on raw `serde_json::Value`s because
//! hashes and signatures must cover keys Hearth does not model. It does not
//! fetch or cache remote keys, decide which servers must have signed an
//! event, or run auth rules.

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::room::canonical::{CanonicalJsonError, canonical_json_bytes_without};
use crate::room::redaction::redact;
use crate::room::version::RoomVersion;

/// Decoding accepts input with or without `=` padding, as the spec asks
/// (appendices/#unpadded-base64). It also ignores non-zero trailing bits:
/// the spec's own test signing key seed has them, and the bytes, not their
/// spelling, are what signatures and hashes are checked against.
const DECODE_CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_encode_padding(false)
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);

/// Standard alphabet, no padding: hashes, signatures and public keys.
const UNPADDED_BASE64: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, DECODE_CONFIG);

/// URL-safe alphabet, no padding: event IDs and v12 room IDs.
const URL_SAFE_BASE64: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, DECODE_CONFIG);

/// The signing algorithm prefix of every key ID Hearth can sign or verify.
const ED25519_PREFIX: &str = "ed25519:";

/// Encodes `bytes` as unpadded standard Base64 (appendices/#unpadded-base64).
pub fn encode_unpadded_base64(bytes: &[u8]) -> String {
    UNPADDED_BASE64.encode(bytes)
}

/// Decodes standard Base64, with or without padding.
pub fn decode_unpadded_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    UNPADDED_BASE64.decode(text)
}

/// Encodes `bytes` as URL-safe unpadded Base64
/// (appendices/#url-safe-unpadded-base64).
pub fn encode_url_safe_base64(bytes: &[u8]) -> String {
    URL_SAFE_BASE64.encode(bytes)
}

/// Decodes URL-safe Base64, with or without padding.
pub fn decode_url_safe_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    URL_SAFE_BASE64.decode(text)
}

/// Why JSON could not be signed or a signature did not check out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// The value has no canonical JSON form.
    Canonical(CanonicalJsonError),
    /// Only JSON objects can be signed.
    NotAnObject,
    /// The key ID's algorithm is not `ed25519`.
    UnsupportedAlgorithm,
    /// `signatures.<server_name>.<key_id>` is absent or not a string.
    MissingSignature,
    /// The signature is not valid Base64 or not 64 bytes long.
    MalformedSignature,
    /// The signature does not match the canonical JSON and key.
    InvalidSignature,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureError::Canonical(err) => write!(f, "not canonical JSON: {err}"),
            SignatureError::NotAnObject => f.write_str("only JSON objects can be signed"),
            SignatureError::UnsupportedAlgorithm => f.write_str("signing algorithm is not ed25519"),
            SignatureError::MissingSignature => {
                f.write_str("no signature from that server and key")
            }
            SignatureError::MalformedSignature => {
                f.write_str("signature is not 64 bytes of Base64")
            }
            SignatureError::InvalidSignature => f.write_str("signature does not verify"),
        }
    }
}

impl std::error::Error for SignatureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SignatureError::Canonical(err) => Some(err),
            _ => None,
        }
    }
}

impl From<CanonicalJsonError> for SignatureError {
    fn from(err: CanonicalJsonError) -> SignatureError {
        SignatureError::Canonical(err)
    }
}

/// This server's ed25519 signing key and its key ID (`ed25519:<version>`).
#[derive(Clone)]
pub struct ServerKey {
    signing_key: SigningKey,
    key_id: String,
}

impl ServerKey {
    /// Makes a new key from OS randomness, with a random alphanumeric key
    /// version.
    pub fn generate() -> ServerKey {
        let mut seed = [0u8; 32];
        let mut version = [0u8; 6];
        // The server cannot run without a signing key, and getrandom only
        // fails when the OS has no entropy source at all.
        getrandom::fill(&mut seed).expect("the OS random number generator is available");
        getrandom::fill(&mut version).expect("the OS random number generator is available");

        // Key versions are limited to `[a-zA-Z0-9_]`; the small modulo bias
        // does not matter for an identifier.
        const ALPHANUMERIC: &[u8; 62] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let version: String = version
            .iter()
            .map(|b| char::from(ALPHANUMERIC[usize::from(*b) % ALPHANUMERIC.len()]))
            .collect();
        ServerKey::from_seed(&seed, format!("{ED25519_PREFIX}{version}"))
    }

    /// Rebuilds a key from its 32-byte seed, e.g. as loaded from disk.
    ///
    /// `key_id` must be the full identifier, `ed25519:<version>`.
    pub fn from_seed(seed: &[u8; 32], key_id: impl Into<String>) -> ServerKey {
        ServerKey { signing_key: SigningKey::from_bytes(seed), key_id: key_id.into() }
    }

    /// The 32-byte seed, for persisting the key.
    pub fn seed(&self) -> [u8; 32] {
        self.signing_key.to_bytes()
    }

    /// The key ID, `ed25519:<version>`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing_key.verifying_key()
    }

    /// The public key as unpadded standard Base64, as published in
    /// `/_matrix/key/v2/server` `verify_keys`.
    pub fn public_key_base64(&self) -> String {
        encode_unpadded_base64(self.verifying_key().as_bytes())
    }
}

impl fmt::Debug for ServerKey {
    // The seed is a secret; never let it reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerKey")
            .field("key_id", &self.key_id)
            .field("public_key", &self.public_key_base64())
            .finish_non_exhaustive()
    }
}

/// The SHA-256 content hash of a PDU: the whole unredacted event without
/// `unsigned`, `signatures` and `hashes`.
pub fn content_hash(pdu: &Value) -> Result<[u8; 32], CanonicalJsonError> {
    let bytes = canonical_json_bytes_without(pdu, &["unsigned", "signatures", "hashes"])?;
    Ok(Sha256::digest(bytes).into())
}

/// Whether `hashes.sha256` of a received PDU matches its content.
///
/// A mismatch means the event was redacted on the way (or tampered with);
/// the spec then has the receiver keep the redacted copy.
pub fn content_hash_matches(pdu: &Value) -> Result<bool, CanonicalJsonError> {
    let Some(claimed) = pdu.pointer("/hashes/sha256").and_then(Value::as_str) else {
        return Ok(false);
    };
    let Ok(claimed) = decode_unpadded_base64(claimed) else {
        return Ok(false);
    };
    Ok(claimed == content_hash(pdu)?)
}

/// The SHA-256 reference hash of a PDU: the redacted event without
/// `signatures` and `unsigned`.
///
/// `pdu` must be in federation (PDU) form: for room versions 4 and later an
/// `event_id` key is not part of the event, and would be hashed if present.
/// The legacy top-level `age_ts` needs no special case: redaction drops it.
pub fn reference_hash(pdu: &Value, version: RoomVersion) -> Result<[u8; 32], CanonicalJsonError> {
    let redacted = redact(pdu, version);
    let bytes = canonical_json_bytes_without(&redacted, &["signatures", "unsigned"])?;
    Ok(Sha256::digest(bytes).into())
}

/// The event ID of a PDU: `$` and the URL-safe unpadded Base64 reference
/// hash (rooms/v4/#event-ids, unchanged through v12).
pub fn event_id(pdu: &Value, version: RoomVersion) -> Result<String, CanonicalJsonError> {
    Ok(format!("${}", encode_url_safe_base64(&reference_hash(pdu, version)?)))
}

/// The room ID a v12 room gets from its `m.room.create` PDU: the create
/// event's ID with `!` instead of `$`.
///
/// Only versions where [`RoomVersion::room_id_from_create_event`] holds
/// derive room IDs this way; older versions mint `!opaque:server_name`. The
/// create PDU has no `room_id` key in those versions.
pub fn room_id_from_create_event(
    create_pdu: &Value,
    version: RoomVersion,
) -> Result<String, CanonicalJsonError> {
    Ok(format!("!{}", encode_url_safe_base64(&reference_hash(create_pdu, version)?)))
}

/// Signs `value` as `server_name` with `key` (appendices/#signing-details).
///
/// The signature covers the canonical JSON without `signatures` and
/// `unsigned`, and is added under `signatures.<server_name>.<key_id>`,
/// keeping other signatures and `unsigned` as they were. A `signatures` (or
/// per-server) entry that is not an object cannot hold a signature and is
/// replaced. On error `value` is unchanged.
pub fn sign_json(
    value: &mut Value,
    server_name: &str,
    key: &ServerKey,
) -> Result<(), SignatureError> {
    if !value.is_object() {
        return Err(SignatureError::NotAnObject);
    }
    let bytes = canonical_json_bytes_without(value, &["signatures", "unsigned"])?;
    let signature = key.signing_key.sign(&bytes);
    let map = value.as_object_mut().ok_or(SignatureError::NotAnObject)?;
    let by_server = object_entry(map, "signatures");
    let by_key = object_entry(by_server, server_name);
    by_key.insert(key.key_id.clone(), Value::String(encode_unpadded_base64(&signature.to_bytes())));
    Ok(())
}

/// The object under `key`, inserting (or replacing a non-object with) `{}`.
fn object_entry<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let entry = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut().expect("the entry was just made an object")
}

/// Checks that `value` carries a valid signature from `server_name` with the
/// key `key_id` (appendices/#checking-for-a-signature).
///
/// Uses strict ed25519 verification, which refuses weak public keys and
/// malleable signature encodings that no honest signer produces.
pub fn verify_json(
    value: &Value,
    server_name: &str,
    key_id: &str,
    public_key: &VerifyingKey,
) -> Result<(), SignatureError> {
    if !value.is_object() {
        return Err(SignatureError::NotAnObject);
    }
    if !key_id.starts_with(ED25519_PREFIX) {
        return Err(SignatureError::UnsupportedAlgorithm);
    }
    let encoded = value
        .get("signatures")
        .and_then(|s| s.get(server_name))
        .and_then(|s| s.get(key_id))
        .and_then(Value::as_str)
        .ok_or(SignatureError::MissingSignature)?;
    let bytes = decode_unpadded_base64(encoded).map_err(|_| SignatureError::MalformedSignature)?;
    let signature =
        Signature::from_slice(&bytes).map_err(|_| SignatureError::MalformedSignature)?;
    let message = canonical_json_bytes_without(value, &["signatures", "unsigned"])?;
    public_key.verify_strict(&message, &signature).map_err(|_| SignatureError::InvalidSignature)
}

/// Checks a PDU's signature from `server_name`: event signatures cover the
/// redacted form, so this holds for the full event and for a redacted copy
/// alike (server-server-api/#validating-hashes-and-signatures-on-received-events).
pub fn verify_event(
    pdu: &Value,
    version: RoomVersion,
    server_name: &str,
    key_id: &str,
    public_key: &VerifyingKey,
) -> Result<(), SignatureError> {
    verify_json(&redact(pdu, version), server_name, key_id, public_key)
}

/// Fills in `hashes.sha256`, signs the event as `server_name` and returns its
/// event ID (server-server-api/#signing-events).
///
/// The content hash covers the full event; the signature covers the
/// redacted form (so it survives redaction) and is added to the full event's
/// `signatures`. Any existing `hashes` are replaced, since other hashes
/// would be covered by, and so invalidate, nothing but this signature.
pub fn hash_and_sign_event(
    pdu: &mut Value,
    version: RoomVersion,
    server_name: &str,
    key: &ServerKey,
) -> Result<String, SignatureError> {
    let hash = content_hash(pdu)?;
    let map = pdu.as_object_mut().ok_or(SignatureError::NotAnObject)?;
    let mut hashes = Map::new();
    hashes.insert("sha256".to_owned(), Value::String(encode_unpadded_base64(&hash)));
    map.insert("hashes".to_owned(), Value::Object(hashes));

    let mut redacted = redact(pdu, version);
    sign_json(&mut redacted, server_name, key)?;
    let signatures = redacted
        .as_object_mut()
        .and_then(|r| r.remove("signatures"))
        .expect("sign_json leaves a signatures object");
    let map = pdu.as_object_mut().ok_or(SignatureError::NotAnObject)?;
    map.insert("signatures".to_owned(), signatures);

    Ok(event_id(pdu, version)?)
}

#[cfg(test)]
mod tests {
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
            let id =
                hash_and_sign_event(&mut event, version, TEST_SERVER, &test_key()).expect("signs");
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
                let original_id =
                    hash_and_sign_event(&mut original, version, TEST_SERVER, &test_key())
                        .expect("signs");
                let changed_id =
                    hash_and_sign_event(&mut changed, version, TEST_SERVER, &test_key())
                        .expect("signs");
                assert_ne!(original_id, changed_id, "{event_type} {version}");
            }
        }
    }

    #[test]
    fn event_id_ignores_unsigned_and_signatures() {
        for version in RoomVersion::ALL {
            let mut event = create_event();
            let id =
                hash_and_sign_event(&mut event, version, TEST_SERVER, &test_key()).expect("signs");
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
        hash_and_sign_event(&mut create, RoomVersion::V12, TEST_SERVER, &test_key())
            .expect("signs");
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
}
