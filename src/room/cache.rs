//! Parsed room state the writer reads for every event, kept between writer
//! operations so that sending a message does not parse the create, power
//! levels and member events from JSON again each time.
//!
//! # Why it cannot go stale
//!
//! Entries are keyed by the *stream position* of the stored event, and every
//! lookup first asks the current-state index (one B-tree lookup in the
//! operation's own transaction) which position is current. So:
//!
//! - a state change yields a new position, hence a new key; the old entry is
//!   simply never asked for again and ages out;
//! - a batch that is aborted after an operation filled the cache leaves only
//!   entries under positions of that batch, which are never handed out again
//!   (the writer skips them) and which no later transaction's index names;
//! - the one way the bytes under a position change is a redaction rewriting
//!   them. [`StateCache::event_rewritten`] drops the entry and *bans* the
//!   position for the life of the cache: whether the batch that redacted
//!   commits or aborts, nothing parsed from either version is served again.
//!   Bans are bounded; on overflow every position up to the highest banned
//!   one stops being cached (a floor), which only costs speed.
//!
//! Derived power levels are keyed by the positions of the create and power
//! levels events they were read from, with the same rules.
//!
//! # Memory
//!
//! At most [`MAX_ENTRIES`] events and about [`MAX_BYTES`] of them (counted
//! from the stored JSON size), [`MAX_POWER_LEVELS`] derived power levels and
//! [`MAX_BANNED`] banned positions; least recently used entries go first.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::room::auth::{self, AuthEvent};
use crate::room::power_levels::PowerLevels;
use crate::room::target::{RoomTarget, to_auth_event};
use crate::store::{RoomShort, StoreError, StreamPos, WriteCtx};

/// Most parsed state events kept.
pub const MAX_ENTRIES: usize = 2048;
/// About this many bytes of parsed events kept (see `entry_size`).
pub const MAX_BYTES: usize = 2 << 20;
/// Most derived power levels kept (one per room in use).
pub const MAX_POWER_LEVELS: usize = 256;
/// Most banned (redacted) positions remembered before the floor moves up.
pub const MAX_BANNED: usize = 1024;

struct Entry {
    event: Arc<AuthEvent>,
    size: usize,
    used: u64,
}

struct LevelsEntry {
    levels: Option<Arc<PowerLevels>>,
    used: u64,
}

/// Parsed current-state events by stream position; see the module docs.
#[derive(Default)]
pub struct StateCache {
    entries: HashMap<(RoomShort, StreamPos), Entry>,
    bytes: usize,
    /// `(room, create position, power levels position)` → the levels, `None`
    /// when the power levels content is invalid.
    levels: HashMap<(RoomShort, StreamPos, Option<StreamPos>), LevelsEntry>,
    /// Positions whose stored bytes were rewritten: never cached again.
    banned: HashSet<StreamPos>,
    /// Positions below this are never cached (bans that overflowed).
    floor: StreamPos,
    /// Use counter for least-recently-used eviction.
    tick: u64,
    hits: u64,
    misses: u64,
}

/// What an entry is counted as: the stored JSON plus the parsed tree's
/// overhead, roughly twice the JSON.
fn entry_size(json_len: usize) -> usize {
    json_len * 2 + 256
}

