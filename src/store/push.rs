//! Push: each user's push-rule customisation, the notifications evaluation
//! produced, and pushers.
//!
//! A notification is written twice in the same transaction: under
//! `(user, room, stream)` so unread counts are a range scan from the user's
//! read receipt, and under `(user, stream)` for `GET /notifications`.
//!
//! The `(user, stream)` row is written for every member a message notifies,
//! so it is kept small (it is most of what a message costs the disk in a
//! busy room): `1 | room short: u64 | ts: u64 | actions`, where `actions`
//! is one byte naming one of the action lists the default rules produce
//! (`COMMON_ACTIONS`), or `0` followed by the list's JSON. Rows written
//! before this layout are JSON objects (`{room_id, event_id, actions, ts}`)
//! and are still read.

use redb::ReadableTable;

use super::tables::{
    EVENT_HASH_TO_POSITION, PUSH_QUEUE, PUSHER_TO_JSON, RECEIPT_TO_EVENT, USER_PUSH_RULES_TO_JSON,
    USER_ROOM_STREAM_TO_HIGHLIGHT, USER_STREAM_TO_NOTIFICATION, event_hash,
};
use super::{ReadTxn, RoomShort, StoreError, StreamPos, WriteCtx};

macro_rules! push_reads {
    ($t:ty, $txn:tt) => {
        impl $t {
            /// The user's stored push-rule customisation (compact form).
            pub fn push_rules(&self, user: &str) -> Result<Option<Vec<u8>>, StoreError> {
                let t = self.$txn.open_table(USER_PUSH_RULES_TO_JSON)?;
                let v = t.get(user)?;
                Ok(v.map(|v| v.value().to_vec()))
            }

            /// Pushers of a user: `(app_id, pushkey, JSON)`.
            pub fn pushers(
                &self,
                user: &str,
            ) -> Result<Vec<(String, String, Vec<u8>)>, StoreError> {
                let t = self.$txn.open_table(PUSHER_TO_JSON)?;
                let mut out = Vec::new();
                for row in t.range((user, "", "")..)? {
                    let (k, v) = row?;
                    let (u, a, p) = k.value();
                    if u != user {
                        break;
                    }
                    out.push((a.to_owned(), p.to_owned(), v.value().to_vec()));
                }
                Ok(out)
            }
        }
    };
}

