//! Per-user data that syncs: account data (global and per room) and read
//! receipts. Each write takes a stream position and leaves a row in a
//! "changes" index, so an incremental sync finds what changed by a range
//! scan from its `since`.

use redb::ReadableTable;

use super::tables::{
    RECEIPT_TO_EVENT, REPORT_TO_JSON, ROOM_STREAM_TO_RECEIPT, USER_ACCOUNT_DATA_TO_JSON,
    USER_STREAM_TO_ACCOUNT_DATA,
};
use super::{ReadTxn, RoomShort, StoreError, StreamPos, WriteCtx};
use crate::ids::UserId;

/// One receipt: who read up to which event, when.
#[derive(Clone, Debug)]
pub struct Receipt {
    pub receipt_type: String,
    pub user_id: String,
    pub thread_id: String,
    pub event_id: String,
    pub ts: u64,
}

impl ReadTxn {
    /// Account data of `user_id`; `room_id` is "" for global data.
    pub fn account_data(
        &self,
        user_id: &UserId,
        // Not a `RoomId`: "" keys global account data.
        room_id: &str,
        data_type: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let user_id = user_id.as_str();
        let t = self.0.open_table(USER_ACCOUNT_DATA_TO_JSON)?;
        let v = t.get((user_id, room_id, data_type))?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    /// `(room_id, type)` pairs changed with `after < stream`; all of them
    /// when `after` is `None`.
    pub fn account_data_changes(
        &self,
        user_id: &UserId,
        after: Option<StreamPos>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let user_id = user_id.as_str();
        let mut out = Vec::new();
        match after {
            None => {
                let t = self.0.open_table(USER_ACCOUNT_DATA_TO_JSON)?;
                for row in t.range((user_id, "", "")..)? {
                    let (k, _) = row?;
                    let (u, r, ty) = k.value();
                    if u != user_id {
                        break;
                    }
                    out.push((r.to_owned(), ty.to_owned()));
                }
            }
            Some(after) => {
                let t = self.0.open_table(USER_STREAM_TO_ACCOUNT_DATA)?;
                for row in t.range((user_id, after.0 + 1)..=(user_id, u64::MAX))? {
                    let (_, v) = row?;
                    let (r, ty) = v.value();
                    out.push((r.to_owned(), ty.to_owned()));
                }
                out.sort();
                out.dedup();
            }
        }
        Ok(out)
    }

    /// Receipts in a room changed with `after < stream` (all when `None`).
    pub fn receipts(
        &self,
        room: RoomShort,
        after: Option<StreamPos>,
    ) -> Result<Vec<Receipt>, StoreError> {
        let changes = self.0.open_table(ROOM_STREAM_TO_RECEIPT)?;
        let receipts = self.0.open_table(RECEIPT_TO_EVENT)?;
        let from = after.map(|a| a.0 + 1).unwrap_or(0);
        let mut keys = Vec::new();
        for row in changes.range((room.0, from)..=(room.0, u64::MAX))? {
            let (_, v) = row?;
            let (ty, user, thread) = v.value();
            keys.push((ty.to_owned(), user.to_owned(), thread.to_owned()));
        }
        keys.sort();
        keys.dedup();
        let mut out = Vec::new();
        for (ty, user, thread) in keys {
            if let Some(v) = receipts.get((room.0, ty.as_str(), user.as_str(), thread.as_str()))? {
                let (event_id, ts) = v.value();
                out.push(Receipt {
                    receipt_type: ty,
                    user_id: user,
                    thread_id: thread,
                    event_id: event_id.to_owned(),
                    ts,
                });
            }
        }
        Ok(out)
    }

    /// The event a user's receipt of `receipt_type` points at (unthreaded).
    pub fn receipt_event(
        &self,
        room: RoomShort,
        receipt_type: &str,
        user_id: &UserId,
    ) -> Result<Option<String>, StoreError> {
        let user_id = user_id.as_str();
        let receipts = self.0.open_table(RECEIPT_TO_EVENT)?;
        let v = receipts.get((room.0, receipt_type, user_id, ""))?;
        Ok(v.map(|v| v.value().0.to_owned()))
    }

    /// Every receipt of `receipt_type` a user has in a room, by thread
    /// (`""` unthreaded, `"main"`, or a thread root): `(thread, event_id)`.
    pub fn receipt_threads(
        &self,
        room: RoomShort,
        receipt_type: &str,
        user_id: &UserId,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let user_id = user_id.as_str();
        let receipts = self.0.open_table(RECEIPT_TO_EVENT)?;
        let mut out = Vec::new();
        for row in receipts.range((room.0, receipt_type, user_id, "")..)? {
            let (k, v) = row?;
            let (r, ty, u, thread) = k.value();
            if r != room.0 || ty != receipt_type || u != user_id {
                break;
            }
            out.push((thread.to_owned(), v.value().0.to_owned()));
        }
        Ok(out)
    }

    /// Whether anything in a room's receipts changed after `after`.
    pub fn receipts_changed(&self, room: RoomShort, after: StreamPos) -> Result<bool, StoreError> {
        let changes = self.0.open_table(ROOM_STREAM_TO_RECEIPT)?;
        let mut r = changes.range((room.0, after.0 + 1)..=(room.0, u64::MAX))?;
        Ok(r.next().is_some())
    }
}

impl ReadTxn {
    /// Every content report, oldest first: `(id, JSON)`.
    pub fn reports(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let t = self.0.open_table(REPORT_TO_JSON)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }
}

impl WriteCtx<'_> {
    /// Files a content report; returns its id.
    pub fn put_report(&mut self, json: &[u8]) -> Result<u64, StoreError> {
        let id = self.next_position().0;
        self.txn.open_table(REPORT_TO_JSON)?.insert(id, json)?;
        Ok(id)
    }

