//! Device-list tracking for end-to-end encryption: which users' devices a
//! syncing client must re-fetch (`device_lists.changed`) or may forget
//! (`device_lists.left`).

use std::collections::HashSet;

use crate::error::MatrixError;
use crate::ids::UserId;
use crate::membership::Membership;
use crate::store::{ReadTxn, StreamPos};

/// Users sharing at least one joined room with `user_id` (including itself).
pub fn room_mates(read: &ReadTxn, user_id: &UserId) -> Result<HashSet<String>, MatrixError> {
    let mut out = HashSet::new();
    out.insert(user_id.as_str().to_owned());
    for m in read.user_memberships(user_id)? {
        if m.membership == Membership::Join {
            out.extend(read.members_with(m.room, Membership::Join)?);
        }
    }
    Ok(out)
}

/// Device-list changes between two positions for the users `user_id`
/// shares rooms with: keys changed, or membership in a shared room changed
/// (joined → `changed`; no longer sharing any room → `left`).
///
/// The syncing user is listed in `changed` when their own devices or keys
/// changed: the spec makes no exception for them, and their other devices
/// need it to learn of a new device (to verify it, share secrets and room
/// keys with it). Joining a room alone does not list them: nothing of
/// theirs changed.
pub fn device_list_changes(
    read: &ReadTxn,
    user: &UserId,
    from: StreamPos,
    to: StreamPos,
) -> Result<(Vec<String>, Vec<String>), MatrixError> {
    if from >= to {
        return Ok((Vec::new(), Vec::new()));
    }
    let mates = room_mates(read, user)?;
    let user_id = user.as_str();
    let mut changed: HashSet<String> = HashSet::new();
    let mut left: HashSet<String> = HashSet::new();
    for u in read.key_changes(from, to)? {
        if mates.contains(&u) {
            changed.insert(u);
        }
    }
    let rooms_changed: HashSet<_> = read.membership_changes(user, from)?.into_iter().collect();
    for m in read.user_memberships(user)? {
        if rooms_changed.contains(&m.room) && m.membership == Membership::Join {
            // We joined: everyone there is new to us.
            for u in read.members_with(m.room, Membership::Join)? {
                if u != user_id {
                    changed.insert(u);
                }
            }
            continue;
        }
        if m.membership != Membership::Join {
            continue;
        }
        for (t, k) in read.state_changes(m.room, from, to)? {
            if t != "m.room.member" || k == user_id {
                continue;
            }
            if mates.contains(&k) {
                changed.insert(k);
            } else {
                left.insert(k);
            }
        }
    }
    let mut changed: Vec<String> = changed.into_iter().collect();
    let mut left: Vec<String> = left.into_iter().filter(|u| !mates.contains(u)).collect();
    changed.sort();
    left.sort();
    Ok((changed, left))
}
