//! Typing notifications: in memory only (spec: they are ephemeral), with a
//! serial that sync tokens carry so an incremental sync knows whether a
//! room's typing set changed since the client last saw it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ids::UserId;
use crate::membership::Membership;
use crate::store::{RoomShort, Store};

/// The longest a client may claim to be typing for.
pub const MAX_TYPING: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct Typing {
    serial: u64,
    rooms: HashMap<RoomShort, RoomTyping>,
}

#[derive(Default)]
struct RoomTyping {
    changed: u64,
    users: HashMap<UserId, Instant>,
}

impl Typing {
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// Sets or clears `user` typing in `room`; returns whether the set changed.
    pub fn set(&mut self, room: RoomShort, user: &UserId, until: Option<Instant>) -> bool {
        let now = Instant::now();
        let r = self.rooms.entry(room).or_default();
        r.users.retain(|_, t| *t > now);
        let changed = match until {
            Some(t) => r.users.insert(user.clone(), t).is_none(),
            None => r.users.remove(user).is_some(),
        };
        if changed {
            self.serial += 1;
            r.changed = self.serial;
        }
        if r.users.is_empty() && !changed {
            self.rooms.remove(&room);
        }
        changed
    }

    /// Drops expired entries; returns the rooms whose set changed.
    pub fn expire(&mut self) -> Vec<RoomShort> {
        let now = Instant::now();
        let mut changed = Vec::new();
        for (room, r) in self.rooms.iter_mut() {
            let before = r.users.len();
            r.users.retain(|_, t| *t > now);
            if r.users.len() != before {
                changed.push(*room);
            }
        }
        for room in &changed {
            self.serial += 1;
            if let Some(r) = self.rooms.get_mut(room) {
                r.changed = self.serial;
            }
        }
        changed
    }

    /// The users typing in `room` if its set changed after `since`
    /// (always when `since` is `None`).
    pub fn changed_since(&self, room: RoomShort, since: Option<u64>) -> Option<Vec<UserId>> {
        let r = self.rooms.get(&room)?;
        if since.is_some_and(|s| r.changed <= s) {
            return None;
        }
        let now = Instant::now();
        let mut users: Vec<UserId> =
            r.users.iter().filter(|(_, t)| **t > now).map(|(u, _)| u.clone()).collect();
        users.sort();
        if since.is_none() && users.is_empty() {
            return None;
        }
        Some(users)
    }
}

/// When a typing notification that starts now ends: after the client's
/// `timeout_ms`, at most [`MAX_TYPING`] (the default); `None` when the
/// user stopped typing.
pub fn until(typing: bool, timeout_ms: Option<u64>) -> Option<Instant> {
    let timeout = timeout_ms.map(Duration::from_millis).unwrap_or(MAX_TYPING).min(MAX_TYPING);
    typing.then(|| Instant::now() + timeout)
}

/// Drops expired typing entries and wakes the joined members of the rooms
/// whose typing set changed; the server runs this every second.
pub fn expire(typing: &mut Typing, store: &Store, mut wake: impl FnMut(&str)) {
    let rooms = typing.expire();
    if rooms.is_empty() {
        return;
    }
    let Ok(read) = store.read() else { return };
    for room in rooms {
        for m in read.members_with(room, Membership::Join).unwrap_or_default() {
            wake(&m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> UserId {
        UserId::parse(s).expect("user ID")
    }

    #[test]
    fn starting_and_stopping_bumps_the_serial_and_shows_since() {
        let mut t = Typing::default();
        let room = RoomShort(1);
        assert!(t.set(room, &user("@a:x"), Some(Instant::now() + Duration::from_secs(5))));
        let s1 = t.serial();
        assert_eq!(t.changed_since(room, Some(0)), Some(vec![user("@a:x")]));
        assert_eq!(t.changed_since(room, Some(s1)), None);
        assert!(t.set(room, &user("@a:x"), None));
        assert_eq!(t.changed_since(room, Some(s1)), Some(vec![]));
        assert!(!t.set(room, &user("@a:x"), None), "stopping twice changes nothing");
    }

    #[test]
    fn typing_lasts_the_clients_timeout_at_most_thirty_seconds() {
        let start = Instant::now();
        assert_eq!(until(false, Some(5_000)), None);
        let short = until(true, Some(5_000)).expect("typing");
        assert!(short >= start + Duration::from_secs(5) && short < start + MAX_TYPING);
        for long in [until(true, Some(3_600_000)), until(true, None)] {
            let end = long.expect("typing");
            assert!(end >= start + MAX_TYPING && end <= Instant::now() + MAX_TYPING);
        }
    }

    #[test]
    fn expired_typers_disappear() {
        let mut t = Typing::default();
        let room = RoomShort(2);
        t.set(room, &user("@a:x"), Some(Instant::now() - Duration::from_millis(1)));
        assert_eq!(t.expire(), vec![room]);
        assert_eq!(t.changed_since(room, Some(0)), Some(vec![]));
    }
}