    pub fn put_account_data(
        &mut self,
        user_id: &UserId,
        // Not a `RoomId`: "" keys global account data.
        room_id: &str,
        data_type: &str,
        json: &[u8],
    ) -> Result<StreamPos, StoreError> {
        let user_id = user_id.as_str();
        let pos = self.next_position();
        self.txn
            .open_table(USER_ACCOUNT_DATA_TO_JSON)?
            .insert((user_id, room_id, data_type), json)?;
        self.txn
            .open_table(USER_STREAM_TO_ACCOUNT_DATA)?
            .insert((user_id, pos.0), (room_id, data_type))?;
        self.wake_user(user_id);
        Ok(pos)
    }

    pub fn account_data(
        &self,
        user_id: &UserId,
        // Not a `RoomId`: "" keys global account data.
        room_id: &str,
        data_type: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let user_id = user_id.as_str();
        let t = self.txn.open_table(USER_ACCOUNT_DATA_TO_JSON)?;
        let v = t.get((user_id, room_id, data_type))?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    /// How many types of account data `user_id` has in one scope
    /// (`room_id` "" for global data), for the caps in `quota`.
    pub fn account_data_count(&self, user_id: &UserId, room_id: &str) -> Result<usize, StoreError> {
        let user_id = user_id.as_str();
        let t = self.txn.open_table(USER_ACCOUNT_DATA_TO_JSON)?;
        let mut n = 0;
        for row in t.range((user_id, room_id, "")..)? {
            let (k, _) = row?;
            let (u, r, _) = k.value();
            if u != user_id || r != room_id {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    /// Stores (replaces) a user's receipt of one type and thread in a room,
    /// unless it points at an event no later in the room's stream than the
    /// one their current receipt points at: a receipt never moves back (a
    /// client sending a stale one would otherwise un-read what was read).
    /// `None` when it was ignored.
    pub fn put_receipt(
        &mut self,
        room: RoomShort,
        r: &Receipt,
    ) -> Result<Option<StreamPos>, StoreError> {
        let key = (room.0, r.receipt_type.as_str(), r.user_id.as_str(), r.thread_id.as_str());
        let current =
            self.txn.open_table(RECEIPT_TO_EVENT)?.get(key)?.map(|v| v.value().0.to_owned());
        if let Some(current) = current
            && !self.is_later_event(&r.event_id, &current)?
        {
            return Ok(None);
        }
        let pos = self.next_position();
        self.txn.open_table(RECEIPT_TO_EVENT)?.insert(key, (r.event_id.as_str(), r.ts))?;
        self.txn.open_table(ROOM_STREAM_TO_RECEIPT)?.insert(
            (room.0, pos.0),
            (r.receipt_type.as_str(), r.user_id.as_str(), r.thread_id.as_str()),
        )?;
        Ok(Some(pos))
    }

    /// Whether event `new` comes after event `old` in the stream; true when
    /// `old` is no longer known (nothing to compare with).
    pub fn is_later_event(&self, new: &str, old: &str) -> Result<bool, StoreError> {
        let Some((_, old)) = self.event_position(old)? else { return Ok(true) };
        Ok(self.event_position(new)?.is_some_and(|(_, new)| new > old))
    }
}
