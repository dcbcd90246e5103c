//! Push: each user's push-rule customisation, the notifications evaluation
//! produced, and pushers.
//!
//! A notification is written twice in the same transaction: under
//! `(user, room, stream)` so unread counts are a range scan from the user's
//! read receipt, and under `(user, stream)` for `GET /notifications`.

use redb::ReadableTable;

use super::tables::{
    PUSHER_TO_JSON, USER_PUSH_RULES_TO_JSON, USER_ROOM_STREAM_TO_HIGHLIGHT,
    USER_STREAM_TO_NOTIFICATION,
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

    /// A user's notifications before `before`, newest first.
    pub fn notifications(
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

impl WriteCtx<'_> {
    pub fn put_push_rules(&mut self, user: &str, json: &[u8]) -> Result<(), StoreError> {
        self.txn.open_table(USER_PUSH_RULES_TO_JSON)?.insert(user, json)?;
        Ok(())
    }

    /// Records a notification for `user` about the event at `stream`.
    pub fn put_notification(
        &mut self,
        user: &str,
        room: RoomShort,
        stream: StreamPos,
        highlight: bool,
        json: &[u8],
    ) -> Result<(), StoreError> {
        self.txn
            .open_table(USER_ROOM_STREAM_TO_HIGHLIGHT)?
            .insert((user, room.0, stream.0), u8::from(highlight))?;
        self.txn.open_table(USER_STREAM_TO_NOTIFICATION)?.insert((user, stream.0), json)?;
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
