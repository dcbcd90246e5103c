//! Per-connection state: for each `(user, device, conn_id)` the last few
//! snapshots of what the client was sent, keyed by the `pos` handed out with
//! them, within fixed bounds (see the parent module).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use crate::error::{ErrorKind, MatrixError};
use crate::ids::{DeviceId, UserId};
use crate::store::RoomShort;
use crate::store::StreamPos;

/// Connections one device may keep (Element X uses one or two).
const MAX_CONNECTIONS_PER_DEVICE: usize = 8;
/// Connections one user may keep over all their devices: one user's
/// clients cannot fill the server's table (four users at this cap do).
const MAX_CONNECTIONS_PER_USER: usize = 32;
/// Connections kept in total. Beyond it the least recently used connection
/// of the user holding the most goes, so a user within their share never
/// loses a connection to make room for another.
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
    pub(super) user_id: UserId,
    pub(super) device_id: DeviceId,
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

    pub(super) fn key(user_id: &UserId, device_id: &DeviceId, conn_id: &str) -> ConnKey {
        ConnKey {
            user_id: user_id.clone(),
            device_id: device_id.clone(),
            conn_id: conn_id.to_owned(),
        }
    }

    /// The snapshot a request builds on. Without `pos` the connection starts afresh; an unknown `pos` is
    /// `M_UNKNOWN_POS`.
    pub fn begin(
        &mut self,
        user_id: &UserId,
        device_id: &DeviceId,
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
        user_id: &UserId,
        device_id: &DeviceId,
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

    /// Evicts connections so `key` fits the caps: the device's own least
    /// recently used beyond its cap, then the user's own beyond theirs, and
    /// when the table is full the least recently used of whoever holds the
    /// most (never another user's while the requester holds as many).
    pub(super) fn make_room_for(&mut self, key: &ConnKey) {
        loop {
            let same_device =
                |k: &ConnKey| k.user_id == key.user_id && k.device_id == key.device_id;
            let same_user = |k: &ConnKey| k.user_id == key.user_id;
            let device_count = self.conns.keys().filter(|k| same_device(k)).count();
            let user_count = self.conns.keys().filter(|k| same_user(k)).count();
            let victim = if device_count >= MAX_CONNECTIONS_PER_DEVICE {
                self.least_recent(same_device)
            } else if user_count >= MAX_CONNECTIONS_PER_USER {
                self.least_recent(same_user)
            } else if self.conns.len() >= MAX_CONNECTIONS {
                let mut counts: HashMap<&str, usize> = HashMap::new();
                for k in self.conns.keys() {
                    *counts.entry(k.user_id.as_str()).or_default() += 1;
                }
                // Ties go to the requester: a user never displaces another
                // who holds no more than they do.
                let most = counts.values().copied().max().unwrap_or(0);
                if user_count >= most {
                    self.least_recent(same_user)
                } else {
                    self.least_recent(|k: &ConnKey| counts.get(k.user_id.as_str()) == Some(&most))
                }
            } else {
                return;
            };
            let Some(victim) = victim else { return };
            self.conns.remove(&victim);
        }
    }

    /// The least recently used connection among those `pick` selects.
    fn least_recent(&self, pick: impl Fn(&ConnKey) -> bool) -> Option<ConnKey> {
        self.conns
            .iter()
            .filter(|(k, _)| pick(k))
            .min_by_key(|(_, c)| c.used)
            .map(|(k, _)| k.clone())
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

    /// [`Connections::begin`] for the IDs `u` and `d`.
    fn begin(
        c: &mut Connections,
        u: &str,
        d: &str,
        conn_id: &str,
        pos: Option<&str>,
    ) -> Result<Rc<Snapshot>, MatrixError> {
        let (u, d) = (UserId::parse(u).expect("user ID"), DeviceId::parse(d).expect("device ID"));
        c.begin(&u, &d, conn_id, pos)
    }

    /// [`Connections::commit`] for the IDs `u` and `d`.
    fn commit(c: &mut Connections, u: &str, d: &str, conn_id: &str, snapshot: Snapshot) -> String {
        let (u, d) = (UserId::parse(u).expect("user ID"), DeviceId::parse(d).expect("device ID"));
        c.commit(&u, &d, conn_id, snapshot)
    }

    #[test]
    fn unknown_pos_and_eviction() {
        let mut c = Connections::new();
        assert!(begin(&mut c, "@a:x", "D", "", Some("1_2")).is_err());
        begin(&mut c, "@a:x", "D", "", None).unwrap();
        let pos = commit(&mut c, "@a:x", "D", "", Snapshot::default());
        assert!(begin(&mut c, "@a:x", "D", "", Some(&pos)).is_ok());
        // A retry with the same pos still works.
        assert!(begin(&mut c, "@a:x", "D", "", Some(&pos)).is_ok());
        assert!(begin(&mut c, "@a:x", "D", "other", Some(&pos)).is_err());
        for i in 0..MAX_CONNECTIONS_PER_DEVICE + 3 {
            begin(&mut c, "@a:x", "D", &format!("c{i}"), None).unwrap();
        }
        assert_eq!(c.len(), MAX_CONNECTIONS_PER_DEVICE);
        assert!(begin(&mut c, "@a:x", "D", "", Some(&pos)).is_err(), "oldest was evicted");
    }

    #[test]
    fn one_user_cannot_evict_another_users_connections() {
        let mut c = Connections::new();
        begin(&mut c, "@victim:x", "V", "", None).expect("begin");
        let pos = commit(&mut c, "@victim:x", "V", "", Snapshot::default());
        for d in 0..21 {
            for i in 0..MAX_CONNECTIONS_PER_DEVICE {
                begin(&mut c, "@flood:x", &format!("D{d}"), &format!("c{i}"), None).expect("begin");
            }
        }
        assert!(begin(&mut c, "@victim:x", "V", "", Some(&pos)).is_ok(), "the victim kept theirs");
        let flood = c.conns.keys().filter(|k| k.user_id.as_str() == "@flood:x").count();
        assert_eq!(flood, MAX_CONNECTIONS_PER_USER);
    }

    #[test]
    fn a_full_table_makes_room_from_the_user_holding_the_most() {
        let mut c = Connections::new();
        // Four users at their cap fill the table.
        for u in 0..MAX_CONNECTIONS / MAX_CONNECTIONS_PER_USER {
            for i in 0..MAX_CONNECTIONS_PER_USER {
                let device = format!("D{}", i / MAX_CONNECTIONS_PER_DEVICE);
                begin(&mut c, &format!("@u{u}:x"), &device, &format!("c{i}"), None).expect("begin");
            }
        }
        assert_eq!(c.len(), MAX_CONNECTIONS);
        begin(&mut c, "@late:x", "L", "", None).expect("begin");
        let pos = commit(&mut c, "@late:x", "L", "", Snapshot::default());
        assert_eq!(c.len(), MAX_CONNECTIONS);
        // A full user opening more evicts their own, not the newcomer's.
        for i in 0..MAX_CONNECTIONS_PER_USER {
            begin(&mut c, "@u0:x", "N", &format!("n{i}"), None).expect("begin");
        }
        assert!(begin(&mut c, "@late:x", "L", "", Some(&pos)).is_ok());
    }
}
