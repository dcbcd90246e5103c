//! Readings of the server process and its data directory.
//!
//! - `/proc/PID/status`: `VmRSS` (resident now) and `VmHWM` (peak resident).
//! - `/proc/PID/io`: `write_bytes` (bytes the process caused to be sent to
//!   the block layer: database pages, WAL, logs — page-cache writes are
//!   charged when dirtied, so the figure is current right after a request
//!   returns) and `wchar` (bytes passed to write-like syscalls).
//! - `/proc/PID/stat`: `utime + stime` of all threads, in clock ticks.
//!   USER_HZ is 100 on every Linux ABI we target (x86-64, aarch64, armv7),
//!   so no libc call is needed to convert.
//!
//! All of these cover every thread of the process, so Synapse's database
//! thread pool and Hearth's writer thread are included.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

const USER_HZ: f64 = 100.0;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Memory {
    pub(crate) rss_kib: u64,
    pub(crate) hwm_kib: u64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Io {
    pub(crate) write_bytes: u64,
    pub(crate) wchar: u64,
}

pub(crate) fn memory(pid: u32) -> Result<Memory, String> {
    let text = fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .ok_or_else(|| format!("/proc/{pid}/status: no {name}"))
    };
    Ok(Memory { rss_kib: field("VmRSS:")?, hwm_kib: field("VmHWM:")? })
}

pub(crate) fn io(pid: u32) -> Result<Io, String> {
    let text = fs::read_to_string(format!("/proc/{pid}/io"))
        .map_err(|e| format!("/proc/{pid}/io: {e} (reading another user's process needs root)"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().parse::<u64>().ok())
            .ok_or_else(|| format!("/proc/{pid}/io: no {name}"))
    };
    Ok(Io { write_bytes: field("write_bytes:")?, wchar: field("wchar:")? })
}

/// Resets the process's `VmHWM` to its current RSS (`clear_refs` value 5,
/// Linux 4.0+). Needs the same rights as reading `/proc/PID/io`; returns
/// whether it worked.
pub(crate) fn reset_peak_rss(pid: u32) -> bool {
    fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// CPU time used so far by all threads of the process.
pub(crate) fn cpu_time(pid: u32) -> Result<Duration, String> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // The command name is in parentheses and may contain spaces; fields
    // are counted after the last ')'. utime and stime are fields 14 and 15,
    // i.e. the 12th and 13th after the state field (field 3).
    let after = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("/proc/{pid}/stat: unexpected format"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(|| format!("/proc/{pid}/stat: unexpected format"))
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_secs_f64(total as f64 / USER_HZ))
}

pub(crate) fn is_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Space used on disk under `dir` (allocated blocks, so sparse and
/// preallocated files count as the disk sees them) and the part of it under
/// top-level entries whose name contains "media".
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DirUsage {
    pub(crate) total_bytes: u64,
    pub(crate) media_bytes: u64,
}

pub(crate) fn dir_usage(dir: &Path) -> Result<DirUsage, String> {
    // Bounded walk: a data directory with more entries than this is not
    // something this tool should spend minutes on.
    const MAX_ENTRIES: usize = 1_000_000;
    let mut usage = DirUsage::default();
    let mut seen = 0usize;
    let top = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in top {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let bytes = tree_bytes(&entry.path(), &mut seen, MAX_ENTRIES);
        usage.total_bytes += bytes;
        if entry.file_name().to_string_lossy().contains("media") {
            usage.media_bytes += bytes;
        }
    }
    Ok(usage)
}

fn tree_bytes(path: &Path, seen: &mut usize, max: usize) -> u64 {
    *seen += 1;
    if *seen > max {
        return 0;
    }
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0; // removed while walking (e.g. a SQLite journal)
    };
    let mut bytes = meta.blocks() * 512;
    if meta.is_dir()
        && let Ok(entries) = fs::read_dir(path)
    {
        for entry in entries.flatten() {
            bytes += tree_bytes(&entry.path(), seen, max);
        }
    }
    bytes
}

/// Waits until the server has been (nearly) idle for two consecutive
/// 200 ms windows, or `max` has passed. Without a pid there is nothing to
/// watch and it simply waits `fallback`.
///
/// Used before measuring anything that needs "all long-polls are parked":
/// a server that is still working through a burst of incoming syncs is
/// visibly busy, one that is waiting is not.
pub(crate) async fn settle(pid: Option<u32>, max: Duration, fallback: Duration) {
    let Some(pid) = pid else {
        tokio::time::sleep(fallback.min(max)).await;
        return;
    };
    const WINDOW: Duration = Duration::from_millis(200);
    // At most one clock tick (10 ms, 5% of a core) in a window counts as
    // idle; ticks are the resolution of /proc/PID/stat.
    const IDLE_CPU: Duration = Duration::from_millis(10);
    let deadline = tokio::time::Instant::now() + max;
    let mut quiet_windows = 0;
    let Ok(mut last) = cpu_time(pid) else {
        tokio::time::sleep(fallback.min(max)).await;
        return;
    };
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(WINDOW).await;
        let Ok(now) = cpu_time(pid) else { return };
        if now.saturating_sub(last) <= IDLE_CPU {
            quiet_windows += 1;
            if quiet_windows >= 2 {
                return;
            }
        } else {
            quiet_windows = 0;
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_can_be_read() {
        let pid = std::process::id();
        let memory = memory(pid).expect("own /proc/self/status is readable");
        assert!(memory.rss_kib > 0 && memory.hwm_kib >= memory.rss_kib);
        assert!(cpu_time(pid).is_ok());
        assert!(is_alive(pid));
    }
}
