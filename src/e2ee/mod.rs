//! End-to-end encryption rules the server enforces on the keys clients
//! publish (spec: client-server-api/#cross-signing): the shape of a
//! cross-signing key, which of a user's keys may sign which key, and whether
//! a signature is genuine.
//!
//! The server holds no private key and trusts no key itself. It checks
//! signatures so that a compromised or malicious device cannot publish, in
//! its user's name, signatures it could not have made, which other clients
//! would then rely on. These checks are pure: callers look the signing keys up
//! in the store and hand them in; the signature bytes are checked by
//! [`crate::room::pdu::verify_json`], over the canonical JSON without
//! `signatures` and `unsigned` (appendices/#checking-for-a-signature).
//!
//! The writes of the key stores a user keeps on the server live beside them:
//! [`backup`] (server-side room key backup) and [`dehydrated`] (MSC3814
//! dehydrated devices). [`keys`] applies key uploads, claims and
//! signatures inside the writer, with these rules.

pub mod backup;
pub mod dehydrated;
pub mod keys;

use ed25519_dalek::VerifyingKey;
use serde_json::Value;

use crate::ids::UserId;
use crate::room::pdu::{
    SignatureError, decode_unpadded_base64, encode_unpadded_base64, verify_json,
};

/// The algorithm prefix of the key IDs that cross-signing uses.
const ED25519: &str = "ed25519:";

/// An ed25519 public key with the key ID signatures name it by:
/// `ed25519:<public key>` for a cross-signing key, `ed25519:<device ID>`
/// for a device.
#[derive(Clone, Debug)]
pub struct PublicKey {
    pub key_id: String,
    pub key: VerifyingKey,
}

impl PublicKey {
    /// Whether `signed` carries a valid signature by this key in the name
    /// of `user_id`.
    pub fn verify(&self, signed: &Value, user_id: &UserId) -> Result<(), SignatureError> {
        verify_json(signed, user_id.as_str(), &self.key_id, &self.key)
    }

    /// The public key as unpadded Base64: how `/keys/signatures/upload`
    /// names a cross-signing key, and what no device ID may equal.
    pub fn encoded(&self) -> String {
        encode_unpadded_base64(self.key.as_bytes())
    }
}

/// The device ID in a device's signing key ID, `ed25519:<device ID>`.
pub fn device_id_of(key_id: &str) -> Option<&str> {
    key_id.strip_prefix(ED25519)
}

/// The public key of a cross-signing key. Its `keys` must hold exactly one
/// entry, `ed25519:<unpadded Base64 public key>` → that same public key
/// (spec: definitions CrossSigningKey). The error says what is wrong.
pub fn cross_signing_public_key(key: &Value) -> Result<PublicKey, String> {
    let keys = key["keys"].as_object().ok_or("keys must be an object")?;
    let mut entries = keys.iter();
    let (Some((key_id, public)), None) = (entries.next(), entries.next()) else {
        return Err("keys must hold exactly one key".to_owned());
    };
    let encoded =
        key_id.strip_prefix(ED25519).ok_or_else(|| format!("{key_id} is not an ed25519 key"))?;
    if public != encoded {
        return Err(format!("the key {key_id} must be named by its own public key"));
    }
    let key =
        decode_key(encoded).ok_or_else(|| format!("{key_id} is not an ed25519 public key"))?;
    Ok(PublicKey { key_id: key_id.clone(), key })
}

/// The ed25519 key of a device, `keys["ed25519:<device_id>"]` of its device
/// keys; `None` when it has none that decodes. `device_id` stays `&str`: it
/// is cut out of a signature's key ID in uploaded JSON, only looked up.
pub fn device_public_key(device_keys: &Value, device_id: &str) -> Option<PublicKey> {
    let key_id = format!("{ED25519}{device_id}");
    let key = decode_key(device_keys["keys"][key_id.as_str()].as_str()?)?;
    Some(PublicKey { key_id, key })
}

fn decode_key(encoded: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = decode_unpadded_base64(encoded).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// What a signature uploaded to `/keys/signatures/upload` is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// One of the uploader's own devices.
    OwnDevice,
    /// The uploader's own master key.
    OwnMaster,
    /// The uploader's own self-signing key.
    OwnSelfSigning,
    /// Another user's master key.
    OtherUsersMaster,
}

/// Which of the uploader's keys may sign a [`Target`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signer {
    /// One of the uploader's devices (by its device ID).
    Device,
    Master,
    SelfSigning,
    UserSigning,
}

impl Target {
    /// The one kind of key whose signatures on this target mean something
    /// (spec: cross-signing): the self-signing key signs the user's devices,
    /// the master key signs the self-signing key, devices sign their user's
    /// master key (migrating from device verification), and the
    /// user-signing key signs other users' master keys.
    pub fn signer(self) -> Signer {
        match self {
            Target::OwnDevice => Signer::SelfSigning,
            Target::OwnMaster => Signer::Device,
            Target::OwnSelfSigning => Signer::Master,
            Target::OtherUsersMaster => Signer::UserSigning,
        }
    }
}

