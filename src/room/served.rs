//! Stored events as clients receive them.
//!
//! An event sent with a transaction ID is stored with
//! `unsigned.transaction_id` and, beside it, the sending device
//! ([`TXN_DEVICE`]). The spec gives the transaction ID only to the client
//! that sent the event (it matches its local echo by it), so every parse of
//! a stored event for a client goes through [`parse`]: the device marker
//! never leaves the server, and the transaction ID reaches only that device.

use serde_json::Value;

use crate::error::MatrixError;

/// Key in a stored event's `unsigned` naming the device whose request sent
/// it (next to `transaction_id`).
pub const TXN_DEVICE: &str = "io.hearth.txn_device";

/// Parses stored client-format JSON for `device` (`None`: for no device in
/// particular, e.g. another user or a push gateway).
pub fn parse(json: &[u8], device: Option<&str>) -> Result<Value, MatrixError> {
    let mut v: Value =
        serde_json::from_slice(json).map_err(|e| MatrixError::internal("stored event", e))?;
    shape(&mut v, device);
    Ok(v)
}

/// Removes what `device` may not see from a parsed stored event.
pub fn shape(v: &mut Value, device: Option<&str>) {
    let Some(unsigned) = v.get_mut("unsigned").and_then(Value::as_object_mut) else { return };
    let Some(sender_device) = unsigned.remove(TXN_DEVICE) else { return };
    if device.is_none_or(|d| sender_device.as_str() != Some(d)) {
        unsigned.remove("transaction_id");
    }
    if unsigned.is_empty()
        && let Some(o) = v.as_object_mut()
    {
        o.remove("unsigned");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stored() -> Vec<u8> {
        serde_json::to_vec(&json!({
            "type": "m.room.message",
            "unsigned": { "transaction_id": "t1", TXN_DEVICE: "PHONE" },
        }))
        .expect("json")
    }

    #[test]
    fn only_the_sending_device_sees_the_transaction_id() {
        let mine = parse(&stored(), Some("PHONE")).expect("parse");
        assert_eq!(mine["unsigned"], json!({ "transaction_id": "t1" }));
        for other in [Some("LAPTOP"), None] {
            let v = parse(&stored(), other).expect("parse");
            assert!(v.get("unsigned").is_none(), "{other:?}: {v}");
        }
    }

    #[test]
    fn other_unsigned_keys_stay() {
        let mut v = json!({
            "unsigned": { "prev_content": {"a": 1}, "transaction_id": "t", TXN_DEVICE: "D" },
        });
        shape(&mut v, Some("E"));
        assert_eq!(v["unsigned"], json!({ "prev_content": {"a": 1} }));
        let mut plain = json!({ "unsigned": { "transaction_id": "x" } });
        shape(&mut plain, None);
        assert_eq!(plain["unsigned"]["transaction_id"], "x", "no marker: left as it is");
    }
}
