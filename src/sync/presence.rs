//! Presence (spec: client-server-api/#presence): in memory only, like
//! typing. Every change takes the next serial, which sync tokens carry, so
//! an incremental `/sync` returns exactly the changes it has not seen. A
//! restart resets everyone to offline, which is what a restart means.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::ids::UserId;
use crate::membership::Membership;
use crate::store::Store;

/// How long after their last request a syncing user still counts as
/// online (a client long-polls at most 30 s between requests).
pub const ONLINE_TIMEOUT_MS: u64 = 60_000;

/// `online`, `unavailable` or `offline`.
pub fn valid_state(s: &str) -> bool {
    matches!(s, "online" | "unavailable" | "offline")
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub state: String,
    pub status_msg: Option<String>,
    /// When the user last did something (ms since the epoch; 0 = never).
    pub last_active_ms: u64,
    /// When a client of theirs last synced or set presence.
    last_seen_ms: u64,
    /// Set by `PUT /presence`: a sync's default `online` does not override
    /// an explicit `unavailable`.
    explicit: bool,
    serial: u64,
}

#[derive(Default)]
pub struct Presence {
    serial: u64,
    users: HashMap<UserId, Entry>,
}

impl Presence {
    pub fn serial(&self) -> u64 {
        self.serial
    }

    pub fn get(&self, user: &UserId) -> Option<&Entry> {
        self.users.get(user)
    }

    /// `PUT /presence/{userId}/status`. Returns whether anything others
    /// see changed.
    pub fn set(
        &mut self,
        user: &UserId,
        state: &str,
        status_msg: Option<String>,
        now: u64,
    ) -> bool {
        let active = state == "online";
        self.update(user, now, |e| {
            e.explicit = state != "online";
            let changed = e.state != state || e.status_msg != status_msg;
            e.state = state.to_owned();
            e.status_msg = status_msg;
            if active {
                e.last_active_ms = now;
            }
            changed
        })
    }

    /// A `/sync` request with `set_presence` (`None` = the default,
    /// `online`). Returns whether anything others see changed.
    pub fn synced(&mut self, user: &UserId, set_presence: Option<&str>, now: u64) -> bool {
        if set_presence == Some("offline") {
            return false;
        }
        self.update(user, now, |e| {
            let wanted = match set_presence {
                Some(s) => {
                    e.explicit = false;
                    s
                }
                // The default keeps an explicitly set `unavailable`.
                None if e.explicit && e.state != "offline" => e.state.as_str(),
                None => "online",
            }
            .to_owned();
            let changed = e.state != wanted;
            if wanted == "online" {
                e.last_active_ms = now;
            }
            e.state = wanted;
            changed
        })
    }

    fn update(&mut self, user: &UserId, now: u64, f: impl FnOnce(&mut Entry) -> bool) -> bool {
        let e = self.users.entry(user.clone()).or_insert_with(|| Entry {
            state: "offline".to_owned(),
            status_msg: None,
            last_active_ms: 0,
            last_seen_ms: now,
            explicit: false,
            serial: 0,
        });
        e.last_seen_ms = now;
        let changed = f(e);
        if changed {
            self.serial += 1;
            e.serial = self.serial;
        }
        changed
    }

    /// Marks offline everyone not seen for [`ONLINE_TIMEOUT_MS`] unless
    /// `still_here` says a request of theirs is open (a long-poll). Returns
    /// who changed.
    pub fn expire(&mut self, now: u64, still_here: impl Fn(&str) -> bool) -> Vec<UserId> {
        let mut gone = Vec::new();
        for (user, e) in self.users.iter_mut() {
            if e.state != "offline"
                && now.saturating_sub(e.last_seen_ms) > ONLINE_TIMEOUT_MS
                && !still_here(user.as_str())
            {
                self.serial += 1;
                e.state = "offline".to_owned();
                e.explicit = false;
                e.serial = self.serial;
                gone.push(user.clone());
            }
        }
        gone
    }

