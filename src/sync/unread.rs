//! Unread notification counts (spec: "Receiving notifications", threaded
//! read receipts): which notifications of a user in a room are after what
//! they have read, for the main timeline and for each thread.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::error::MatrixError;
use crate::ids::UserId;
use crate::store::{ReadTxn, RoomShort, StreamPos};

/// `(notification_count, highlight_count)`.
pub type Counts = (u64, u64);

/// Counts for the main timeline and per thread root.
#[derive(Debug, Default, PartialEq)]
pub struct Unread {
    pub main: Counts,
    pub threads: BTreeMap<String, Counts>,
}

impl Unread {
    /// Main timeline and every thread together.
    pub fn total(&self) -> Counts {
        self.threads.values().fold(self.main, |(n, h), (tn, th)| (n + tn, h + th))
    }
}

/// Where a user's read receipts (public or private) point in a room.
#[derive(Debug, Default)]
struct ReadMarks {
    /// Unthreaded receipts: everything up to here is read.
    all: StreamPos,
    /// `thread_id: "main"`.
    main: StreamPos,
    /// Per thread root.
    threads: HashMap<String, StreamPos>,
}

fn read_marks(read: &ReadTxn, user: &UserId, room: RoomShort) -> Result<ReadMarks, MatrixError> {
    let mut marks = ReadMarks::default();
    for ty in ["m.read", "m.read.private"] {
        for (thread, event_id) in read.receipt_threads(room, ty, user)? {
            let Some((r, p)) = read.event_position(&event_id)? else { continue };
            if r != room {
                continue;
            }
            let slot = match thread.as_str() {
                "" => &mut marks.all,
                "main" => &mut marks.main,
                _ => marks.threads.entry(thread).or_default(),
            };
            *slot = (*slot).max(p);
        }
    }
    Ok(marks)
}

/// The stream position up to which `user` has read the main timeline of
/// `room`: their newest unthreaded or `main` read receipt, public or private.
pub fn read_position(
    read: &ReadTxn,
    user: &UserId,
    room: RoomShort,
) -> Result<StreamPos, MatrixError> {
    let marks = read_marks(read, user, room)?;
    Ok(marks.all.max(marks.main))
}

/// The unread counts of `user` in `room`, split by thread.
pub fn counts(read: &ReadTxn, user: &UserId, room: RoomShort) -> Result<Unread, MatrixError> {
    let marks = read_marks(read, user, room)?;
    let mut out = Unread::default();
    for (stream, highlight) in read.unread_rows(user, room, marks.all)? {
        let (slot, seen) = match thread_of(read, room, stream)? {
            None => (&mut out.main, marks.main),
            Some(root) => {
                let seen = marks.threads.get(&root).copied().unwrap_or_default();
                (out.threads.entry(root).or_default(), seen)
            }
        };
        if stream > seen {
            slot.0 += 1;
            slot.1 += u64::from(highlight);
        }
    }
    out.threads.retain(|_, c| c.0 > 0);
    Ok(out)
}

/// The thread root of the event at `stream`, if it is in a thread.
fn thread_of(
    read: &ReadTxn,
    room: RoomShort,
    stream: StreamPos,
) -> Result<Option<String>, MatrixError> {
    let Some(ev) = read.event_at(room, stream)? else { return Ok(None) };
    // Most events are not in a thread: skip parsing those.
    if !ev.json.windows(8).any(|w| w == b"m.thread") {
        return Ok(None);
    }
    let v: Value =
        serde_json::from_slice(&ev.json).map_err(|e| MatrixError::internal("stored event", e))?;
    let rel = &v["content"]["m.relates_to"];
    Ok(match (rel["rel_type"].as_str(), rel["event_id"].as_str()) {
        (Some("m.thread"), Some(root)) => Some(root.to_owned()),
        _ => None,
    })
}