push_reads!(ReadTxn, 0);
push_reads!(WriteCtx<'_>, txn);

impl ReadTxn {
    /// `(notifications, highlights)` of a user in a room after `after`.
    pub fn unread_counts(
        &self,
        user: &str,
        room: RoomShort,
        after: StreamPos,
    ) -> Result<(u64, u64), StoreError> {
        let t = self.0.open_table(USER_ROOM_STREAM_TO_HIGHLIGHT)?;
        let (mut n, mut h) = (0, 0);
        for row in t.range((user, room.0, after.0.saturating_add(1))..=(user, room.0, u64::MAX))? {
            let (_, v) = row?;
            n += 1;
            if v.value() != 0 {
                h += 1;
            }
        }
        Ok((n, h))
    }

    /// A user's notifications in a room after `after`: `(stream, highlight)`,
    /// oldest first.
    pub fn unread_rows(
        &self,
        user: &str,
        room: RoomShort,
        after: StreamPos,
    ) -> Result<Vec<(StreamPos, bool)>, StoreError> {
        let t = self.0.open_table(USER_ROOM_STREAM_TO_HIGHLIGHT)?;
        let mut out = Vec::new();
        for row in t.range((user, room.0, after.0.saturating_add(1))..=(user, room.0, u64::MAX))? {
            let (k, v) = row?;
            out.push((StreamPos(k.value().2), v.value() != 0));
        }
        Ok(out)
    }

    /// A user's notification rows before `before`, newest first, as stored.
    pub(super) fn notifications(
        &self,
        user: &str,
        before: StreamPos,
        limit: usize,
    ) -> Result<Vec<(StreamPos, Vec<u8>)>, StoreError> {
        let t = self.0.open_table(USER_STREAM_TO_NOTIFICATION)?;
        let mut out = Vec::new();
        for row in t.range((user, 0)..(user, before.0))?.rev().take(limit) {
            let (k, v) = row?;
            out.push((StreamPos(k.value().1), v.value().to_vec()));
        }
        Ok(out)
    }
}

/// One stored notification (the event is the one at the row's position).
#[derive(Debug, Clone)]
pub struct NotificationRow {
    pub room: RoomShort,
    /// The actions the user's push rules gave, as JSON (a list).
    pub actions: Vec<u8>,
    pub ts: u64,
}

const ROW_V1: u8 = 1;

/// Action lists stored as one byte: those the default push rules give.
const COMMON_ACTIONS: [&[u8]; 5] = [
    br#"["notify"]"#,
    br#"["notify",{"set_tweak":"sound","value":"default"}]"#,
    br#"["notify",{"set_tweak":"sound","value":"default"},{"set_tweak":"highlight"}]"#,
    br#"["notify",{"set_tweak":"highlight"}]"#,
    br#"["notify",{"set_tweak":"sound","value":"ring"}]"#,
];

fn encode_notification(room: RoomShort, actions: &[u8], ts: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(18);
    out.push(ROW_V1);
    out.extend_from_slice(&room.0.to_le_bytes());
    out.extend_from_slice(&ts.to_le_bytes());
    match COMMON_ACTIONS.iter().position(|c| *c == actions) {
        Some(i) => out.push(i as u8 + 1),
        None => {
            out.push(0);
            out.extend_from_slice(actions);
        }
    }
    out
}

fn decode_notification(bytes: &[u8]) -> Result<NotificationRow, StoreError> {
    let corrupt = || StoreError::Corrupt("notification row".into());
    if bytes.first() == Some(&ROW_V1) {
        let u64_at = |at: usize| -> Result<u64, StoreError> {
            let b: [u8; 8] =
                bytes.get(at..at + 8).and_then(|b| b.try_into().ok()).ok_or_else(corrupt)?;
            Ok(u64::from_le_bytes(b))
        };
        let room = RoomShort(u64_at(1)?);
        let ts = u64_at(9)?;
        let actions = match bytes.get(17) {
            Some(0) => bytes[18..].to_vec(),
            Some(&i) => COMMON_ACTIONS.get(usize::from(i) - 1).ok_or_else(corrupt)?.to_vec(),
            None => return Err(corrupt()),
        };
        return Ok(NotificationRow { room, actions, ts });
    }
    Err(corrupt())
}

impl ReadTxn {
    /// A user's notifications before `before`, newest first, decoded (rows
    /// of rooms that no longer resolve are skipped).
    pub fn notification_rows(
        &self,
        user: &str,
        before: StreamPos,
        limit: usize,
    ) -> Result<Vec<(StreamPos, NotificationRow)>, StoreError> {
        let mut out = Vec::new();
        for (pos, bytes) in self.notifications(user, before, limit)? {
            if bytes.first() == Some(&b'{') {
                // The JSON layout of earlier versions.
                let v: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| StoreError::Corrupt(format!("notification row: {e}")))?;
                let Some(room) = v["room_id"].as_str().map(|r| self.room(r)).transpose()?.flatten()
                else {
                    continue;
                };
                let actions = serde_json::to_vec(&v["actions"])
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let ts = v["ts"].as_u64().unwrap_or(0);
                out.push((pos, NotificationRow { room: RoomShort(room.short), actions, ts }));
            } else {
                out.push((pos, decode_notification(&bytes)?));
            }
        }
        Ok(out)
    }
}

