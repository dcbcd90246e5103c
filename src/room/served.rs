//! Stored events as clients receive them.
//!
//! An event sent with a transaction ID is stored with
//! `unsigned.transaction_id` and, beside it, the sending device
//! ([`TXN_DEVICE`]). The spec gives the transaction ID only to the client
//! that sent the event (it matches its local echo by it), so every parse of
//! a stored event for a client goes through [`parse`]: the device marker
//! never leaves the server, and the transaction ID reaches only that device
//! of the sender (device IDs are per user: two users may both have a
//! device `PHONE`).

use serde_json::Value;

use crate::error::MatrixError;

/// Key in a stored event's `unsigned` naming the device whose request sent
/// it (next to `transaction_id`).
pub const TXN_DEVICE: &str = "io.hearth.txn_device";

/// Who an event is served to.
#[derive(Clone, Copy, Debug)]
pub struct Viewer<'a> {
    pub user: &'a str,
    pub device: &'a str,
}

/// Parses stored client-format JSON for `viewer` (`None`: for nobody in
/// particular, e.g. a push gateway or a copy kept inside another event).
pub fn parse(json: &[u8], viewer: Option<Viewer<'_>>) -> Result<Value, MatrixError> {
    let mut v: Value =
        serde_json::from_slice(json).map_err(|e| MatrixError::internal("stored event", e))?;
    shape(&mut v, viewer);
    Ok(v)
}

/// Removes what `viewer` may not see from a parsed stored event.
pub fn shape(v: &mut Value, viewer: Option<Viewer<'_>>) {
    let Some(unsigned) = v.get_mut("unsigned").and_then(Value::as_object_mut) else { return };
    let Some(sender_device) = unsigned.remove(TXN_DEVICE) else { return };
    let keep = viewer.is_some_and(|w| sender_device == w.device && v["sender"] == w.user);
    let Some(unsigned) = v.get_mut("unsigned").and_then(Value::as_object_mut) else { return };
    if !keep {
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
            "sender": "@a:hs",
            "unsigned": { "transaction_id": "t1", TXN_DEVICE: "PHONE" },
        }))
        .expect("json")
    }

    fn viewer<'a>(user: &'a str, device: &'a str) -> Option<Viewer<'a>> {
        Some(Viewer { user, device })
    }

    #[test]
    fn only_the_sending_device_sees_the_transaction_id() {
        let mine = parse(&stored(), viewer("@a:hs", "PHONE")).expect("parse");
        assert_eq!(mine["unsigned"], json!({ "transaction_id": "t1" }));
        // Another device of the sender; another user whose device has the
        // same ID; nobody in particular.
        for other in [viewer("@a:hs", "LAPTOP"), viewer("@b:hs", "PHONE"), None] {
            let v = parse(&stored(), other).expect("parse");
            assert!(v.get("unsigned").is_none(), "{other:?}: {v}");
        }
    }

    #[test]
    fn other_unsigned_keys_stay() {
        let mut v = json!({
            "unsigned": { "prev_content": {"a": 1}, "transaction_id": "t", TXN_DEVICE: "D" },
        });
        shape(&mut v, viewer("@a:hs", "E"));
        assert_eq!(v["unsigned"], json!({ "prev_content": {"a": 1} }));
        let mut plain = json!({ "unsigned": { "transaction_id": "x" } });
        shape(&mut plain, None);
        assert_eq!(plain["unsigned"]["transaction_id"], "x", "no marker: left as it is");
    }
}
