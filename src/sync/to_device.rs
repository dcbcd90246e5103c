//! Send-to-device messaging (spec: modules/send_to_device): the stored
//! message's shape, and each recipient device's inbox, which holds
//! messages until the device syncs, within the caps of `quota`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::error::MatrixError;
use crate::ids::{DeviceId, UserId};
use crate::quota;
use crate::store::{RoomShort, StoreError, StreamPos, WriteCtx};

/// A message for one recipient: `(user, device ID or "*", stored message)`.
/// The device stays a string: `*` (every device) is no device ID.
pub type Outgoing = (UserId, String, Vec<u8>);

/// The messages of a `/sendToDevice` body (`messages`: user → device →
/// content) for this server's users, shaped and sized before the write.
pub fn outgoing(
    sender: &UserId,
    event_type: &str,
    messages: &Map<String, Value>,
    server: &str,
) -> Result<Vec<Outgoing>, MatrixError> {
    let mut outgoing = Vec::new();
    for (user, per_device) in messages {
        let Ok(uid) = UserId::parse(user) else { continue };
        if uid.server_name() != server {
            continue;
        }
        let Some(per_device) = per_device.as_object() else { continue };
        for (target, content) in per_device {
            let msg = json!({ "type": event_type, "sender": sender, "content": content });
            let bytes =
                serde_json::to_vec(&msg).map_err(|e| MatrixError::internal("to-device", e))?;
            quota::check_size("A to-device message", bytes.len(), quota::TO_DEVICE_BYTES)?;
            outgoing.push((uid.clone(), target.clone(), bytes));
        }
    }
    Ok(outgoing)
}

/// Queues `outgoing` in the recipients' inboxes, once per sending device
/// and transaction ID (`txn_id`): a retried request queues nothing again.
pub fn send(
    ctx: &mut WriteCtx<'_>,
    sender: &UserId,
    device: &DeviceId,
    event_type: &str,
    txn_id: &str,
    outgoing: &[Outgoing],
) -> Result<Result<(), MatrixError>, StoreError> {
    let scope = format!("d/{event_type}");
    if ctx.txn_position(sender, device, &scope, txn_id)?.is_some() {
        return Ok(Ok(()));
    }
    let mut deliveries: Vec<(&str, String, &[u8])> = Vec::new();
    for (uid, target, bytes) in outgoing {
        let devices: Vec<String> =
            if target == "*" { ctx.device_ids(uid.localpart())? } else { vec![target.clone()] };
        for d in devices {
            // An ID that does not parse names no device.
            if let Ok(id) = DeviceId::parse(&d)
                && ctx.device(uid.localpart(), &id)?.is_some()
            {
                deliveries.push((uid.as_str(), d, bytes));
            }
        }
    }
    let full = full_inboxes(ctx, &deliveries)?;
    if let Some((user, d, why)) = full.first()
        && full.len() == count_inboxes(&deliveries)
    {
        return Ok(Err(quota::store_full(
            &format!("undelivered to-device {why} for {user}'s device {d}"),
            if *why == "messages" { quota::MAX_INBOX_MESSAGES } else { quota::MAX_INBOX_BYTES },
            " until that device syncs",
        )));
    }
    for (user, d, bytes) in &deliveries {
        if full.iter().any(|(u, fd, _)| u == user && fd == d) {
            continue;
        }
        // A device the store holds (checked above), of a parsed user.
        let (user, d) =
            (UserId::from_trusted((*user).to_owned()), DeviceId::from_trusted(d.clone()));
        ctx.put_to_device(&user, &d, bytes)?;
    }
    for (user, d, _) in &full {
        tracing::warn!(
            "to-device message from {sender} not queued for {user}'s device {d}: its \
             inbox is full (the device has not synced for a long time)"
        );
    }
    ctx.put_txn(sender, device, &scope, txn_id, (RoomShort(0), StreamPos(0)))?;
    Ok(Ok(()))
}

/// The recipient devices whose inbox this send would take past its caps
/// (`quota`), with which cap: `(user, device, "messages" or "bytes")`.
///
/// A send whose every recipient is full is refused, so a sender aiming at
/// one device (or flooding it) is told. A send to many devices (a room key
/// for everyone in a room) still reaches the others, and the full ones are
/// skipped with a log line: refusing it would let one lost phone's inbox
/// keep a whole room from decrypting, while that phone, not having synced
/// for thousands of messages, would re-request keys anyway.
fn full_inboxes<'a>(
    ctx: &WriteCtx<'_>,
    deliveries: &[(&'a str, String, &[u8])],
) -> Result<Vec<(&'a str, String, &'static str)>, StoreError> {
    let mut adding: BTreeMap<(&str, &str), (usize, usize)> = BTreeMap::new();
    for (user, d, bytes) in deliveries {
        let e = adding.entry((*user, d.as_str())).or_default();
        e.0 += 1;
        e.1 += bytes.len();
    }
    let mut full = Vec::new();
    for ((user, d), (count, bytes)) in adding {
        // A device the store holds, of a parsed user (see `send`).
        let (uid, did) =
            (UserId::from_trusted(user.to_owned()), DeviceId::from_trusted(d.to_owned()));
        let (held, held_bytes) = ctx.to_device_usage(&uid, &did)?;
        if held as usize + count > quota::MAX_INBOX_MESSAGES {
            full.push((user, d.to_owned(), "messages"));
        } else if held_bytes as usize + bytes > quota::MAX_INBOX_BYTES {
            full.push((user, d.to_owned(), "bytes"));
        }
    }
    Ok(full)
}

/// How many distinct recipient devices a send has.
fn count_inboxes(deliveries: &[(&str, String, &[u8])]) -> usize {
    let mut set: Vec<(&str, &str)> = deliveries.iter().map(|(u, d, _)| (*u, d.as_str())).collect();
    set.sort_unstable();
    set.dedup();
    set.len()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn messages(v: Value) -> Map<String, Value> {
        v.as_object().expect("object").clone()
    }

    #[test]
    fn outgoing_keeps_this_servers_users_and_shapes_each_message() {
        let sender = UserId::parse("@a:hs").expect("user");
        let body = messages(json!({
            "@b:hs": { "PHONE": { "k": 1 }, "*": { "k": 2 } },
            "@c:elsewhere": { "D": {} },
            "not a user": { "D": {} },
        }));
        let out = outgoing(&sender, "m.x", &body, "hs").expect("outgoing");
        let got: Vec<(&str, &str, Value)> = out
            .iter()
            .map(|(u, d, b)| (u.as_str(), d.as_str(), serde_json::from_slice(b).expect("json")))
            .collect();
        assert_eq!(
            got,
            vec![
                ("@b:hs", "*", json!({ "type": "m.x", "sender": "@a:hs", "content": { "k": 2 } })),
                (
                    "@b:hs",
                    "PHONE",
                    json!({ "type": "m.x", "sender": "@a:hs", "content": { "k": 1 } })
                ),
            ]
        );
    }

    #[test]
    fn an_oversized_message_is_refused_before_the_write() {
        let sender = UserId::parse("@a:hs").expect("user");
        let big = "x".repeat(quota::TO_DEVICE_BYTES);
        let body = messages(json!({ "@b:hs": { "D": { "big": big } } }));
        assert!(outgoing(&sender, "m.x", &body, "hs").is_err());
    }
}