    /// Users whose presence changed after serial `since` (everyone known
    /// when `None`, or when `since` is from before a restart).
    pub fn changed_since(&self, since: Option<u64>) -> impl Iterator<Item = (&UserId, &Entry)> {
        let since = since.filter(|s| *s <= self.serial).unwrap_or(0);
        self.users.iter().filter(move |(_, e)| e.serial > since)
    }
}

impl Entry {
    /// The `content` of an `m.presence` event (and of `GET /presence`).
    pub fn content(&self, now: u64) -> Value {
        let mut c = json!({ "presence": self.state });
        if let Some(s) = &self.status_msg {
            c["status_msg"] = json!(s);
        }
        if self.last_active_ms > 0 {
            let ago = now.saturating_sub(self.last_active_ms);
            c["last_active_ago"] = json!(ago);
            c["currently_active"] = json!(self.state == "online" && ago < ONLINE_TIMEOUT_MS);
        }
        c
    }
}

/// Wakes the long-polls of everyone who sees `user`'s presence: the user
/// and everyone sharing a joined room with them.
pub fn wake_watchers(store: &Store, user: &UserId, mut wake: impl FnMut(&str)) {
    wake(user.as_str());
    let Ok(read) = store.read() else { return };
    let memberships = read.user_memberships(user).unwrap_or_default();
    for m in memberships.iter().filter(|m| m.membership == Membership::Join) {
        for m in read.members_with(m.room, Membership::Join).unwrap_or_default() {
            wake(&m);
        }
    }
}

/// Marks offline the users who stopped syncing (see [`Presence::expire`])
/// and wakes who sees them; the server runs this every second.
pub fn expire(
    presence: &mut Presence,
    store: &Store,
    now: u64,
    still_here: impl Fn(&str) -> bool,
    mut wake: impl FnMut(&str),
) {
    for user in presence.expire(now, still_here) {
        wake_watchers(store, &user, &mut wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> UserId {
        UserId::parse(s).expect("user ID")
    }

    #[test]
    fn a_sync_marks_online_once_and_later_syncs_change_nothing() {
        let mut p = Presence::default();
        assert!(p.synced(&user("@a:hs"), None, 1_000));
        let s = p.serial();
        assert!(!p.synced(&user("@a:hs"), None, 2_000));
        assert_eq!(p.serial(), s);
        assert_eq!(p.get(&user("@a:hs")).unwrap().content(2_500)["last_active_ago"], 500);
        assert!(!p.synced(&user("@b:hs"), Some("offline"), 2_000));
        assert!(p.get(&user("@b:hs")).is_none());
    }

    #[test]
    fn an_explicit_unavailable_survives_default_syncs() {
        let mut p = Presence::default();
        assert!(p.set(&user("@a:hs"), "unavailable", Some("lunch".into()), 10));
        assert!(!p.synced(&user("@a:hs"), None, 20));
        assert_eq!(p.get(&user("@a:hs")).unwrap().state, "unavailable");
        assert!(p.synced(&user("@a:hs"), Some("online"), 30));
        assert_eq!(p.get(&user("@a:hs")).unwrap().state, "online");
    }

    #[test]
    fn silent_users_go_offline_unless_a_request_is_open() {
        let mut p = Presence::default();
        p.synced(&user("@a:hs"), None, 0);
        p.synced(&user("@b:hs"), None, 0);
        assert!(p.expire(ONLINE_TIMEOUT_MS, |_| false).is_empty());
        let gone = p.expire(ONLINE_TIMEOUT_MS + 1, |u| u == "@b:hs");
        assert_eq!(gone, vec![user("@a:hs")]);
        let since = p.serial();
        assert_eq!(p.changed_since(Some(since)).count(), 0);
        p.synced(&user("@a:hs"), None, ONLINE_TIMEOUT_MS + 2);
        let changed: Vec<_> = p.changed_since(Some(since)).map(|(u, _)| u.clone()).collect();
        assert_eq!(changed, vec![user("@a:hs")]);
        // A token from before a restart (serial ahead of ours) sees all.
        assert_eq!(p.changed_since(Some(since + 100)).count(), 2);
    }
}
