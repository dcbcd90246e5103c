//! Push: each user's push-rule customisation, the notifications evaluation
//! produced, and pushers.
//!
//! A notification is a row for every member a message notifies, so it is
//! most of what a message costs the disk in a busy room and is kept to one
//! small row: `(user, room, stream) → mark`, where the mark's low bit says
//! "highlight" and the bits above name the action list the user's rules
//! gave, when it is one of those the default rules produce
//! (`COMMON_ACTIONS`, codes 1…). Unread counts are a range scan from the
//! user's read receipt; `GET /notifications` merges the user's rooms newest
//! first.
//!
//! Any other action list (code 0) is kept in a second row under
//! `(user, stream)`: `1 | room short: u64 | ts: u64 | actions`, `actions`
//! being `0` followed by the list's JSON. Earlier versions wrote that row
//! for every notification (with a one-byte code for common lists), and
//! before that as JSON (`{room_id, event_id, actions, ts}`); both are still
//! read.

use redb::ReadableTable;

use super::tables::{
    PUSH_QUEUE, PUSHER_TO_JSON, RECEIPT_TO_EVENT, USER_PUSH_RULES_TO_JSON,
    USER_ROOM_STREAM_TO_HIGHLIGHT, USER_STREAM_TO_NOTIFICATION,
};
use super::{ReadTxn, RoomShort, StoreError, StreamPos, WriteCtx};
use crate::ids::UserId;

macro_rules! push_reads {
    ($t:ty, $txn:tt) => {
        impl $t {
            /// The user's stored push-rule customisation (compact form).
            pub fn push_rules(&self, user: &UserId) -> Result<Option<Vec<u8>>, StoreError> {
                let user = user.as_str();
                let t = self.$txn.open_table(USER_PUSH_RULES_TO_JSON)?;
                let v = t.get(user)?;
                Ok(v.map(|v| v.value().to_vec()))
            }

            /// Pushers of a user: `(app_id, pushkey, JSON)`.
            pub fn pushers(
                &self,
                user: &UserId,
            ) -> Result<Vec<(String, String, Vec<u8>)>, StoreError> {
                let user = user.as_str();
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
        user: &UserId,
        room: RoomShort,
        after: StreamPos,
    ) -> Result<(u64, u64), StoreError> {
        let user = user.as_str();
        let t = self.0.open_table(USER_ROOM_STREAM_TO_HIGHLIGHT)?;
        let (mut n, mut h) = (0, 0);
        for row in t.range((user, room.0, after.0.saturating_add(1))..=(user, room.0, u64::MAX))? {
            let (_, v) = row?;
            n += 1;
            h += u64::from(v.value() & HIGHLIGHT);
        }
        Ok((n, h))
    }

    /// A user's notifications in a room after `after`: `(stream, highlight)`,
    /// oldest first.
    pub fn unread_rows(
        &self,
        user: &UserId,
        room: RoomShort,
        after: StreamPos,
    ) -> Result<Vec<(StreamPos, bool)>, StoreError> {
        let user = user.as_str();
        let t = self.0.open_table(USER_ROOM_STREAM_TO_HIGHLIGHT)?;
        let mut out = Vec::new();
        for row in t.range((user, room.0, after.0.saturating_add(1))..=(user, room.0, u64::MAX))? {
            let (k, v) = row?;
            out.push((StreamPos(k.value().2), v.value() & HIGHLIGHT != 0));
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
    /// When it was recorded, if the row says (else: the event's own
    /// `origin_server_ts`, which is what rows that say hold).
    pub ts: Option<u64>,
}

/// The mark's highlight bit; the bits above it are the action code.
const HIGHLIGHT: u8 = 1;

const ROW_V1: u8 = 1;

/// Action lists stored as one byte: those the default push rules give.
const COMMON_ACTIONS: [&[u8]; 5] = [
    br#"["notify"]"#,
    br#"["notify",{"set_tweak":"sound","value":"default"}]"#,
    br#"["notify",{"set_tweak":"sound","value":"default"},{"set_tweak":"highlight"}]"#,
    br#"["notify",{"set_tweak":"highlight"}]"#,
    br#"["notify",{"set_tweak":"sound","value":"ring"}]"#,
];

/// The code of a common action list (1…), or 0.
fn action_code(actions: &[u8]) -> u8 {
    COMMON_ACTIONS.iter().position(|c| *c == actions).map_or(0, |i| i as u8 + 1)
}

fn common_actions(code: u8) -> Option<&'static [u8]> {
    COMMON_ACTIONS.get(usize::from(code).checked_sub(1)?).copied()
}

fn encode_notification(room: RoomShort, actions: &[u8], ts: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(18 + actions.len());
    out.push(ROW_V1);
    out.extend_from_slice(&room.0.to_le_bytes());
    out.extend_from_slice(&ts.to_le_bytes());
    out.push(0);
    out.extend_from_slice(actions);
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
            Some(&i) => common_actions(i).ok_or_else(corrupt)?.to_vec(),
            None => return Err(corrupt()),
        };
        return Ok(NotificationRow { room, actions, ts: Some(ts) });
    }
    Err(corrupt())
}

impl ReadTxn {
    /// A user's notifications before `before`, newest first, decoded (rows
    /// of rooms that no longer resolve are skipped): the newest `limit` of
    /// each room the user has marks in, merged.
    pub fn notification_rows(
        &self,
        user: &UserId,
        before: StreamPos,
        limit: usize,
    ) -> Result<Vec<(StreamPos, NotificationRow)>, StoreError> {
        let user = user.as_str();
        let marks = self.0.open_table(USER_ROOM_STREAM_TO_HIGHLIGHT)?;
        let mut newest: Vec<(u64, u64, u8)> = Vec::new();
        let mut from_room = 0;
        loop {
            // The next room with marks (one seek per room).
            let next = marks.range((user, from_room, 0)..=(user, u64::MAX, u64::MAX))?.next();
            let Some(row) = next else { break };
            let room = row?.0.value().1;
            for row in marks.range((user, room, 0)..(user, room, before.0))?.rev().take(limit) {
                let (k, v) = row?;
                newest.push((k.value().2, room, v.value()));
            }
            match room.checked_add(1) {
                Some(r) => from_room = r,
                None => break,
            }
        }
        newest.sort_unstable_by_key(|m| std::cmp::Reverse(m.0));
        newest.truncate(limit);
        let side = self.0.open_table(USER_STREAM_TO_NOTIFICATION)?;
        let mut out = Vec::with_capacity(newest.len());
        for (stream, room, mark) in newest {
            let row = match common_actions(mark >> 1) {
                Some(actions) => {
                    NotificationRow { room: RoomShort(room), actions: actions.to_vec(), ts: None }
                }
                None => match side.get((user, stream))? {
                    Some(v) => match self.decode_side_row(v.value())? {
                        Some(row) => row,
                        None => continue,
                    },
                    None => return Err(StoreError::Corrupt("notification without actions".into())),
                },
            };
            out.push((StreamPos(stream), row));
        }
        Ok(out)
    }

    /// A `(user, stream)` notification row, in either layout it was written
    /// in (`None`: its room no longer resolves).
    fn decode_side_row(&self, bytes: &[u8]) -> Result<Option<NotificationRow>, StoreError> {
        if bytes.first() != Some(&b'{') {
            return decode_notification(bytes).map(Some);
        }
        // The JSON layout of earlier versions.
        let v: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| StoreError::Corrupt(format!("notification row: {e}")))?;
        let Some(room) = v["room_id"].as_str().map(|r| self.room(r)).transpose()?.flatten() else {
            return Ok(None);
        };
        let actions =
            serde_json::to_vec(&v["actions"]).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some(NotificationRow { room: RoomShort(room.short), actions, ts: v["ts"].as_u64() }))
    }
}

