//! History visibility (spec: modules/history_visibility, "Server
//! behaviour"): which events of a room a user may see, judged with the
//! room's `m.room.history_visibility` and the user's membership *at each
//! event*.
//!
//! Both histories are small (a user's membership changes in one room, the
//! room's visibility changes), so they are loaded once per request and each
//! event is then judged in memory. The membership history also gives each
//! event served to the user its `unsigned.membership` ([`Memberships`]).
//!
//! The request-level rules sit here too: which room an ID names
//! ([`room_short`]), how far into a room's stream a user may read
//! ([`visible_upto`]) and whether one event is theirs to see
//! ([`visible_event`]).

use serde_json::Value;

use crate::error::{ErrorKind, MatrixError};
use crate::ids::{EventId, RoomId, UserId};
use crate::membership::Membership;
use crate::store::{ReadTxn, RoomShort, StoredEvent, StreamPos};

pub struct Visibility {
    /// The user's membership after each change, oldest first.
    memberships: Memberships,
    /// The room's history visibility after each change, oldest first.
    settings: Vec<(StreamPos, String)>,
    user_id: UserId,
}

fn content_field(e: &StoredEvent, key: &str) -> Option<String> {
    let v: Value = serde_json::from_slice(&e.json).ok()?;
    v.get("content")?.get(key)?.as_str().map(str::to_owned)
}

/// The value in force *before* `pos` in a change list, if any.
fn before<T>(changes: &[(StreamPos, T)], pos: StreamPos) -> Option<&T> {
    last_of(&changes[..changes.partition_point(|(p, _)| *p < pos)])
}

/// The value in force *after* the event at `pos`, if any.
fn after<T>(changes: &[(StreamPos, T)], pos: StreamPos) -> Option<&T> {
    last_of(&changes[..changes.partition_point(|(p, _)| *p <= pos)])
}

/// Change lists are sorted by position: the value in force is found by
/// binary search, so judging a page of events costs no walk of the list.
fn last_of<T>(changes: &[(StreamPos, T)]) -> Option<&T> {
    changes.last().map(|(_, v)| v)
}

/// A history visibility in force, `shared` without any setting.
fn visibility_or_shared(v: Option<&String>) -> &str {
    v.map_or("shared", String::as_str)
}

/// A membership in force, `leave` without any member event (spec: "If the
/// user had yet to join the room at the time of the event ... `leave`").
fn membership_or_leave(m: Option<&Membership>) -> Membership {
    m.copied().unwrap_or(Membership::Leave)
}

/// One user's membership history in one room: what each event's
/// `unsigned.membership` says (spec: the `membership` property of
/// `ClientEvent.unsigned`), and what history visibility is judged by.
#[derive(Debug)]
pub struct Memberships(Vec<(StreamPos, Membership)>);

impl Memberships {
    /// Every change, oldest first: a scan of the user's membership changes,
    /// not of the room's history.
    pub fn load(
        read: &ReadTxn,
        user_id: &UserId,
        room: RoomShort,
    ) -> Result<Memberships, MatrixError> {
        let mut changes = Vec::new();
        for pos in read.membership_positions(user_id, room)? {
            if let Some(ev) = read.event_at(room, pos)?
                && let Some(m) = content_field(&ev, "membership")
                && let Some(m) = Membership::parse(&m)
            {
                changes.push((pos, m));
            }
        }
        Ok(Memberships(changes))
    }

    /// What is needed to answer [`Memberships::at`] for events at `oldest`
    /// and later, given the user's current membership `latest` (membership,
    /// position of its event): nothing is read when every event is at or
    /// after that change, as in a member's recent timeline, where each
    /// event carries the current membership.
    pub fn since(
        read: &ReadTxn,
        user_id: &UserId,
        room: RoomShort,
        latest: (Membership, StreamPos),
        oldest: Option<StreamPos>,
    ) -> Result<Memberships, MatrixError> {
        let (membership, pos) = latest;
        if oldest.is_none_or(|o| o >= pos) {
            return Ok(Memberships(vec![(pos, membership)]));
        }
        Memberships::load(read, user_id, room)
    }

    /// The membership at the event at `pos`, the event's own change
    /// included; `leave` before the first (spec: "If the user had yet to
    /// join the room at the time of the event ... set to `leave`").
    pub fn at(&self, pos: StreamPos) -> Membership {
        membership_or_leave(after(&self.0, pos))
    }
}

impl Visibility {
    pub fn load(
        read: &ReadTxn,
        user_id: &UserId,
        room: RoomShort,
    ) -> Result<Visibility, MatrixError> {
        let memberships = Memberships::load(read, user_id, room)?;
        let mut settings = Vec::new();
        for pos in read.state_positions(room, "m.room.history_visibility", "")? {
            if let Some(ev) = read.event_at(room, pos)? {
                let v = content_field(&ev, "history_visibility").unwrap_or_else(|| "shared".into());
                settings.push((pos, v));
            }
        }
        Ok(Visibility { memberships, settings, user_id: user_id.clone() })
    }

    /// The user's membership history in the room.
    pub fn memberships(&self) -> &Memberships {
        &self.memberships
    }

    /// Whether the user has ever been in the room, or it is readable by all now.
    pub fn may_look(&self) -> bool {
        self.memberships.0.iter().any(|(_, m)| *m == Membership::Join)
            || self.settings.last().is_some_and(|(_, v)| v == "world_readable")
    }

