//! Keeping the server's resident set honest once it has started.
//!
//! Most of an idle Hearth's RSS was not allocations but the executable:
//! the kernel maps file pages "around" each page fault (64 KiB at a time,
//! `fault_around_bytes`), so the code that only runs at start-up (config
//! parsing, opening and checking the database, key loading) left about
//! 5 MiB of the binary's text mapped, counted in RSS and protected from
//! reclaim as mapped executable pages, on a board with 512 MB.
//! [`release_startup_pages`] unmaps the read-only code of the executable
//! and its libraries once, after start-up: the page cache keeps the
//! pages, and whatever code still runs faults its pages back in (a minor
//! fault, no I/O). Only clean, read-only, file-backed, executable
//! mappings are touched, so no data can be lost.
//!
//! The heap is the other half: [`trim_when_idle`] returns the holes a
//! burst of requests leaves once the server goes quiet, and [`buffers`]
//! keeps the 8 KiB connection buffers hyper allocates out of malloc's heap,
//! so the part of them an idle connection never wrote costs nothing.

pub mod buffers;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::Notify;

/// How long the server must have seen no request before the heap is
/// trimmed: short enough that a burst's leftovers go soon after it ends,
/// long enough that a busy server never trims between requests.
const QUIET_BEFORE_TRIM: Duration = Duration::from_millis(100);

thread_local! {
    /// Requests seen by this (event-loop) thread, and who waits for one.
    static ACTIVITY: (Cell<u64>, Rc<Notify>) = (Cell::new(0), Rc::new(Notify::new()));
}

/// Called by the HTTP layer for every request.
pub fn note_activity() {
    ACTIVITY.with(|(count, notify)| {
        count.set(count.get().wrapping_add(1));
        notify.notify_one();
    });
}

fn activity() -> u64 {
    ACTIVITY.with(|(count, _)| count.get())
}

/// Returns freed heap memory to the system once the server goes quiet
/// after a burst of requests. Runs on the event loop for the server's
/// lifetime; costs nothing while idle (it waits for the next request).
///
/// Why: a burst (200 long-polls arriving, a few thousand sends) interleaves
/// short-lived allocations (request parsing, sync assembly, JSON) with the
/// ones that stay (parked connections). glibc only returns memory from the
/// top of the heap by itself, so the freed holes stayed resident; measured
/// as most of the RSS a parked long-poll seemed to cost. `malloc_trim(0)`
/// releases every whole free page in every arena (MADV_DONTNEED).
pub async fn trim_when_idle() {
    let notify = ACTIVITY.with(|(_, notify)| notify.clone());
    loop {
        notify.notified().await;
        loop {
            let seen = activity();
            tokio::time::sleep(QUIET_BEFORE_TRIM).await;
            if activity() == seen {
                break;
            }
        }
        trim_heap();
    }
}

/// Gives free heap pages back to the kernel (glibc only).
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory malloc owns and no live
    // allocation uses; it is thread-safe (takes each arena's lock).
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Drops the page-table entries of every clean executable file mapping.
/// Linux only; a no-op elsewhere and on any error.
pub fn release_startup_pages() {
    #[cfg(target_os = "linux")]
    {
        let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return };
        for (start, end) in clean_code_mappings(&smaps) {
            // SAFETY: the range is a whole mapping of a file, mapped
            // read+execute and private, with no anonymous (copied-on-write)
            // and no dirty pages: every page equals the file's content.
            // MADV_DONTNEED on such a mapping only removes page-table
            // entries; the next access maps the same file page again. The
            // code running this call may sit in the range: it is faulted
            // back in on return.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
            }
        }
    }
}

/// `(start, end)` of each `r-xp` file mapping in `smaps` without any
/// anonymous or dirty pages.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn clean_code_mappings(smaps: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    // The mapping being read: its range, once it qualifies by its header.
    let mut current: Option<(usize, usize)> = None;
    let mut clean = true;
    let mut flush = |current: &mut Option<(usize, usize)>, clean: bool| {
        if let Some(range) = current.take()
            && clean
        {
            out.push(range);
        }
    };
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            flush(&mut current, clean);
            clean = true;
            let perms = fields.next().unwrap_or("");
            // Fields: perms, offset, device, inode, path.
            let inode = fields.nth(2).unwrap_or("0");
            let path = fields.next().unwrap_or("");
            if perms == "r-xp" && inode != "0" && path.starts_with('/') {
                current = Some((a, b));
            }
            continue;
        }
        if current.is_some()
            && matches!(
                first,
                "Anonymous:" | "Private_Dirty:" | "Shared_Dirty:" | "Swap:" | "Locked:"
            )
            && fields.next() != Some("0")
        {
            clean = false;
        }
    }
    flush(&mut current, clean);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55c8613ce000-55c861535000 r--p 00000000 08:01 5835005 /usr/bin/hearth
Rss:                 736 kB
Anonymous:             0 kB
Private_Dirty:         0 kB
55c861535000-55c861cba000 r-xp 00167000 08:01 5835005 /usr/bin/hearth
Rss:                4916 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
Locked:                0 kB
55c861cba000-55c861cea000 r--p 008ec000 08:01 5835005 /usr/bin/hearth
Anonymous:           192 kB
7f050bddf000-7f050bf35000 r-xp 00028000 08:01 1234 /usr/lib/libc.so.6
Anonymous:             4 kB
7f050bf35000-7f050bf88000 r-xp 00000000 00:00 0 
Anonymous:             0 kB
7ffe767cf000-7ffe767d1000 r-xp 00000000 00:00 0                          [vdso]
Anonymous:             0 kB
";

    #[test]
    fn only_clean_executable_file_mappings_are_released() {
        assert_eq!(clean_code_mappings(SMAPS), vec![(0x55c8_6153_5000, 0x55c8_61cb_a000)]);
    }

    #[test]
    fn releasing_our_own_code_keeps_the_process_running() {
        release_startup_pages();
        // Code and read-only data still work after their pages were dropped.
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(v.iter().sum::<u32>(), 5050);
        assert_eq!(format!("{:?}", Some("ok")), "Some(\"ok\")");
    }
}
