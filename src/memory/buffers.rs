//! The global allocator: the system's (glibc's) malloc, except for blocks
//! of exactly [`SLOT`] bytes, which come from a pool of page-aligned slots
//! that hold no resident memory while free.
//!
//! Why: an open HTTP/1.1 connection holds two such blocks for its whole
//! life, hyper's read buffer and its header write buffer
//! (`INIT_BUFFER_SIZE`, not configurable in hyper 1), and a parked `/sync`
//! long-poll has usually written nothing into either: the request it read
//! lives in the previous read buffer, freed once the request is parsed,
//! and no response has been written yet. From malloc such a block costs
//! resident memory anyway: malloc writes its chunk header in the first
//! page, and a block carved from memory that earlier requests used stays
//! resident in full (`malloc_trim` only returns free memory). Measured
//! with 200 parked long-polls, these blocks were most of what each cost.
//! A pool slot is resident only where it was written: the pool keeps its
//! bookkeeping in a bitmap outside the slots, and gives a freed slot's
//! pages back to the kernel (`MADV_DONTNEED`) before reusing it.
//!
//! The price is a `madvise` call per freed slot and a page fault per page
//! written after reuse, about a request's worth of microseconds; blocks of
//! this exact size are rare outside hyper's connection buffers (growing
//! vectors reach 8 KiB by `realloc`, which stays with malloc).
//!
//! The pool is one reservation of address space made on first use
//! (`SLOTS` slots, `MAP_NORESERVE`: no memory until touched). When it is
//! full, or cannot be mapped, blocks come from malloc as before.

use std::alloc::{GlobalAlloc, Layout, System};

/// The block size the pool serves: hyper's `INIT_BUFFER_SIZE`.
pub const SLOT: usize = 8192;

/// Slots in the pool: three per connection at the default
/// `max_connections` (1024), with room to spare. 32 MiB of address space.
const SLOTS: usize = 4096;

/// The allocator Hearth installs (`#[global_allocator]` in the crate root).
pub struct Allocator;

#[cfg(target_os = "linux")]
mod pool {
    use std::ptr;
    use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

    use super::{SLOT, SLOTS};

    const WORDS: usize = SLOTS / 64;
    const LEN: usize = SLOT * SLOTS;

    /// The reserved range; null until first use, `FAILED` if mapping failed.
    static BASE: AtomicPtr<u8> = AtomicPtr::new(ptr::null_mut());
    /// One bit per slot: set while the slot is handed out.
    static USED: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];
    /// Slots handed out (for tests and diagnostics).
    static IN_USE: AtomicUsize = AtomicUsize::new(0);

    /// A sentinel address that is never a mapping's start.
    fn failed() -> *mut u8 {
        ptr::without_provenance_mut(1)
    }

    /// The pool's base, mapping it on first use; `None` if it cannot be.
    fn base() -> Option<*mut u8> {
        let b = BASE.load(Ordering::Acquire);
        if b == failed() {
            return None;
        }
        if !b.is_null() {
            return Some(b);
        }
        // SAFETY: a fresh private anonymous mapping; no existing memory is
        // affected. MAP_NORESERVE: address space only, pages on first touch.
        let mapped = unsafe {
            libc::mmap(
                ptr::null_mut(),
                LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        let new = if mapped == libc::MAP_FAILED { failed() } else { mapped.cast::<u8>() };
        match BASE.compare_exchange(ptr::null_mut(), new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => (new != failed()).then_some(new),
            Err(other) => {
                // Another thread mapped it first: keep theirs.
                if new != failed() {
                    // SAFETY: our own mapping, never handed out.
                    unsafe { libc::munmap(mapped, LEN) };
                }
                (other != failed()).then_some(other)
            }
        }
    }

    /// A free slot, marked used; `None` when the pool is full or unmapped.
    pub(super) fn take() -> Option<*mut u8> {
        let base = base()?;
        for (w, word) in USED.iter().enumerate() {
            let mut cur = word.load(Ordering::Relaxed);
            while cur != u64::MAX {
                let bit = (!cur).trailing_zeros() as usize;
                match word.compare_exchange_weak(
                    cur,
                    cur | (1 << bit),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        IN_USE.fetch_add(1, Ordering::Relaxed);
                        // In bounds: w < WORDS and bit < 64, so the slot
                        // index is below SLOTS.
                        return Some(base.wrapping_add((w * 64 + bit) * SLOT));
                    }
                    Err(now) => cur = now,
                }
            }
        }
        None
    }

    /// The slot index of `p` if it points into the pool.
    pub(super) fn slot_of(p: *mut u8) -> Option<usize> {
        let base = BASE.load(Ordering::Acquire);
        if base.is_null() || base == failed() {
            return None;
        }
        let offset = (p as usize).checked_sub(base as usize)?;
        (offset < LEN).then_some(offset / SLOT)
    }

    /// Gives slot `index` (starting at `p`) back: its pages to the kernel
    /// first, then the slot to the pool, so no one can be handed a slot
    /// whose contents are about to vanish.
    ///
    /// # Safety
    /// `p` is the start of slot `index`, handed out by [`take`] and no
    /// longer used.
    pub(super) unsafe fn give_back(p: *mut u8, index: usize) {
        // SAFETY: the slot's whole range is ours (caller's contract) and
        // private anonymous memory: DONTNEED drops its pages, and the next
        // access reads zeros.
        unsafe { libc::madvise(p.cast(), SLOT, libc::MADV_DONTNEED) };
        IN_USE.fetch_sub(1, Ordering::Relaxed);
        USED[index / 64].fetch_and(!(1u64 << (index % 64)), Ordering::Release);
    }

    pub(super) fn in_use() -> usize {
        IN_USE.load(Ordering::Relaxed)
    }
}

