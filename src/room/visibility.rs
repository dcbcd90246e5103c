//! History visibility (spec: modules/history_visibility, "Server
//! behaviour"): which events of a room a user may see, judged with the
//! room's `m.room.history_visibility` and the user's membership *at each
//! event*.
//!
//! Both histories are small (a user's membership changes in one room, the
//! room's visibility changes), so they are loaded once per request and each
//! event is then judged in memory.

use serde_json::Value;

use crate::error::MatrixError;
use crate::store::{ReadTxn, RoomShort, StoredEvent, StreamPos};

pub struct Visibility {
    /// The user's membership after each change, oldest first.
    memberships: Vec<(StreamPos, String)>,
    /// The room's history visibility after each change, oldest first.
    settings: Vec<(StreamPos, String)>,
    user_id: String,
}

fn content_field(e: &StoredEvent, key: &str) -> Option<String> {
    let v: Value = serde_json::from_slice(&e.json).ok()?;
    v.get("content")?.get(key)?.as_str().map(str::to_owned)
}

/// The value in force *before* `pos` in a change list (default `dflt`).
fn before<'a>(changes: &'a [(StreamPos, String)], pos: StreamPos, dflt: &'a str) -> &'a str {
    changes.iter().rev().find(|(p, _)| *p < pos).map(|(_, v)| v.as_str()).unwrap_or(dflt)
}

/// The value in force *after* the event at `pos`.
fn after<'a>(changes: &'a [(StreamPos, String)], pos: StreamPos, dflt: &'a str) -> &'a str {
    changes.iter().rev().find(|(p, _)| *p <= pos).map(|(_, v)| v.as_str()).unwrap_or(dflt)
}

impl Visibility {
    pub fn load(read: &ReadTxn, user_id: &str, room: RoomShort) -> Result<Visibility, MatrixError> {
        let mut memberships = Vec::new();
        for pos in read.membership_positions(user_id, room)? {
            if let Some(ev) = read.event_at(room, pos)?
                && let Some(m) = content_field(&ev, "membership")
            {
                memberships.push((pos, m));
            }
        }
        let mut settings = Vec::new();
        for pos in read.state_positions(room, "m.room.history_visibility", "")? {
            if let Some(ev) = read.event_at(room, pos)? {
                let v = content_field(&ev, "history_visibility").unwrap_or_else(|| "shared".into());
                settings.push((pos, v));
            }
        }
        Ok(Visibility { memberships, settings, user_id: user_id.to_owned() })
    }

    /// Whether the user has ever been in the room, or it is readable by all now.
    pub fn may_look(&self) -> bool {
        self.memberships.iter().any(|(_, m)| m == "join")
            || self.settings.last().is_some_and(|(_, v)| v == "world_readable")
    }

    fn allows(&self, visibility: &str, membership: &str, pos: StreamPos) -> bool {
        match (visibility, membership) {
            ("world_readable", _) | (_, "join") => true,
            ("invited", "invite") => true,
            ("joined" | "invited", _) => false,
            // `shared` and anything unknown (treated as shared): allowed if
            // the user joined at any point after the event.
            _ => self.memberships.iter().any(|(p, m)| *p > pos && m == "join"),
        }
    }

    /// May the user see this event?
    pub fn can_see(&self, event: &StoredEvent) -> bool {
        let pos = event.stream;
        let vis_before = before(&self.settings, pos, "shared");
        let mem_before = before(&self.memberships, pos, "leave");
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
                after(&self.settings, pos, "shared"),
                after(&self.memberships, pos, "leave"),
                pos,
            )
    }
}
