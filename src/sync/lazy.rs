//! Lazy-loaded members remembered per device (spec: "Lazy-loading room
//! members"; DESIGN.md: "remembering per device which members were already
//! sent"). With `lazy_load_members` and without `include_redundant_members`,
//! an incremental `/sync` leaves out member events the device already has.
//!
//! A member event counts as known only once the client has acknowledged
//! the response that carried it, by syncing from a token at or past that
//! response's `next_batch`: a response lost on the way (the client retries
//! the same `since`) is sent again in full. Memory is bounded; forgetting
//! only costs redundant member events, never missing ones. A restart
//! forgets everything, with the same harmless effect.

use std::collections::HashMap;

use crate::ids::{DeviceId, UserId};
use crate::store::{RoomShort, StreamPos};

/// Devices remembered; the least recently syncing is forgotten first.
const MAX_DEVICES: usize = 512;
/// Member events remembered per device before its memory starts over.
const MAX_PER_DEVICE: usize = 20_000;

#[derive(Default)]
pub struct LazyMembers {
    clock: u64,
    devices: HashMap<(UserId, DeviceId), DeviceMembers>,
}

#[derive(Default)]
pub struct DeviceMembers {
    used: u64,
    entries: usize,
    /// room → member → (stream of the member event, `next_batch` of the
    /// response that carried it). Members stay strings: they are state
    /// keys read from event JSON while a response is built, and a typed key
    /// would cost an allocation per lookup.
    rooms: HashMap<RoomShort, HashMap<String, (StreamPos, StreamPos)>>,
}

impl LazyMembers {
    /// The memory of one device (created on first use).
    pub fn device(&mut self, user: &UserId, device: &DeviceId) -> &mut DeviceMembers {
        self.clock += 1;
        let key = (user.clone(), device.clone());
        if !self.devices.contains_key(&key) && self.devices.len() >= MAX_DEVICES {
            let oldest = self.devices.iter().min_by_key(|(_, d)| d.used).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.devices.remove(&k);
            }
        }
        let d = self.devices.entry(key).or_default();
        d.used = self.clock;
        d
    }

    /// Forgets a device (logged out or deleted).
    pub fn forget(&mut self, user: &UserId, device: &DeviceId) {
        self.devices.remove(&(user.clone(), device.clone()));
    }
}

impl DeviceMembers {
    /// Starts over (an initial sync: the client has nothing).
    pub fn clear(&mut self) {
        self.rooms.clear();
        self.entries = 0;
    }

    /// Whether the device has acknowledged `member`'s event at `event`.
    pub fn knows(&self, room: RoomShort, member: &str, event: StreamPos, since: StreamPos) -> bool {
        self.rooms
            .get(&room)
            .and_then(|r| r.get(member))
            .is_some_and(|(ev, sent)| *ev == event && *sent <= since)
    }

    /// Records that the response ending at `next_batch` carries `member`'s
    /// event at `event`.
    pub fn sent(&mut self, room: RoomShort, member: &str, event: StreamPos, next_batch: StreamPos) {
        if self.entries >= MAX_PER_DEVICE {
            self.clear();
        }
        let r = self.rooms.entry(room).or_default();
        match r.get_mut(member) {
            // Already acknowledged earlier: keep the earlier, known mark.
            Some((ev, sent)) if *ev == event => *sent = (*sent).min(next_batch),
            Some(entry) => *entry = (event, next_batch),
            None => {
                r.insert(member.to_owned(), (event, next_batch));
                self.entries += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: RoomShort = RoomShort(1);

    fn device<'a>(l: &'a mut LazyMembers, u: &str, d: &str) -> &'a mut DeviceMembers {
        l.device(&UserId::parse(u).expect("user ID"), &DeviceId::parse(d).expect("device ID"))
    }

    #[test]
    fn a_member_is_known_only_after_the_response_was_acknowledged() {
        let mut l = LazyMembers::default();
        let d = device(&mut l, "@a:hs", "DEV");
        d.sent(ROOM, "@b:hs", StreamPos(5), StreamPos(10));
        // The client retries from an older token: send again.
        assert!(!d.knows(ROOM, "@b:hs", StreamPos(5), StreamPos(9)));
        assert!(d.knows(ROOM, "@b:hs", StreamPos(5), StreamPos(10)));
        // A newer member event is not known.
        assert!(!d.knows(ROOM, "@b:hs", StreamPos(12), StreamPos(20)));
        // Sending the same event again keeps the acknowledged mark.
        d.sent(ROOM, "@b:hs", StreamPos(5), StreamPos(30));
        assert!(d.knows(ROOM, "@b:hs", StreamPos(5), StreamPos(10)));
        assert!(!device(&mut l, "@a:hs", "OTHER").knows(
            ROOM,
            "@b:hs",
            StreamPos(5),
            StreamPos(99)
        ));
    }

    #[test]
    fn memory_is_bounded_by_devices() {
        let mut l = LazyMembers::default();
        for i in 0..MAX_DEVICES + 10 {
            device(&mut l, "@a:hs", &format!("D{i}")).sent(
                ROOM,
                "@b:hs",
                StreamPos(1),
                StreamPos(1),
            );
        }
        assert_eq!(l.devices.len(), MAX_DEVICES);
        // The first devices were the least recently used and are gone.
        assert!(!device(&mut l, "@a:hs", "D0").knows(ROOM, "@b:hs", StreamPos(1), StreamPos(1)));
    }
}
