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
//!
//! Serving is also where fields that depend on the reader or on the client
//! generation are added, never stored (the stored bytes mirror the signed
//! PDU, and events stored before such a rule keep working):
//! `unsigned.membership`, the viewer's membership at the event
//! ([`set_membership`]), and both forms of a redaction's `redacts`
//! ([`shape`]).

use serde_json::Value;

use crate::error::MatrixError;
use crate::ids::{DeviceId, UserId};
use crate::membership::Membership;
use crate::store::StoredEvent;

/// Key in a stored event's `unsigned` naming the device whose request sent
/// it (next to `transaction_id`).
pub const TXN_DEVICE: &str = "io.hearth.txn_device";

/// Who an event is served to.
#[derive(Clone, Copy, Debug)]
pub struct Viewer<'a> {
    pub user: &'a UserId,
    pub device: &'a DeviceId,
}

/// Parses stored client-format JSON for `viewer` (`None`: for nobody in
/// particular, e.g. a push gateway or a copy kept inside another event).
pub fn parse(json: &[u8], viewer: Option<Viewer<'_>>) -> Result<Value, MatrixError> {
    let mut v: Value =
        serde_json::from_slice(json).map_err(|e| MatrixError::internal("stored event", e))?;
    shape(&mut v, viewer);
    Ok(v)
}

/// Removes what `viewer` may not see from a parsed stored event and adds
/// the `redacts` form it lacks.
pub fn shape(v: &mut Value, viewer: Option<Viewer<'_>>) {
    both_redacts(v);
    if let Some(because) = v.pointer_mut("/unsigned/redacted_because") {
        both_redacts(because);
    }
    strip_transaction_id(v, viewer);
}

/// Room version 11 moved `redacts` from the top level of `m.room.redaction`
/// into `content`. The spec asks servers to serve both (spec:
/// rooms/v11, "Moving the `redacts` property"): clients written against
/// older versions (matrix-js-sdk, so Element Web and Cinny) read only the
/// top level and would leave a deleted message on screen; newer ones read
/// `content`. Only a missing form is added: the one the room version signs
/// stays as stored.
fn both_redacts(v: &mut Value) {
    if v.get("type").and_then(Value::as_str) != Some("m.room.redaction") {
        return;
    }
    let top = v.get("redacts").filter(|r| r.is_string()).cloned();
    let Some(content) = v.get_mut("content").and_then(Value::as_object_mut) else { return };
    let inner = content.get("redacts").filter(|r| r.is_string()).cloned();
    match (top, inner) {
        (Some(r), None) => {
            content.insert("redacts".into(), r);
        }
        (None, Some(r)) => {
            if let Some(o) = v.as_object_mut() {
                o.insert("redacts".into(), r);
            }
        }
        _ => {}
    }
}

/// Sets `unsigned.membership`: the viewer's membership in the room at the
/// time of the event, the event's own change included (spec:
/// client-server-api, `ClientEvent.unsigned.membership`). Clients tell
/// "sent before you joined" from other undecryptable messages by it.
pub fn set_membership(v: &mut Value, membership: Membership) {
    let Some(o) = v.as_object_mut() else { return };
    let unsigned = o.entry("unsigned").or_insert_with(|| Value::Object(Default::default()));
    if let Some(u) = unsigned.as_object_mut() {
        u.insert("membership".into(), Value::String(membership.as_str().to_owned()));
    }
}

/// The transaction ID goes only to the device that sent the event.
fn strip_transaction_id(v: &mut Value, viewer: Option<Viewer<'_>>) {
    let Some(unsigned) = v.get_mut("unsigned").and_then(Value::as_object_mut) else { return };
    let Some(sender_device) = unsigned.remove(TXN_DEVICE) else { return };
    let keep = viewer
        .is_some_and(|w| sender_device == w.device.as_str() && v["sender"] == w.user.as_str());
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

/// A stored event for nobody in particular (no transaction ID).
pub fn parse_stored(e: &StoredEvent) -> Result<Value, MatrixError> {
    parse(&e.json, None)
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

    fn ids(user: &str, device: &str) -> (UserId, DeviceId) {
        (UserId::parse(user).expect("user ID"), DeviceId::parse(device).expect("device ID"))
    }

    fn viewer((user, device): &(UserId, DeviceId)) -> Option<Viewer<'_>> {
        Some(Viewer { user, device })
    }

    #[test]
    fn only_the_sending_device_sees_the_transaction_id() {
        let mine = parse(&stored(), viewer(&ids("@a:hs", "PHONE"))).expect("parse");
        assert_eq!(mine["unsigned"], json!({ "transaction_id": "t1" }));
        // Another device of the sender; another user whose device has the
        // same ID; nobody in particular.
        let (laptop, bob) = (ids("@a:hs", "LAPTOP"), ids("@b:hs", "PHONE"));
        for other in [viewer(&laptop), viewer(&bob), None] {
            let v = parse(&stored(), other).expect("parse");
            assert!(v.get("unsigned").is_none(), "{other:?}: {v}");
        }
    }

    #[test]
    fn a_redaction_is_served_with_redacts_at_the_top_level_and_in_content() {
        // v11 and later: signed in `content`; before v11: at the top level.
        let v11 = json!({ "type": "m.room.redaction", "content": { "redacts": "$t" } });
        let v10 = json!({ "type": "m.room.redaction", "redacts": "$t", "content": {} });
        for stored in [v11, v10] {
            let v = parse(&serde_json::to_vec(&stored).expect("json"), None).expect("parse");
            assert_eq!((&v["redacts"], &v["content"]["redacts"]), (&json!("$t"), &json!("$t")));
        }
        // The copy inside a redacted event, and nothing for other types.
        let mut redacted = json!({
            "type": "m.room.message",
            "content": {},
            "unsigned": { "redacted_because": { "type": "m.room.redaction", "content": { "redacts": "$t" } } },
        });
        shape(&mut redacted, None);
        assert_eq!(redacted["unsigned"]["redacted_because"]["redacts"], "$t");
        assert!(redacted.get("redacts").is_none());
        let mut message = json!({ "type": "m.room.message", "content": { "redacts": "$t" } });
        shape(&mut message, None);
        assert!(message.get("redacts").is_none(), "{message}");
    }

    #[test]
    fn a_stored_form_that_differs_is_left_as_signed() {
        let mut v =
            json!({ "type": "m.room.redaction", "redacts": "$a", "content": { "redacts": "$b" } });
        shape(&mut v, None);
        assert_eq!((&v["redacts"], &v["content"]["redacts"]), (&json!("$a"), &json!("$b")));
    }

    #[test]
    fn membership_joins_other_unsigned_keys() {
        let mut v = json!({ "unsigned": { "age": 5 } });
        set_membership(&mut v, Membership::Invite);
        assert_eq!(v["unsigned"], json!({ "age": 5, "membership": "invite" }));
        let mut bare = json!({ "type": "m.room.message" });
        set_membership(&mut bare, Membership::Leave);
        assert_eq!(bare["unsigned"], json!({ "membership": "leave" }));
    }

    #[test]
    fn other_unsigned_keys_stay() {
        let mut v = json!({
            "unsigned": { "prev_content": {"a": 1}, "transaction_id": "t", TXN_DEVICE: "D" },
        });
        shape(&mut v, viewer(&ids("@a:hs", "E")));
        assert_eq!(v["unsigned"], json!({ "prev_content": {"a": 1} }));
        let mut plain = json!({ "unsigned": { "transaction_id": "x" } });
        shape(&mut plain, None);
        assert_eq!(plain["unsigned"]["transaction_id"], "x", "no marker: left as it is");
    }
}