/// The key IDs of the signatures that `signer` makes in `uploaded` and
/// `stored` does not already hold (absent, or with another value): the ones
/// to check before they are stored. Signatures already stored were checked
/// when they were.
pub fn new_signatures<'a>(stored: &Value, uploaded: &'a Value, signer: &str) -> Vec<&'a str> {
    let Some(by_key) = uploaded["signatures"][signer].as_object() else { return Vec::new() };
    let old = &stored["signatures"][signer];
    by_key
        .iter()
        .filter(|(key_id, sig)| old.get(key_id.as_str()) != Some(*sig))
        .map(|(key_id, _)| key_id.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::room::pdu::{ServerKey, sign_json};

    fn key(seed: u8) -> ServerKey {
        let unnamed = ServerKey::from_seed(&[seed; 32], "");
        ServerKey::from_seed(&[seed; 32], format!("ed25519:{}", unnamed.public_key_base64()))
    }

    fn cross_signing_key(k: &ServerKey, usage: &str) -> Value {
        json!({
            "user_id": "@alice:hs", "usage": [usage],
            "keys": { k.key_id(): k.public_key_base64() },
        })
    }

    #[test]
    fn a_cross_signing_key_is_named_by_its_one_ed25519_public_key() {
        let k = key(1);
        let public = cross_signing_public_key(&cross_signing_key(&k, "master")).expect("valid");
        assert_eq!(public.key_id, k.key_id());
        assert_eq!(public.key, k.verifying_key());
        assert_eq!(public.encoded(), k.public_key_base64());
    }

    #[test]
    fn malformed_cross_signing_keys_are_refused() {
        let (a, b) = (key(1), key(2));
        let pa = a.public_key_base64();
        for keys in [
            json!({}),
            json!({ a.key_id(): pa, b.key_id(): b.public_key_base64() }),
            json!({ format!("curve25519:{pa}"): pa }),
            json!({ a.key_id(): b.public_key_base64() }),
            json!({ "ed25519:MASTER": "MASTER" }),
            json!({ a.key_id(): 7 }),
            json!("not an object"),
        ] {
            let k = json!({ "user_id": "@alice:hs", "usage": ["master"], "keys": keys });
            assert!(cross_signing_public_key(&k).is_err(), "{k}");
        }
    }

    #[test]
    fn a_device_key_is_found_by_its_device_id() {
        let k = key(3);
        let device =
            json!({ "keys": { "ed25519:DEV": k.public_key_base64(), "curve25519:DEV": "c" } });
        let public = device_public_key(&device, "DEV").expect("found");
        assert_eq!(public.key_id, "ed25519:DEV");
        assert_eq!(public.key, k.verifying_key());
        assert!(device_public_key(&device, "OTHER").is_none());
        assert!(device_public_key(&json!({ "keys": { "ed25519:DEV": "edkey" } }), "DEV").is_none());
    }

    #[test]
    fn only_a_signature_by_the_key_over_the_same_content_verifies() {
        let (master, other) = (key(1), key(2));
        let mut ssk = cross_signing_key(&key(4), "self_signing");
        sign_json(&mut ssk, "@alice:hs", &master).expect("sign");
        let master_public =
            cross_signing_public_key(&cross_signing_key(&master, "master")).expect("valid");
        let user = |s| UserId::parse(s).expect("user ID");
        assert_eq!(master_public.verify(&ssk, &user("@alice:hs")), Ok(()));
        // In another user's name, by another key, or over changed content.
        assert!(master_public.verify(&ssk, &user("@mallory:hs")).is_err());
        let other_public =
            cross_signing_public_key(&cross_signing_key(&other, "master")).expect("valid");
        assert!(other_public.verify(&ssk, &user("@alice:hs")).is_err());
        let mut changed = ssk.clone();
        changed["usage"] = json!(["user_signing"]);
        assert_eq!(
            master_public.verify(&changed, &user("@alice:hs")),
            Err(SignatureError::InvalidSignature)
        );
        // `unsigned` is not covered.
        let mut annotated = ssk.clone();
        annotated["unsigned"] = json!({ "device_display_name": "x" });
        assert_eq!(master_public.verify(&annotated, &user("@alice:hs")), Ok(()));
    }

    #[test]
    fn new_signatures_are_those_of_the_signer_not_already_stored() {
        let stored = json!({ "signatures": { "@a:hs": { "ed25519:DEV": "s1" } } });
        let uploaded = json!({ "signatures": {
            "@a:hs": { "ed25519:DEV": "s1", "ed25519:SSK": "s2" },
            "@b:hs": { "ed25519:B": "s3" },
        } });
        assert_eq!(new_signatures(&stored, &uploaded, "@a:hs"), ["ed25519:SSK"]);
        let changed = json!({ "signatures": { "@a:hs": { "ed25519:DEV": "other" } } });
        assert_eq!(new_signatures(&stored, &changed, "@a:hs"), ["ed25519:DEV"]);
        assert!(new_signatures(&stored, &json!({}), "@a:hs").is_empty());
    }
}
