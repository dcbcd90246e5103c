//! The federation-only fields of a stored event (`auth_events`,
//! `prev_events`, `depth`, `hashes`, `signatures`), written with every
//! event and read only to build on it or to hand it to another server.
//!
//! As JSON they are about 400 bytes per message, most of it Base64 of
//! 32-byte hashes and a 64-byte signature. When every part has its usual
//! shape (room v3+ event IDs, one SHA-256 hash, Ed25519-sized signatures)
//! they are stored as those bytes instead, about 250 bytes:
//!
//! ```text
//! 1 | depth: u64 LE | n | n × prev event hash (32) | n | n × auth event hash (32)
//!   | sha256 (32) | servers | servers × (name | keys | keys × (key ID | signature (64)))
//! ```
//!
//! where counts are one byte and names are one length byte and UTF-8. Each
//! Base64 string is taken only if its bytes encode back to the very same
//! string (so the row decodes to exactly the fields it came from); anything
//! else (and every row of earlier versions) is JSON, which starts with `{`.

use serde_json::{Map, Value};

use crate::room::pdu::{
    decode_unpadded_base64, decode_url_safe_base64, encode_unpadded_base64, encode_url_safe_base64,
};

const BINARY_V1: u8 = 1;

/// Stored bytes for the fields object.
pub fn encode(fields: &Value) -> Result<Vec<u8>, serde_json::Error> {
    match encode_binary(fields) {
        Some(bytes) => Ok(bytes),
        None => serde_json::to_vec(fields),
    }
}

/// The fields object back from stored bytes (`None`: not a layout this
/// version knows).
pub fn decode(bytes: &[u8]) -> Option<Value> {
    match bytes.first() {
        Some(&BINARY_V1) => decode_binary(bytes),
        Some(b'{') => serde_json::from_slice(bytes).ok(),
        _ => None,
    }
}

/// Just the depth, without decoding the rest.
pub fn depth(bytes: &[u8]) -> Option<u64> {
    match bytes.first() {
        Some(&BINARY_V1) => Some(u64::from_le_bytes(bytes.get(1..9)?.try_into().ok()?)),
        _ => decode(bytes)?.get("depth")?.as_u64(),
    }
}

fn push_name(out: &mut Vec<u8>, name: &str) -> Option<()> {
    out.push(u8::try_from(name.len()).ok()?);
    out.extend_from_slice(name.as_bytes());
    Some(())
}

/// Appends the `len` bytes `text` spells in Base64, if it spells that many
/// and is how they are spelled (no padding, no stray trailing bits).
fn push_base64(out: &mut Vec<u8>, text: &str, len: usize, url_safe: bool) -> Option<()> {
    let raw = if url_safe { decode_url_safe_base64(text) } else { decode_unpadded_base64(text) };
    let raw = raw.ok().filter(|r| r.len() == len)?;
    let again = if url_safe { encode_url_safe_base64(&raw) } else { encode_unpadded_base64(&raw) };
    (again == text).then(|| out.extend_from_slice(&raw))
}

fn encode_binary(fields: &Value) -> Option<Vec<u8>> {
    let o = fields.as_object()?;
    if o.len() != 5 {
        return None;
    }
    let mut out = Vec::with_capacity(256);
    out.push(BINARY_V1);
    out.extend_from_slice(&o.get("depth")?.as_u64()?.to_le_bytes());
    for key in ["prev_events", "auth_events"] {
        let ids = o.get(key)?.as_array()?;
        out.push(u8::try_from(ids.len()).ok()?);
        for id in ids {
            push_base64(&mut out, id.as_str()?.strip_prefix('$')?, 32, true)?;
        }
    }
    let hashes = o.get("hashes")?.as_object()?;
    if hashes.len() != 1 {
        return None;
    }
    push_base64(&mut out, hashes.get("sha256")?.as_str()?, 32, false)?;
    let servers = o.get("signatures")?.as_object()?;
    out.push(u8::try_from(servers.len()).ok()?);
    for (server, keys) in servers {
        let keys = keys.as_object()?;
        push_name(&mut out, server)?;
        out.push(u8::try_from(keys.len()).ok()?);
        for (key_id, signature) in keys {
            push_name(&mut out, key_id)?;
            push_base64(&mut out, signature.as_str()?, 64, false)?;
        }
    }
    Some(out)
}