impl StateCache {
    /// `(hits, misses)` of event lookups, for tests and profiling.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// Number of cached events.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn cacheable(&self, pos: StreamPos) -> bool {
        pos >= self.floor && !self.banned.contains(&pos)
    }

    /// The current state event `(event_type, state_key)` of `room`, parsed.
    pub fn state_event(
        &mut self,
        ctx: &WriteCtx<'_>,
        room: &RoomTarget,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<Arc<AuthEvent>>, StoreError> {
        let Some(pos) = ctx.state_position(room.short, event_type, state_key)? else {
            return Ok(None);
        };
        self.event_at(ctx, room, pos)
    }

    /// The state event stored at `pos` in `room`, parsed.
    fn event_at(
        &mut self,
        ctx: &WriteCtx<'_>,
        room: &RoomTarget,
        pos: StreamPos,
    ) -> Result<Option<Arc<AuthEvent>>, StoreError> {
        self.tick += 1;
        let cacheable = self.cacheable(pos);
        if cacheable && let Some(entry) = self.entries.get_mut(&(room.short, pos)) {
            entry.used = self.tick;
            self.hits += 1;
            return Ok(Some(entry.event.clone()));
        }
        self.misses += 1;
        let Some(stored) = ctx.event_at(room.short, pos)? else { return Ok(None) };
        let event = Arc::new(to_auth_event(&stored.json, room.version)?);
        if cacheable {
            let size = entry_size(stored.json.len());
            let entry = Entry { event: event.clone(), size, used: self.tick };
            if let Some(old) = self.entries.insert((room.short, pos), entry) {
                self.bytes -= old.size;
            }
            self.bytes += size;
            self.evict();
        }
        Ok(Some(event))
    }

    /// The room's effective power levels (creators from the create event);
    /// `None` when the room has no create event or its power levels content
    /// is invalid.
    pub fn power_levels(
        &mut self,
        ctx: &WriteCtx<'_>,
        room: &RoomTarget,
    ) -> Result<Option<Arc<PowerLevels>>, StoreError> {
        let Some(create_pos) = ctx.state_position(room.short, "m.room.create", "")? else {
            return Ok(None);
        };
        let pl_pos = ctx.state_position(room.short, "m.room.power_levels", "")?;
        let key = (room.short, create_pos, pl_pos);
        let cacheable = self.cacheable(create_pos) && pl_pos.is_none_or(|p| self.cacheable(p));
        self.tick += 1;
        if cacheable && let Some(entry) = self.levels.get_mut(&key) {
            entry.used = self.tick;
            return Ok(entry.levels.clone());
        }
        let Some(create) = self.event_at(ctx, room, create_pos)? else { return Ok(None) };
        let power = match pl_pos {
            Some(p) => self.event_at(ctx, room, p)?,
            None => None,
        };
        let lookup = |t: &str, k: &str| match (t, k) {
            ("m.room.create", "") => Some(&*create),
            ("m.room.power_levels", "") => power.as_deref(),
            _ => None,
        };
        let levels = auth::current_power_levels(room.version, &lookup).ok().map(Arc::new);
        if cacheable {
            self.levels.insert(key, LevelsEntry { levels: levels.clone(), used: self.tick });
            if self.levels.len() > MAX_POWER_LEVELS {
                let cut = lru_cut(self.levels.values().map(|e| e.used), MAX_POWER_LEVELS);
                self.levels.retain(|_, e| e.used > cut);
            }
        }
        Ok(levels)
    }

    /// The stored event at `pos` was rewritten (a redaction): forget it and
    /// never cache that position again. Call it next to every rewrite of
    /// stored event bytes.
    pub fn event_rewritten(&mut self, room: RoomShort, pos: StreamPos) {
        if let Some(old) = self.entries.remove(&(room, pos)) {
            self.bytes -= old.size;
        }
        self.levels.retain(|(_, create, pl), _| *create != pos && *pl != Some(pos));
        if pos < self.floor {
            return;
        }
        self.banned.insert(pos);
        if self.banned.len() > MAX_BANNED {
            // Every banned position stays uncacheable: all are below the
            // new floor.
            let highest = self.banned.iter().max().copied().unwrap_or(pos);
            self.floor = StreamPos(highest.0.saturating_add(1));
            self.banned.clear();
            let floor = self.floor;
            self.entries.retain(|(_, p), _| *p >= floor);
            self.levels.retain(|(_, c, pl), _| *c >= floor && pl.is_none_or(|p| p >= floor));
            self.bytes = self.entries.values().map(|e| e.size).sum();
        }
    }

    /// Drops least recently used entries once over a bound; a quarter of
    /// them at a time, so a full cache does not scan on every insert.
    fn evict(&mut self) {
        if self.entries.len() <= MAX_ENTRIES && self.bytes <= MAX_BYTES {
            return;
        }
        let keep = (self.entries.len().min(MAX_ENTRIES) * 3) / 4;
        let cut = lru_cut(self.entries.values().map(|e| e.used), keep);
        self.entries.retain(|_, e| e.used > cut);
        self.bytes = self.entries.values().map(|e| e.size).sum();
        // Still over the byte bound (a few huge events): drop the rest but
        // the newest.
        if self.bytes > MAX_BYTES {
            let newest = self.tick;
            self.entries.retain(|_, e| e.used == newest);
            self.bytes = self.entries.values().map(|e| e.size).sum();
        }
    }
}

/// The use stamp at or below which entries must go so that at most about
/// `keep` of the most recently used remain.
pub(crate) fn lru_cut(used: impl Iterator<Item = u64>, keep: usize) -> u64 {
    let mut stamps: Vec<u64> = used.collect();
    if stamps.len() <= keep {
        return 0;
    }
    let drop = stamps.len() - keep;
    let (_, nth, _) = stamps.select_nth_unstable(drop - 1);
    *nth
}

#[cfg(test)]
mod tests;
