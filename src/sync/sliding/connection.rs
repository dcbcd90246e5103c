//! Per-connection state: for each `(user, device, conn_id)` the last few
//! snapshots of what the client was sent, keyed by the `pos` handed out with
//! them, within fixed bounds (see the parent module).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use crate::error::{ErrorKind, MatrixError};
use crate::store::RoomShort;
use crate::store::StreamPos;

/// Connections one device may keep (Element X uses one or two).
const MAX_CONNECTIONS_PER_DEVICE: usize = 8;
/// Connections kept in total; the least recently used is evicted beyond it.
const MAX_CONNECTIONS: usize = 128;
/// Snapshots kept per connection: the one the client builds on, and the
/// newest few answers it may not have received yet (retries, cancels).
const SNAPSHOTS_PER_CONNECTION: usize = 4;
/// The longest `conn_id` accepted.
const MAX_CONN_ID_LEN: usize = 64;

/// What one response told the client: the base of the next incremental one.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub(super) stream: StreamPos,
    pub(super) typing: u64,
    pub(super) rooms: HashMap<RoomShort, SentRoom>,
    pub(super) list_counts: BTreeMap<String, usize>,
}

/// What the client has of one room, as fingerprints (no event data).
#[derive(Clone, Debug)]
pub(super) struct SentRoom {
    /// The room's events and state are the client's up to here.
    pub(super) stream: StreamPos,
    /// The user's member event the room was sent with.
    pub(super) membership_stream: StreamPos,
    /// The client holds at least this many of the latest events.
    pub(super) timeline_limit: usize,
    pub(super) state_hash: u64,
    pub(super) meta: Meta,
    /// Members whose member event was sent (hashes of user IDs).
    pub(super) lazy_sent: HashSet<u64>,
}

/// The summary fields of a room response, compared to send only changes.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Meta {
    pub(super) name: u64,
    pub(super) avatar: u64,
    pub(super) heroes: u64,
    pub(super) is_dm: bool,
    pub(super) bump: u64,
    pub(super) joined: usize,
    pub(super) invited: usize,
    pub(super) unread: (u64, u64),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct ConnKey {
    pub(super) user_id: String,
    pub(super) device_id: String,
    pub(super) conn_id: String,
}

pub(super) struct Connection {
    pub(super) used: u64,
    pub(super) snapshots: Vec<(u64, Rc<Snapshot>)>,
}

/// All sliding sync connections of the server (in memory, bounded).
pub struct Connections {
    pub(super) conns: HashMap<ConnKey, Connection>,
    pub(super) clock: u64,
    /// Distinguishes this process's `pos` tokens from an earlier run's.
    pub(super) epoch: u64,
}

impl Default for Connections {
    fn default() -> Self {
        Connections::new()
    }
}

impl Connections {
    pub fn new() -> Connections {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Connections { conns: HashMap::new(), clock: 0, epoch }
    }

    pub(super) fn key(user_id: &str, device_id: &str, conn_id: &str) -> ConnKey {
        ConnKey {
            user_id: user_id.to_owned(),
            device_id: device_id.to_owned(),
            conn_id: conn_id.to_owned(),
        }
    }

    /// The snapshot a request builds on. Without `pos` the connection starts afresh; an unknown `pos` is
    /// `M_UNKNOWN_POS`.
    pub fn begin(
        &mut self,
        user_id: &str,
        device_id: &str,
        conn_id: &str,
        pos: Option<&str>,
    ) -> Result<Rc<Snapshot>, MatrixError> {
        if conn_id.len() > MAX_CONN_ID_LEN {
            return Err(MatrixError::invalid_param("conn_id is too long"));
        }
        self.clock += 1;
        let key = Self::key(user_id, device_id, conn_id);
        let Some(pos) = pos else {
            self.conns.remove(&key);
            self.make_room_for(&key);
            self.conns.insert(key, Connection { used: self.clock, snapshots: Vec::new() });
            return Ok(Rc::new(Snapshot::default()));
        };
        let unknown = || MatrixError::new(ErrorKind::UnknownPos, "Unknown or expired pos");
        let id = self.parse_pos(pos).ok_or_else(unknown)?;
        let conn = self.conns.get_mut(&key).ok_or_else(unknown)?;
        let snap = conn.snapshots.iter().find(|(i, _)| *i == id).map(|(_, s)| s.clone());
        let snap = snap.ok_or_else(unknown)?;
        // The client has what `pos` describes: older snapshots are done with.
        conn.snapshots.retain(|(i, _)| *i >= id);
        conn.used = self.clock;
        Ok(snap)
    }

    /// Stores the snapshot of a response; returns its `pos`.
    pub fn commit(
        &mut self,
        user_id: &str,
        device_id: &str,
        conn_id: &str,
        snapshot: Snapshot,
    ) -> String {
        self.clock += 1;
        let id = self.clock;
        let key = Self::key(user_id, device_id, conn_id);
        if !self.conns.contains_key(&key) {
            // Evicted while the request ran: start it again.
            self.make_room_for(&key);
        }
        let conn =
            self.conns.entry(key).or_insert_with(|| Connection { used: 0, snapshots: Vec::new() });
        conn.used = id;
        conn.snapshots.push((id, Rc::new(snapshot)));
        if conn.snapshots.len() > SNAPSHOTS_PER_CONNECTION {
            // Keep the oldest (what the client builds on) and the newest.
            conn.snapshots.remove(1);
        }
        format!("{}_{id}", self.epoch)
    }

    pub(super) fn parse_pos(&self, pos: &str) -> Option<u64> {
        let (epoch, id) = pos.split_once('_')?;
        if epoch.parse::<u64>().ok()? != self.epoch {
            return None;
        }
        id.parse().ok()
    }

    /// Evicts least recently used connections so `key` fits the caps.
    pub(super) fn make_room_for(&mut self, key: &ConnKey) {
        loop {
            let same_device =
                |k: &ConnKey| k.user_id == key.user_id && k.device_id == key.device_id;
            let device_count = self.conns.keys().filter(|k| same_device(k)).count();
            let victim = if device_count >= MAX_CONNECTIONS_PER_DEVICE {
                self.conns.iter().filter(|(k, _)| same_device(k)).min_by_key(|(_, c)| c.used)
            } else if self.conns.len() >= MAX_CONNECTIONS {
                self.conns.iter().min_by_key(|(_, c)| c.used)
            } else {
                return;
            };
            let Some((victim, _)) = victim else { return };
            let victim = victim.clone();
            self.conns.remove(&victim);
        }
    }

    /// Number of live connections (for tests and metrics).
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_pos_and_eviction() {
        let mut c = Connections::new();
        assert!(c.begin("@a:x", "D", "", Some("1_2")).is_err());
        c.begin("@a:x", "D", "", None).unwrap();
        let pos = c.commit("@a:x", "D", "", Snapshot::default());
        assert!(c.begin("@a:x", "D", "", Some(&pos)).is_ok());
        // A retry with the same pos still works.
        assert!(c.begin("@a:x", "D", "", Some(&pos)).is_ok());
        assert!(c.begin("@a:x", "D", "other", Some(&pos)).is_err());
        for i in 0..MAX_CONNECTIONS_PER_DEVICE + 3 {
            c.begin("@a:x", "D", &format!("c{i}"), None).unwrap();
        }
        assert_eq!(c.len(), MAX_CONNECTIONS_PER_DEVICE);
        assert!(c.begin("@a:x", "D", "", Some(&pos)).is_err(), "oldest was evicted");
    }
}
