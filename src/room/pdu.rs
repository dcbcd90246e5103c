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
mod tests;