    fn allows(&self, visibility: &str, membership: Membership, pos: StreamPos) -> bool {
        match (visibility, membership) {
            ("world_readable", _) | (_, Membership::Join) => true,
            ("invited", Membership::Invite) => true,
            ("joined" | "invited", _) => false,
            // `shared` and anything unknown (treated as shared): allowed if
            // the user joined at any point after the event.
            _ => self.memberships.0.iter().any(|(p, m)| *p > pos && *m == Membership::Join),
        }
    }

    /// May the user see this event?
    pub fn can_see(&self, event: &StoredEvent) -> bool {
        let pos = event.stream;
        let vis_before = visibility_or_shared(before(&self.settings, pos));
        let mem_before = membership_or_leave(before(&self.memberships.0, pos));
        if self.allows(vis_before, mem_before, pos) {
            return true;
        }
        // Visibility changes and the user's own member events count as
        // visible if the state before *or after* them allows it.
        let v: Value = serde_json::from_slice(&event.json).unwrap_or(Value::Null);
        let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
        let key = v.get("state_key").and_then(Value::as_str);
        let special = ty == "m.room.history_visibility"
            || (ty == "m.room.member" && key == Some(self.user_id.as_str()));
        special
            && self.allows(
                visibility_or_shared(after(&self.settings, pos)),
                self.memberships.at(pos),
                pos,
            )
    }
}

/// The short ID of a room this server knows; `404 M_NOT_FOUND` otherwise.
pub fn room_short(read: &ReadTxn, room_id: &RoomId) -> Result<RoomShort, MatrixError> {
    read.room(room_id.as_str())?
        .map(|r| RoomShort(r.short))
        .ok_or_else(|| MatrixError::not_found("Room not found"))
}

/// How far into a room's stream `user` may read: everything while joined
/// (or while the room is world-readable), up to their departure once they
/// left. Which events inside that range they may see is decided per event
/// by [`Visibility`].
pub fn visible_upto(
    read: &ReadTxn,
    user: &UserId,
    room: RoomShort,
) -> Result<StreamPos, MatrixError> {
    match read.membership(user, room)? {
        Some(m) if m.membership == Membership::Join => Ok(StreamPos(u64::MAX)),
        _ if world_readable_now(read, room)? => Ok(StreamPos(u64::MAX)),
        Some(m) if m.membership == Membership::Leave || m.membership == Membership::Ban => {
            Ok(m.stream)
        }
        _ => Err(MatrixError::forbidden("You are not a member of this room")),
    }
}

/// Whether the room's current history visibility is `world_readable`.
pub fn world_readable_now(read: &ReadTxn, room: RoomShort) -> Result<bool, MatrixError> {
    Ok(match read.state_event(room, "m.room.history_visibility", "")? {
        Some(ev) => {
            crate::room::served::parse_stored(&ev)?["content"]["history_visibility"]
                == "world_readable"
        }
        None => false,
    })
}

/// An event of a room that a user may see, with how far into the room they
/// may read and the visibility judge for its neighbours.
pub struct SeenEvent {
    pub event: StoredEvent,
    pub upto: StreamPos,
    pub vis: Visibility,
}

/// The event `event_id` of `room` if `user` may see it. Anything else
/// (unknown, in another room, after they left, hidden by history
/// visibility) is the same `404 M_NOT_FOUND`, so existence does not leak.
pub fn visible_event(
    read: &ReadTxn,
    user: &UserId,
    room: RoomShort,
    event_id: &EventId,
) -> Result<SeenEvent, MatrixError> {
    let not_found = || MatrixError::not_found("Event not found");
    // A non-member gets the same answer as for a missing event (spec:
    // 404 "not found or you do not have permission"), not the 403 of
    // `visible_upto`, which would confirm the room exists.
    let upto = match visible_upto(read, user, room) {
        Err(e) if e.kind == ErrorKind::Forbidden => return Err(not_found()),
        other => other?,
    };
    let (r, pos) = read.event_position(event_id.as_str())?.ok_or_else(not_found)?;
    if r != room || pos > upto {
        return Err(not_found());
    }
    let event = read.event_at(r, pos)?.ok_or_else(not_found)?;
    let vis = Visibility::load(read, user, room)?;
    if !vis.can_see(&event) {
        return Err(not_found());
    }
    Ok(SeenEvent { event, upto, vis })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(list: &[(u64, &str)]) -> Memberships {
        let parse = |m| Membership::parse(m).expect("a spec membership");
        Memberships(list.iter().map(|(p, m)| (StreamPos(*p), parse(m))).collect())
    }

    #[test]
    fn membership_at_an_event_counts_the_events_own_change() {
        let m = changes(&[(10, "invite"), (20, "join"), (30, "leave"), (40, "join")]);
        let at = |p| m.at(StreamPos(p)).as_str();
        assert_eq!(at(5), "leave", "no member event yet: leave (spec)");
        assert_eq!(at(10), "invite", "the invite itself");
        assert_eq!(at(15), "invite");
        assert_eq!(at(20), "join");
        assert_eq!(at(35), "leave");
        assert_eq!(at(40), "join");
        assert_eq!(at(1_000), "join");
    }
}