/// Reads the binary layout front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<usize> {
        Some(usize::from(self.take(1)?[0]))
    }

    fn name(&mut self) -> Option<String> {
        let n = self.byte()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

fn decode_binary(bytes: &[u8]) -> Option<Value> {
    let mut r = Reader(bytes);
    if r.byte()? != usize::from(BINARY_V1) {
        return None;
    }
    let depth = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
    let ids = |r: &mut Reader<'_>| -> Option<Value> {
        let n = r.byte()?;
        let list: Option<Vec<Value>> = (0..n)
            .map(|_| Some(Value::String(format!("${}", encode_url_safe_base64(r.take(32)?)))))
            .collect();
        Some(Value::Array(list?))
    };
    let prev_events = ids(&mut r)?;
    let auth_events = ids(&mut r)?;
    let mut hashes = Map::new();
    hashes.insert("sha256".into(), Value::String(encode_unpadded_base64(r.take(32)?)));
    let mut signatures = Map::new();
    for _ in 0..r.byte()? {
        let server = r.name()?;
        let mut keys = Map::new();
        for _ in 0..r.byte()? {
            let key_id = r.name()?;
            keys.insert(key_id, Value::String(encode_unpadded_base64(r.take(64)?)));
        }
        signatures.insert(server, Value::Object(keys));
    }
    if !r.0.is_empty() {
        return None;
    }
    let mut o = Map::new();
    o.insert("auth_events".into(), auth_events);
    o.insert("prev_events".into(), prev_events);
    o.insert("depth".into(), depth.into());
    o.insert("hashes".into(), Value::Object(hashes));
    o.insert("signatures".into(), Value::Object(signatures));
    Some(Value::Object(o))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn id(byte: u8) -> String {
        format!("${}", encode_url_safe_base64(&[byte; 32]))
    }

    fn usual() -> Value {
        json!({
            "auth_events": [id(1), id(2), id(3)],
            "prev_events": [id(4)],
            "depth": 12345,
            "hashes": { "sha256": encode_unpadded_base64(&[5; 32]) },
            "signatures": { "hs.example": { "ed25519:a_bcd": encode_unpadded_base64(&[6; 64]) } },
        })
    }

    #[test]
    fn usual_fields_are_stored_as_bytes_and_come_back_exactly() {
        let fields = usual();
        let bytes = encode(&fields).expect("encode");
        assert_eq!(bytes[0], BINARY_V1);
        let json_len = serde_json::to_vec(&fields).expect("json").len();
        assert!(bytes.len() * 3 < json_len * 2, "{} vs {json_len}", bytes.len());
        assert_eq!(decode(&bytes), Some(fields));
        assert_eq!(depth(&bytes), Some(12345));
    }

    #[test]
    fn anything_unusual_is_stored_as_json() {
        let mut cases = Vec::new();
        let mut v1_ids = usual();
        v1_ids["prev_events"] = json!(["$abc:hs.example"]);
        cases.push(v1_ids);
        let mut extra = usual();
        extra["unsigned"] = json!({});
        cases.push(extra);
        let mut two_hashes = usual();
        two_hashes["hashes"]["sha512"] = json!("AAAA");
        cases.push(two_hashes);
        let mut odd_signature = usual();
        odd_signature["signatures"]["hs.example"]["ed25519:a_bcd"] = json!("c2hvcnQ");
        cases.push(odd_signature);
        let mut trailing_bits = usual();
        // Decodes to the same bytes but is not how they re-encode.
        let h = trailing_bits["hashes"]["sha256"].as_str().expect("hash").to_owned();
        trailing_bits["hashes"]["sha256"] = json!(format!("{}B", &h[..h.len() - 1]));
        cases.push(trailing_bits);
        let mut padded = usual();
        // Same bytes, spelled with padding: re-encoding would drop it.
        let h = padded["hashes"]["sha256"].as_str().expect("hash").to_owned();
        padded["hashes"]["sha256"] = json!(format!("{h}="));
        cases.push(padded);
        for fields in cases {
            let bytes = encode(&fields).expect("encode");
            assert_eq!(bytes[0], b'{', "{fields}");
            assert_eq!(decode(&bytes), Some(fields.clone()));
            assert_eq!(depth(&bytes), Some(12345));
        }
        assert_eq!(depth(br#"{"depth":7}"#), Some(7));
        assert_eq!(decode(b"\x02junk"), None);
        assert_eq!(decode(&encode(&usual()).expect("encode")[..40]), None, "truncated");
    }
}