impl WriteCtx<'_> {
    pub fn put_push_rules(&mut self, user: &UserId, json: &[u8]) -> Result<(), StoreError> {
        let user = user.as_str();
        self.txn.open_table(USER_PUSH_RULES_TO_JSON)?.insert(user, json)?;
        Ok(())
    }

    /// Records a notification for `user` about the event at `stream`, with
    /// the actions (a JSON list) the user's rules gave and the event's `ts`.
    pub fn put_notification(
        &mut self,
        user: &UserId,
        room: RoomShort,
        stream: StreamPos,
        highlight: bool,
        actions: &[u8],
        ts: u64,
    ) -> Result<(), StoreError> {
        let user = user.as_str();
        let code = action_code(actions);
        self.txn
            .open_table(USER_ROOM_STREAM_TO_HIGHLIGHT)?
            .insert((user, room.0, stream.0), u8::from(highlight) | code << 1)?;
        if code == 0 {
            let row = encode_notification(room, actions, ts);
            self.txn
                .open_table(USER_STREAM_TO_NOTIFICATION)?
                .insert((user, stream.0), row.as_slice())?;
        }
        Ok(())
    }

    pub fn put_pusher(
        &mut self,
        user: &UserId,
        app_id: &str,
        pushkey: &str,
        json: &[u8],
    ) -> Result<(), StoreError> {
        let user = user.as_str();
        self.txn.open_table(PUSHER_TO_JSON)?.insert((user, app_id, pushkey), json)?;
        Ok(())
    }

    pub fn delete_pusher(
        &mut self,
        user: &UserId,
        app_id: &str,
        pushkey: &str,
    ) -> Result<bool, StoreError> {
        let user = user.as_str();
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
    pub fn unread_in_room(&self, user: &UserId, room: RoomShort) -> Result<u64, StoreError> {
        let user = user.as_str();
        let receipts = self.txn.open_table(RECEIPT_TO_EVENT)?;
        let mut read_upto = 0;
        for ty in ["m.read", "m.read.private"] {
            if let Some(v) = receipts.get((room.0, ty, user, ""))?
                && let Some((_, p)) = self.event_position(v.value().0)?
            {
                read_upto = read_upto.max(p.0);
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