impl WriteCtx<'_> {
    pub fn put_push_rules(&mut self, user: &str, json: &[u8]) -> Result<(), StoreError> {
        self.txn.open_table(USER_PUSH_RULES_TO_JSON)?.insert(user, json)?;
        Ok(())
    }

    /// Records a notification for `user` about the event at `stream`, with
    /// the actions (a JSON list) the user's rules gave and the event's `ts`.
    pub fn put_notification(
        &mut self,
        user: &str,
        room: RoomShort,
        stream: StreamPos,
        highlight: bool,
        actions: &[u8],
        ts: u64,
    ) -> Result<(), StoreError> {
        self.txn
            .open_table(USER_ROOM_STREAM_TO_HIGHLIGHT)?
            .insert((user, room.0, stream.0), u8::from(highlight))?;
        let row = encode_notification(room, actions, ts);
        self.txn
            .open_table(USER_STREAM_TO_NOTIFICATION)?
            .insert((user, stream.0), row.as_slice())?;
        Ok(())
    }

    pub fn put_pusher(
        &mut self,
        user: &str,
        app_id: &str,
        pushkey: &str,
        json: &[u8],
    ) -> Result<(), StoreError> {
        self.txn.open_table(PUSHER_TO_JSON)?.insert((user, app_id, pushkey), json)?;
        Ok(())
    }

    pub fn delete_pusher(
        &mut self,
        user: &str,
        app_id: &str,
        pushkey: &str,
    ) -> Result<bool, StoreError> {
        let mut t = self.txn.open_table(PUSHER_TO_JSON)?;
        let existed = t.remove((user, app_id, pushkey))?.is_some();
        Ok(existed)
    }

    /// Every pusher with this app ID and pushkey, whoever owns it (a pushkey
    /// moves to the user who set it last unless `append`).
    pub fn pushers_with_key(&self, app_id: &str, pushkey: &str) -> Result<Vec<String>, StoreError> {
        let t = self.txn.open_table(PUSHER_TO_JSON)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, _) = row?;
            let (u, a, p) = k.value();
            if a == app_id && p == pushkey {
                out.push(u.to_owned());
            }
        }
        Ok(out)
    }
}

/// The wake key the writer uses to tell the event loop that a push is
/// queued (user IDs always start with `@`, so it cannot collide).
pub const PUSH_WAKE: &str = "!push-queue";

impl ReadTxn {
    /// Queued push deliveries, oldest first: `(sequence, JSON)`.
    pub fn push_queue(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let t = self.0.open_table(PUSH_QUEUE)?;
        let mut out = Vec::new();
        for row in t.iter()?.take(limit) {
            let (k, v) = row?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }
}

impl WriteCtx<'_> {
    /// Notifications of `user` in `room` after their read receipt (for the
    /// push payload's unread count).
    pub fn unread_in_room(&self, user: &str, room: RoomShort) -> Result<u64, StoreError> {
        let receipts = self.txn.open_table(RECEIPT_TO_EVENT)?;
        let positions = self.txn.open_table(EVENT_HASH_TO_POSITION)?;
        let mut read_upto = 0;
        for ty in ["m.read", "m.read.private"] {
            if let Some(v) = receipts.get((room.0, ty, user, ""))?
                && let Some(p) = positions.get(event_hash(v.value().0))?
            {
                read_upto = read_upto.max(p.value().1);
            }
        }
        let t = self.txn.open_table(USER_ROOM_STREAM_TO_HIGHLIGHT)?;
        let mut n = 0;
        for row in t.range((user, room.0, read_upto + 1)..=(user, room.0, u64::MAX))? {
            row?;
            n += 1;
        }
        Ok(n)
    }

    /// Queues a delivery; it survives restarts until sent or given up.
    pub fn queue_push(&mut self, json: &[u8]) -> Result<(), StoreError> {
        let seq = self.next_position().0;
        self.txn.open_table(PUSH_QUEUE)?.insert(seq, json)?;
        self.wake_user(PUSH_WAKE);
        Ok(())
    }

    pub fn update_push(&mut self, seq: u64, json: &[u8]) -> Result<(), StoreError> {
        self.txn.open_table(PUSH_QUEUE)?.insert(seq, json)?;
        Ok(())
    }

    pub fn remove_push(&mut self, seq: u64) -> Result<(), StoreError> {
        self.txn.open_table(PUSH_QUEUE)?.remove(seq)?;
        Ok(())
    }
}