#[cfg(not(target_os = "linux"))]
mod pool {
    pub(super) fn take() -> Option<*mut u8> {
        None
    }
    pub(super) fn slot_of(_: *mut u8) -> Option<usize> {
        None
    }
    pub(super) unsafe fn give_back(_: *mut u8, _: usize) {}
    pub(super) fn in_use() -> usize {
        0
    }
}

/// Pool slots currently handed out.
pub fn slots_in_use() -> usize {
    pool::in_use()
}

fn pooled(layout: Layout) -> bool {
    layout.size() == SLOT && layout.align() <= 4096
}

// Each method is `inline(never)`: inlined (LTO does), the pool's checks
// were copied into every allocation and deallocation site, growing the
// executable's code by 0.9 MB and its resident code after start-up by
// 0.2 MB (measured). Out of line, they cost one call per allocation.
//
// SAFETY: every block is either malloc's (System) or a pool slot of SLOT
// bytes, page-aligned (so aligned for any `align <= 4096`), handed out to
// one owner at a time; `slot_of` tells them apart by address, so each block
// goes back to where it came from.
unsafe impl GlobalAlloc for Allocator {
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if pooled(layout)
            && let Some(p) = pool::take()
        {
            return p;
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    #[inline(never)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // A slot is zero already: never touched, or dropped with
        // MADV_DONTNEED since. Writing zeros would make it resident.
        if pooled(layout)
            && let Some(p) = pool::take()
        {
            return p;
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    #[inline(never)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match pool::slot_of(ptr) {
            // SAFETY: `ptr` came from `alloc` (caller's contract), which
            // only returns slot starts from the pool.
            Some(index) => unsafe { pool::give_back(ptr, index) },
            // SAFETY: not the pool's, so malloc's.
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }

    #[inline(never)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(index) = pool::slot_of(ptr) else {
            // SAFETY: not the pool's, so malloc's; a block reaching SLOT
            // bytes by growing stays with malloc (only `alloc` uses the pool).
            return unsafe { System.realloc(ptr, layout, new_size) };
        };
        if new_size == SLOT {
            return ptr;
        }
        // SAFETY: the caller guarantees `new_size` with `layout.align()`
        // is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a non-zero size (realloc's contract).
        let new = unsafe { System.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the copied length and are
            // distinct allocations; the old one is then freed.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, SLOT.min(new_size));
                pool::give_back(ptr, index);
            }
        }
        new
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    // The crate installs `Allocator` globally, so these go through it.

    #[test]
    fn slot_sized_blocks_come_from_the_pool_page_aligned_and_zeroed_on_reuse() {
        let mut v: Vec<u8> = Vec::with_capacity(SLOT);
        let p = v.as_ptr() as *mut u8;
        assert!(pool::slot_of(p).is_some(), "an 8 KiB block comes from the pool");
        assert_eq!(p as usize % 4096, 0);
        v.resize(SLOT, 0xAB);
        drop(v);
        // Some slot, possibly the same one: all of a fresh slot reads zero.
        let fresh = vec![0u8; SLOT];
        assert!(pool::slot_of(fresh.as_ptr() as *mut u8).is_some());
        assert!(fresh.iter().all(|b| *b == 0));
        let b: Box<[u8; SLOT]> = Box::new([0; SLOT]);
        assert!(b.iter().all(|x| *x == 0));
    }

    #[test]
    fn other_sizes_stay_with_malloc() {
        let small: Vec<u8> = Vec::with_capacity(100);
        let big: Vec<u8> = Vec::with_capacity(SLOT + 1);
        assert!(pool::slot_of(small.as_ptr() as *mut u8).is_none());
        assert!(pool::slot_of(big.as_ptr() as *mut u8).is_none());
    }

    #[test]
    fn growing_and_shrinking_a_slot_keeps_its_contents() {
        let mut v: Vec<u8> = Vec::with_capacity(SLOT);
        assert!(pool::slot_of(v.as_ptr() as *mut u8).is_some());
        v.extend((0..SLOT).map(|i| (i % 251) as u8));
        v.push(7);
        assert!(pool::slot_of(v.as_ptr() as *mut u8).is_none(), "grown: malloc's");
        assert!(v[..SLOT].iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
        let mut w: Vec<u8> = Vec::with_capacity(SLOT);
        w.extend_from_slice(b"hello");
        w.shrink_to_fit();
        assert_eq!(w, b"hello");
    }

    #[test]
    fn threads_never_share_a_slot() {
        let handles: Vec<_> = (0..4u8)
            .map(|t| {
                std::thread::spawn(move || {
                    for round in 0..200u32 {
                        let fill = t.wrapping_mul(31).wrapping_add(round as u8);
                        let v = vec![fill; SLOT];
                        std::thread::yield_now();
                        assert!(v.iter().all(|b| *b == fill));
                    }
                })
            })
            .collect();
        for h in handles {
            assert!(h.join().is_ok());
        }
    }
}
