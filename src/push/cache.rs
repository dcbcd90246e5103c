//! Parsed push rulesets of the users the writer evaluates events for, so
//! that the defaults are not rebuilt and the stored customisation not parsed
//! again for every member and every message.
//!
//! Each entry remembers the stored bytes it was parsed from, and every lookup
//! reads the user's stored customisation in the operation's own transaction
//! (one small B-tree lookup; nothing at all is stored for a user who never
//! changed a rule) and compares. A change by `/pushrules` — committed, still
//! in the current batch, or rolled back with an aborted batch — therefore
//! shows as different bytes and the ruleset is parsed afresh; there is no
//! invalidation to forget.
//!
//! Bounded by [`MAX_RULESETS`] users and about [`MAX_RULESET_BYTES`];
//! least recently used go first.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Ruleset, default_ruleset};
use crate::ids::UserId;
use crate::store::{StoreError, WriteCtx};

/// Most rulesets kept.
pub const MAX_RULESETS: usize = 256;
/// About this many bytes of rulesets kept (see `ruleset_size`).
pub const MAX_RULESET_BYTES: usize = 2 << 20;

struct Entry {
    stored: Option<Vec<u8>>,
    ruleset: Arc<Ruleset>,
    size: usize,
    used: u64,
}

/// Users' parsed rulesets; see the module docs.
#[derive(Default)]
pub struct RulesetCache {
    entries: HashMap<String, Entry>,
    bytes: usize,
    tick: u64,
    hits: u64,
    misses: u64,
}

/// The defaults as parsed take a few KiB; a customisation about three times
/// its stored size on top.
fn ruleset_size(user: &UserId, stored: Option<&[u8]>) -> usize {
    4096 + user.as_str().len() + stored.map_or(0, |s| s.len() * 4)
}

/// Parses `user`'s stored customisation on top of the defaults; defaults
/// alone when nothing is stored or it does not decode.
pub fn parse_ruleset(user: &UserId, stored: Option<&[u8]>) -> Ruleset {
    match stored {
        Some(bytes) => Ruleset::from_json(user, bytes).unwrap_or_else(|e| {
            tracing::warn!("push rules of {user} did not decode ({e}); using defaults");
            default_ruleset(user)
        }),
        None => default_ruleset(user),
    }
}

impl RulesetCache {
    /// `(hits, misses)`, for tests and profiling.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// Number of cached rulesets.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `user`'s current ruleset as the operation's transaction sees it.
    pub fn ruleset(
        &mut self,
        ctx: &WriteCtx<'_>,
        user: &UserId,
    ) -> Result<Arc<Ruleset>, StoreError> {
        let stored = ctx.push_rules(user)?;
        self.tick += 1;
        if let Some(entry) = self.entries.get_mut(user.as_str())
            && entry.stored == stored
        {
            entry.used = self.tick;
            self.hits += 1;
            return Ok(entry.ruleset.clone());
        }
        self.misses += 1;
        let ruleset = Arc::new(parse_ruleset(user, stored.as_deref()));
        let size = ruleset_size(user, stored.as_deref());
        let entry = Entry { stored, ruleset: ruleset.clone(), size, used: self.tick };
        if let Some(old) = self.entries.insert(user.to_string(), entry) {
            self.bytes -= old.size;
        }
        self.bytes += size;
        if self.entries.len() > MAX_RULESETS || self.bytes > MAX_RULESET_BYTES {
            let keep = (self.entries.len().min(MAX_RULESETS) * 3) / 4;
            let cut = crate::room::cache::lru_cut(self.entries.values().map(|e| e.used), keep);
            self.entries.retain(|_, e| e.used > cut);
            self.bytes = self.entries.values().map(|e| e.size).sum();
            if self.bytes > MAX_RULESET_BYTES {
                let newest = self.tick;
                self.entries.retain(|_, e| e.used == newest);
                self.bytes = self.entries.values().map(|e| e.size).sum();
            }
        }
        Ok(ruleset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::{MASTER_RULE_ID, RuleKind};
    use crate::room::testing::{BOB_ID, Fixture, fixture, user};

    fn stats(f: &Fixture<RulesetCache>) -> (u64, u64) {
        f.cache.lock().expect("no test panicked holding the cache").stats()
    }

    #[test]
    fn rulesets_follow_stored_changes_and_ignore_aborted_ones() {
        let f = fixture::<RulesetCache>();
        let master_enabled = |f: &Fixture<RulesetCache>| {
            f.run(false, |ctx, cache, _, _| {
                let rules = cache.ruleset(ctx, &BOB_ID)?;
                Ok(rules.get_push_rule(RuleKind::Override, MASTER_RULE_ID).expect("master").enabled)
            })
            .expect("read")
        };
        assert!(!master_enabled(&f));
        assert!(!master_enabled(&f));
        let (hits, _) = stats(&f);
        assert!(hits >= 1);

        let mut silenced = default_ruleset(&BOB_ID);
        silenced.set_push_rule_enabled(RuleKind::Override, MASTER_RULE_ID, true).expect("master");
        let bytes = silenced.to_json();
        f.run(false, move |ctx, _, _, _| ctx.put_push_rules(&BOB_ID, &bytes)).expect("put");
        assert!(master_enabled(&f), "a stored change is seen");

        let pristine = default_ruleset(&BOB_ID).to_json();
        let aborted = f.run(true, move |ctx, cache, _, _| {
            ctx.put_push_rules(&BOB_ID, &pristine)?;
            let rules = cache.ruleset(ctx, &BOB_ID)?;
            assert!(
                !rules.get_push_rule(RuleKind::Override, MASTER_RULE_ID).expect("master").enabled
            );
            Ok(())
        });
        assert!(aborted.is_err());
        assert!(master_enabled(&f), "the rolled-back change is not");
    }

    #[test]
    fn ruleset_cache_is_bounded() {
        let f = fixture::<RulesetCache>();
        f.run(false, |ctx, cache, _, _| {
            for i in 0..MAX_RULESETS + 10 {
                cache.ruleset(ctx, &user(&format!("@u{i}:example.org")))?;
                assert!(cache.len() <= MAX_RULESETS);
            }
            Ok(())
        })
        .expect("fill");
    }
}
