//! The newest event of each room that moves it up a room list (sliding
//! sync's `bump_stamp`), kept at write time so ordering a user's rooms is
//! one lookup per room however many non-bumping events (reactions, edits,
//! receipts-like noise) came after it. Which event types bump is the sync
//! module's rule; this table only stores the answer.

use super::tables::ROOM_TO_LATEST_BUMP;
use super::{ReadTxn, RoomShort, StoreError, StreamPos, WriteCtx};

impl ReadTxn {
    /// The stream position of the room's newest bumping event, if one was
    /// recorded (rooms from before this index have none).
    pub fn latest_bump(&self, room: RoomShort) -> Result<Option<StreamPos>, StoreError> {
        let t = self.0.open_table(ROOM_TO_LATEST_BUMP)?;
        Ok(t.get(room.0)?.map(|v| StreamPos(v.value())))
    }
}

impl WriteCtx<'_> {
    pub fn put_latest_bump(
        &mut self,
        room: RoomShort,
        stream: StreamPos,
    ) -> Result<(), StoreError> {
        self.txn.open_table(ROOM_TO_LATEST_BUMP)?.insert(room.0, stream.0)?;
        Ok(())
    }
}
