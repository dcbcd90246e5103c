//! One room of a response: only what the client does not have yet (the
//! summary fields that changed, the new timeline, the required state that
//! changed or is newly asked for, lazily-loaded members).

use std::collections::{BTreeSet, HashSet};

use serde_json::{Map, Value, json};

use super::connection::{Meta, SentRoom};
use super::request::{RoomConfig, fingerprint};
use super::{Candidate, SyncInput};
use crate::error::MatrixError;
use crate::ids::UserId;
use crate::membership::Membership;
use crate::room::served::Viewer;
use crate::room::visibility::Visibility;
use crate::store::{ReadTxn, RoomShort, StreamPos};
use crate::sync::{
    event_value, event_value_for, pagination_token, read_position, restricted_history, sender_of,
    set_memberships, stripped_state,
};

/// Lazily-loaded members remembered per room; beyond this the set is reset
/// (resending a member event is harmless, unbounded memory is not).
const MAX_LAZY_REMEMBERED: usize = 1000;

/// Heroes per room (as `m.heroes` in `/v3/sync`).
const MAX_HEROES: usize = 5;

pub(super) struct RoomContext<'a> {
    pub(super) input: &'a SyncInput<'a>,
    /// The connection's previous position (`None` on its first request).
    pub(super) prev_stream: Option<StreamPos>,
    pub(super) direct: &'a HashSet<String>,
}

pub(super) struct BuiltRoom {
    pub(super) body: Value,
    pub(super) sent: SentRoom,
    pub(super) fresh: bool,
    pub(super) event_ids: HashSet<String>,
}

