//! The search index: one posting per (term, event), in
//! `search_term_stream_to_room`.
//!
//! Stream positions are unique across rooms, so `(term, stream)` names one
//! event, and a term's postings sort by stream: walking a term newest first
//! is a reverse range scan, and "the newest event at or below `p` with this
//! term" is one seek. A search intersects its terms' posting lists by
//! leapfrogging seeks ([`SearchIndex::next_match`]); nothing is loaded per
//! room or per term, so memory does not grow with history.
//!
//! Postings are written in the same transaction as the event (a message is
//! searchable as soon as its send returns) and deleted with the redaction
//! that empties it. Files from before the index have no table: they search
//! as empty (events stored before then are not indexed).

use redb::ReadOnlyTable;

use super::tables::SEARCH_TERM_STREAM_TO_ROOM;
use super::{ReadTxn, RoomShort, StoreError, StreamPos, WriteCtx};

/// One event that holds every term of a search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchHit {
    pub room: RoomShort,
    pub stream: StreamPos,
    /// The bit of the searchable key its text came from (body, name, topic).
    pub key_bit: u8,
}

/// `search_term_stream_to_room` as a read transaction opens it.
type PostingTable = ReadOnlyTable<(&'static str, u64), (u64, u8)>;

/// The index opened for one search.
pub struct SearchIndex(Option<PostingTable>);

impl ReadTxn {
    pub fn search_index(&self) -> Result<SearchIndex, StoreError> {
        match self.0.open_table(SEARCH_TERM_STREAM_TO_ROOM) {
            Ok(t) => Ok(SearchIndex(Some(t))),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(SearchIndex(None)),
            Err(e) => Err(e.into()),
        }
    }
}

impl SearchIndex {
    /// The newest posting of `term` with stream `<= at`.
    fn seek(table: &PostingTable, term: &str, at: u64) -> Result<Option<SearchHit>, StoreError> {
        let mut range = table.range((term, 0)..=(term, at))?;
        match range.next_back() {
            Some(row) => {
                let (k, v) = row?;
                let (room, key_bit) = v.value();
                Ok(Some(SearchHit {
                    room: RoomShort(room),
                    stream: StreamPos(k.value().1),
                    key_bit,
                }))
            }
            None => Ok(None),
        }
    }

    /// The newest event with stream `< before` whose postings include every
    /// one of `terms`; `None` when there is none (or `terms` is empty).
    ///
    /// Leapfrog intersection: seek each term to the current target; a term
    /// whose newest posting is older lowers the target to it, and the round
    /// starts again. Each round either ends or lowers the target, and every
    /// step is one O(log n) seek.
    pub fn next_match(
        &self,
        terms: &[String],
        before: StreamPos,
    ) -> Result<Option<SearchHit>, StoreError> {
        let Some(table) = &self.0 else { return Ok(None) };
        if terms.is_empty() || before.0 == 0 {
            return Ok(None);
        }
        let mut target = before.0 - 1;
        'round: loop {
            let mut found = None;
            for term in terms {
                match Self::seek(table, term, target)? {
                    None => return Ok(None),
                    Some(hit) if hit.stream.0 < target => {
                        target = hit.stream.0;
                        continue 'round;
                    }
                    Some(hit) => found = Some(hit),
                }
            }
            return Ok(found);
        }
    }
}

impl WriteCtx<'_> {
    /// Adds an event's postings.
    pub fn put_search_terms(
        &mut self,
        room: RoomShort,
        stream: StreamPos,
        key_bit: u8,
        terms: &[String],
    ) -> Result<(), StoreError> {
        let mut t = self.txn.open_table(SEARCH_TERM_STREAM_TO_ROOM)?;
        for term in terms {
            t.insert((term.as_str(), stream.0), (room.0, key_bit))?;
        }
        Ok(())
    }

    /// Removes an event's postings (the terms it was indexed under).
    pub fn delete_search_terms(
        &mut self,
        stream: StreamPos,
        terms: &[String],
    ) -> Result<(), StoreError> {
        let mut t = self.txn.open_table(SEARCH_TERM_STREAM_TO_ROOM)?;
        for term in terms {
            t.remove((term.as_str(), stream.0))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn terms(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn next_match_intersects_posting_lists_newest_first_and_forgets_deleted_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), 1 << 20, None).expect("open");
        store
            .write_blocking(|ctx| {
                let docs: [(u64, &[&str]); 5] = [
                    (10, &["apple", "pie"]),
                    (20, &["apple"]),
                    (30, &["pie", "crust"]),
                    (40, &["apple", "pie", "crust"]),
                    (50, &["banana"]),
                ];
                for (stream, words) in docs {
                    ctx.put_search_terms(
                        RoomShort(stream % 3),
                        StreamPos(stream),
                        1,
                        &terms(words),
                    )?;
                }
                Ok(Ok::<_, StoreError>(()))
            })
            .expect("write");
        let read = store.read().expect("read");
        let index = read.search_index().expect("index");
        let walk = |q: &[&str]| {
            let mut out = Vec::new();
            let mut before = StreamPos(u64::MAX);
            while let Some(hit) = index.next_match(&terms(q), before).expect("match") {
                out.push((hit.stream.0, hit.room.0));
                before = hit.stream;
            }
            out
        };
        assert_eq!(walk(&["apple", "pie"]), [(40, 1), (10, 1)]);
        assert_eq!(walk(&["pie", "apple"]), [(40, 1), (10, 1)]);
        assert_eq!(walk(&["crust"]), [(40, 1), (30, 0)]);
        assert_eq!(walk(&["apple", "banana"]), []);
        assert_eq!(walk(&["cherry"]), []);
        assert_eq!(walk(&[]), []);
        drop(index);
        drop(read);
        store
            .write_blocking(|ctx| {
                ctx.delete_search_terms(StreamPos(40), &terms(&["apple", "pie", "crust"]))?;
                Ok(Ok::<_, StoreError>(()))
            })
            .expect("delete");
        let read = store.read().expect("read");
        let index = read.search_index().expect("index");
        let hit = index.next_match(&terms(&["apple", "pie"]), StreamPos(u64::MAX)).expect("m");
        assert_eq!(hit.map(|h| h.stream), Some(StreamPos(10)));
        store.shutdown();
    }
}
