//! What the writer keeps between operations: room state parsed for the
//! auth rules and push evaluation (`room::cache`) and users' parsed push
//! rulesets (`push::RulesetCache`). Each part guards its own freshness; this
//! only bundles them for the one lock the writer takes.

use std::sync::Arc;

use crate::push::RulesetCache;
use crate::room::cache::StateCache;

/// Everything the writer keeps between operations. Shared with the writer
/// thread behind a mutex that only the writer thread ever locks, so it is
/// never contended.
#[derive(Default)]
pub struct WriterCache {
    pub state: StateCache,
    pub rulesets: RulesetCache,
}

impl WriterCache {
    pub fn new() -> WriterCache {
        WriterCache::default()
    }
}

/// The writer cache as the app holds it.
pub type SharedWriterCache = Arc<std::sync::Mutex<WriterCache>>;

/// Locks the writer cache. A poisoned lock (a panic while it was held) may
/// have left it half-updated, so it is emptied rather than trusted.
pub fn lock(cache: &SharedWriterCache) -> std::sync::MutexGuard<'_, WriterCache> {
    match cache.lock() {
        Ok(guard) => guard,
        Err(poisoned) => {
            let mut guard = poisoned.into_inner();
            *guard = WriterCache::default();
            cache.clear_poison();
            guard
        }
    }
}