/// One room of the response, or `None` when the client is up to date.
pub(super) fn room_response(
    ctx: &RoomContext,
    c: &Candidate,
    cfg: &RoomConfig,
    sent: Option<&SentRoom>,
) -> Result<Option<BuiltRoom>, MatrixError> {
    let read = ctx.input.read;
    let user = ctx.input.user_id;
    let m = &c.membership;
    // A membership change (invite → join, join → leave) replaces the room.
    let sent = sent.filter(|s| s.membership_stream == m.stream);
    let fresh = sent.is_none();
    let is_dm = ctx.direct.contains(c.room_id.as_str());
    if m.membership == Membership::Invite || m.membership == Membership::Knock {
        if !fresh {
            return Ok(None);
        }
        let key = if m.membership == Membership::Invite { "invite_state" } else { "knock_state" };
        // An invite may say it is direct before `m.direct` knows the room.
        let flagged = match read.state_event(c.room, "m.room.member", user.as_str())? {
            Some(ev) => event_value(&ev, false)?["content"]["is_direct"] == json!(true),
            None => false,
        };
        let mut body = json!({
            "initial": true,
            "membership": m.membership,
            "bump_stamp": c.bump,
            key: stripped_state(read, c.room, user)?,
        });
        if is_dm || flagged {
            body["is_dm"] = json!(true);
        }
        let sent = SentRoom {
            stream: m.stream,
            membership_stream: m.stream,
            timeline_limit: 0,
            state_hash: 0,
            meta: Meta { bump: c.bump, is_dm, ..Meta::default() },
            lazy_sent: HashSet::new(),
        };
        return Ok(Some(BuiltRoom { body, sent, fresh: true, event_ids: HashSet::new() }));
    }
    let joined = m.membership == Membership::Join;
    // A room left is shown up to the leave, nothing after it.
    let end = if joined { ctx.input.upto } else { m.stream };
    let limit = cfg.timeline_limit;
    let state_hash = cfg.state_hash();
    let state_changed_cfg = sent.is_none_or(|s| s.state_hash != state_hash);
    let (from, expanded) = match sent {
        Some(s) if limit > s.timeline_limit => (StreamPos(0), true),
        Some(s) => (s.stream, false),
        None => (StreamPos(0), false),
    };
    let (mut events, limited) = read.events_after(c.room, from, end, limit)?;
    if from == StreamPos(0) && (!joined || restricted_history(read, c.room)?) {
        let vis = Visibility::load(read, ctx.input.user_id, c.room)?;
        events.retain(|e| vis.can_see(e));
    }
    let since = sent.map(|s| s.stream);
    let changes = match since {
        Some(s) => read.state_changes(c.room, s, end)?,
        None => Vec::new(),
    };
    // Recompute the summary only when something could have changed it.
    let meta_due = fresh || state_changed_cfg || !changes.is_empty();
    let unread_due = joined
        && (fresh
            || !events.is_empty()
            || since.is_some_and(|s| read.receipts_changed(c.room, s).unwrap_or(true)));
    let mut meta = sent.map(|s| s.meta.clone()).unwrap_or_default();
    meta.bump = c.bump;
    meta.is_dm = is_dm;
    let mut summary = Map::new();
    if meta_due {
        let name = state_content(read, c.room, "m.room.name", "", end)?
            .and_then(|v| v["name"].as_str().filter(|n| !n.is_empty()).map(str::to_owned));
        let avatar = state_content(read, c.room, "m.room.avatar", "", end)?
            .and_then(|v| v["url"].as_str().filter(|n| !n.is_empty()).map(str::to_owned));
        let joined_users = read.members_with(c.room, Membership::Join)?;
        let invited_users = read.members_with(c.room, Membership::Invite)?;
        let heroes = if name.is_none() {
            heroes(read, c.room, user, &joined_users, &invited_users)?
        } else {
            Vec::new()
        };
        let new = Meta {
            name: fingerprint(&name),
            avatar: fingerprint(&avatar),
            heroes: fingerprint(&serde_json::to_string(&heroes).unwrap_or_default()),
            joined: joined_users.len(),
            invited: invited_users.len(),
            ..meta.clone()
        };
        if (fresh || new.name != meta.name)
            && let Some(n) = &name
        {
            summary.insert("name".into(), json!(n));
        }
        if fresh || new.avatar != meta.avatar {
            // `null` tells an up-to-date client the avatar was removed.
            if avatar.is_some() || !fresh {
                summary.insert("avatar".into(), json!(avatar));
            }
        }
        if (fresh || new.heroes != meta.heroes) && !heroes.is_empty() {
            summary.insert("heroes".into(), json!(heroes));
        }
        if joined && (fresh || new.joined != meta.joined) {
            summary.insert("joined_count".into(), json!(new.joined));
        }
        if joined && (fresh || new.invited != meta.invited) {
            summary.insert("invited_count".into(), json!(new.invited));
        }
        meta = new;
    }
    if unread_due {
        let unread =
            read.unread_counts(user, c.room, read_position(read, ctx.input.user_id, c.room)?)?;
        if fresh || unread != meta.unread {
            summary.insert("notification_count".into(), json!(unread.0));
            summary.insert("highlight_count".into(), json!(unread.1));
        }
        meta.unread = unread;
    }
    let old_meta = sent.map(|s| &s.meta);
    if fresh || old_meta.is_some_and(|o| o.bump != meta.bump) {
        summary.insert("bump_stamp".into(), json!(meta.bump));
    }
    if fresh && is_dm || old_meta.is_some_and(|o| o.is_dm != is_dm) {
        summary.insert("is_dm".into(), json!(is_dm));
    }

    // Required state: all of it that the config asks for on a fresh room or
    // a changed config (the MSC lets us resend what the client has), else
    // what changed; then the members the timeline needs (`$LAZY`).
    let mut lazy_sent = sent.map(|s| s.lazy_sent.clone()).unwrap_or_default();
    if limited || lazy_sent.len() > MAX_LAZY_REMEMBERED {
        // After a gap the client must drop its member cache (MSC4186).
        lazy_sent.clear();
    }
    let mut keys: BTreeSet<(String, String)> = BTreeSet::new();
    if fresh || state_changed_cfg {
        if cfg.has_wildcard() {
            for (t, k, _) in read.room_state(c.room)? {
                if cfg.matches(&t, &k) {
                    keys.insert((t, k));
                }
            }
        } else {
            for r in &cfg.required {
                for (t, k) in &r.include {
                    if cfg.matches(t, k) {
                        keys.insert((t.clone(), k.clone()));
                    }
                }
            }
        }
    } else {
        for (t, k) in &changes {
            if cfg.matches(t, k) || (cfg.lazy() && !limited && t == "m.room.member") {
                keys.insert((t.clone(), k.clone()));
            }
        }
    }
    let mut timeline: Vec<Value> = events
        .iter()
        .map(|e| {
            event_value_for(
                e,
                true,
                Some(Viewer { user: ctx.input.user_id, device: ctx.input.device_id }),
            )
        })
        .collect::<Result<_, _>>()?;
    set_memberships(read, ctx.input.user_id, m, &events, &mut timeline)?;
    if cfg.lazy() {
        for v in &timeline {
            let mut users = Vec::new();
            if let Some(s) = sender_of(v) {
                users.push(s.to_owned());
            }
            if v["type"] == "m.room.member"
                && let Some(k) = v["state_key"].as_str()
            {
                users.push(k.to_owned());
            }
            for u in users {
                if !lazy_sent.contains(&fingerprint(&u)) {
                    keys.insert(("m.room.member".into(), u));
                }
            }
        }
    }
    let mut required_state = Vec::new();
    for (t, k) in &keys {
        if let Some(ev) = read.state_event(c.room, t, k)?
            && ev.stream <= end
        {
            if t == "m.room.member" {
                lazy_sent.insert(fingerprint(k));
            }
            required_state.push(event_value(&ev, true)?);
        }
    }

    let live_after = sent.map(|s| s.stream).or(ctx.prev_stream);
    let num_live = match live_after {
        Some(p) => events.iter().filter(|e| e.stream > p).count(),
        None => 0,
    };
    if !fresh && !expanded && timeline.is_empty() && required_state.is_empty() && summary.is_empty()
    {
        return Ok(None);
    }
    let mut body = Map::new();
    if fresh {
        body.insert("initial".into(), json!(true));
    }
    if fresh || sent.is_some_and(|s| s.membership_stream != m.stream) {
        body.insert("membership".into(), json!(m.membership));
    }
    body.extend(summary);
    let event_ids: HashSet<String> =
        timeline.iter().filter_map(|v| v["event_id"].as_str().map(str::to_owned)).collect();
    if let Some(first) = events.first() {
        body.insert("prev_batch".into(), json!(pagination_token(first.stream)));
    } else if fresh {
        body.insert("prev_batch".into(), json!(pagination_token(StreamPos(end.0 + 1))));
    }
    if !timeline.is_empty() || fresh {
        body.insert("timeline".into(), Value::Array(timeline));
        body.insert("num_live".into(), json!(num_live));
    }
    if limited {
        body.insert("limited".into(), json!(true));
    }
    if expanded {
        body.insert("expanded_timeline".into(), json!(true));
        body.insert("unstable_expanded_timeline".into(), json!(true));
    }
    if !required_state.is_empty() {
        body.insert("required_state".into(), Value::Array(required_state));
    }
    let timeline_limit = match sent {
        Some(s) if !expanded && !limited => s.timeline_limit,
        _ => limit,
    };
    let sent = SentRoom {
        stream: end,
        membership_stream: m.stream,
        timeline_limit,
        state_hash,
        meta,
        lazy_sent,
    };
    Ok(Some(BuiltRoom { body: Value::Object(body), sent, fresh, event_ids }))
}

