//! Event relationships (`m.relates_to`): children by parent, for
//! `/relations`, bundled aggregations and `/threads`.

use redb::ReadableTable;

use super::tables::{RELATION_TO_CHILD, THREAD_ROOT_TO_LATEST};
use super::{ReadTxn, RoomShort, StoreError, StreamPos, WriteCtx};

/// A child event of a relation.
#[derive(Clone, Debug)]
pub struct Child {
    pub stream: StreamPos,
    pub rel_type: String,
    pub sender: String,
    pub event_type: String,
}

macro_rules! relation_reads {
    ($t:ty, $txn:tt) => {
        impl $t {
            /// Children of `parent` (optionally of one `rel_type`), oldest
            /// first.
            pub fn relations(
                &self,
                room: RoomShort,
                parent: &str,
                rel_type: Option<&str>,
            ) -> Result<Vec<Child>, StoreError> {
                let t = self.$txn.open_table(RELATION_TO_CHILD)?;
                let mut out = Vec::new();
                for row in t.range((room.0, parent, rel_type.unwrap_or(""), 0)..)? {
                    let (k, v) = row?;
                    let (r, p, rt, s) = k.value();
                    if r != room.0 || p != parent || rel_type.is_some_and(|x| x != rt) {
                        break;
                    }
                    let (sender, ty) = v.value();
                    out.push(Child {
                        stream: StreamPos(s),
                        rel_type: rt.to_owned(),
                        sender: sender.to_owned(),
                        event_type: ty.to_owned(),
                    });
                }
                out.sort_by_key(|c| c.stream);
                Ok(out)
            }
        }
    };
}

relation_reads!(ReadTxn, 0);
// The writer checks new annotations against the ones before them.
relation_reads!(WriteCtx<'_>, txn);

impl ReadTxn {
    /// Thread roots of a room with the stream of their latest reply.
    pub fn thread_roots(&self, room: RoomShort) -> Result<Vec<(String, StreamPos)>, StoreError> {
        let t = self.0.open_table(THREAD_ROOT_TO_LATEST)?;
        let mut out = Vec::new();
        for row in t.range((room.0, "")..)? {
            let (k, v) = row?;
            let (r, root) = k.value();
            if r != room.0 {
                break;
            }
            out.push((root.to_owned(), StreamPos(v.value())));
        }
        Ok(out)
    }
}

impl WriteCtx<'_> {
    pub fn put_relation(
        &mut self,
        room: RoomShort,
        parent: &str,
        rel_type: &str,
        stream: StreamPos,
        // Not a `UserId`: copied as-is out of the stored event's JSON.
        sender: &str,
        event_type: &str,
    ) -> Result<(), StoreError> {
        self.txn
            .open_table(RELATION_TO_CHILD)?
            .insert((room.0, parent, rel_type, stream.0), (sender, event_type))?;
        if rel_type == "m.thread" {
            self.txn.open_table(THREAD_ROOT_TO_LATEST)?.insert((room.0, parent), stream.0)?;
        }
        Ok(())
    }

    pub fn delete_relation(
        &mut self,
        room: RoomShort,
        parent: &str,
        rel_type: &str,
        stream: StreamPos,
    ) -> Result<(), StoreError> {
        self.txn.open_table(RELATION_TO_CHILD)?.remove((room.0, parent, rel_type, stream.0))?;
        Ok(())
    }
}