/// The content of a current state event, if it existed at `end`.
pub(super) fn state_content(
    read: &ReadTxn,
    room: RoomShort,
    t: &str,
    k: &str,
    end: StreamPos,
) -> Result<Option<Value>, MatrixError> {
    match read.state_event(room, t, k)? {
        Some(ev) if ev.stream <= end => Ok(Some(event_value(&ev, false)?["content"].take())),
        _ => Ok(None),
    }
}

/// Up to five other members (joined first, then invited), with their
/// display names and avatars from their member events.
pub(super) fn heroes(
    read: &ReadTxn,
    room: RoomShort,
    user: &UserId,
    joined: &[String],
    invited: &[String],
) -> Result<Vec<Value>, MatrixError> {
    let mut out = Vec::new();
    for u in joined.iter().chain(invited).filter(|u| *u != user.as_str()).take(MAX_HEROES) {
        let mut hero = json!({ "user_id": u });
        if let Some(ev) = read.state_event(room, "m.room.member", u)? {
            let v = event_value(&ev, false)?;
            if let Some(n) = v["content"]["displayname"].as_str() {
                hero["displayname"] = json!(n);
            }
            if let Some(a) = v["content"]["avatar_url"].as_str() {
                hero["avatar_url"] = json!(a);
            }
        }
        out.push(hero);
    }
    Ok(out)
}
