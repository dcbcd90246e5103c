//! `hearth doctor`: checks what usually goes wrong on a board — the data
//! directory, free space, permissions, the clock, TLS files, the database —
//! and says how to fix each problem. Read-only except for a probe file and
//! opening the database (which redb repairs if it was not closed cleanly).
//!
//! `hearth doctor --salvage-wal` is the one repair it makes, and only when
//! asked: when the server refuses to start because its write-ahead log is
//! damaged, missing or foreign, it applies every intact record and says
//! exactly which writes were lost.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::config::Config;
use crate::store::{SCHEMA_VERSION, SalvageReport, Store, StoreError};

/// Warn below this much free space …
const LOW_SPACE_BYTES: u64 = 500 << 20;
/// … or below this share of the file system, in percent.
const LOW_SPACE_PERCENT: u64 = 5;
/// 2024-01-01T00:00:00Z. A board without a real-time clock boots in 1970.
const SANE_CLOCK_SECS: u64 = 1_704_067_200;

/// Collects findings and prints them as it goes.
struct Report<'a, W: Write> {
    out: &'a mut W,
    problems: usize,
}

impl<W: Write> Report<'_, W> {
    fn ok(&mut self, what: &str) {
        let _ = writeln!(self.out, "ok       {what}");
    }

    fn problem(&mut self, what: &str, fix: &str) {
        self.problems += 1;
        let _ = writeln!(self.out, "PROBLEM  {what}\n         fix: {fix}");
    }
}

/// Runs every check; returns true when nothing needs fixing.
pub fn run(config: &Config, out: &mut impl Write) -> bool {
    let mut r = Report { out, problems: 0 };
    let dir = &config.data_dir;
    if check_data_dir(&mut r, dir) {
        check_space(&mut r, config);
        check_permissions(&mut r, dir);
        check_database(&mut r, dir, config);
    }
    check_clock(&mut r);
    check_tls(&mut r, config);
    let _ = if r.problems == 0 {
        writeln!(r.out, "all fine")
    } else {
        writeln!(r.out, "{} problem(s) to fix", r.problems)
    };
    r.problems == 0
}

fn check_data_dir<W: Write>(r: &mut Report<'_, W>, dir: &Path) -> bool {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            r.problem(
                &format!("data directory {} is not a directory", dir.display()),
                "point data_dir (or --data-dir) at a directory",
            );
            return false;
        }
        Err(e) => {
            r.problem(
                &format!("data directory {} cannot be read: {e}", dir.display()),
                &format!(
                    "create it (mkdir -m 700 {}) or start the server once, as the user it runs as",
                    dir.display()
                ),
            );
            return false;
        }
    }
    let probe = dir.join(".doctor-probe");
    match std::fs::write(&probe, b"probe") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            r.ok(&format!("data directory {} is writable", dir.display()));
        }
        Err(e) => r.problem(
            &format!("data directory {} is not writable: {e}", dir.display()),
            "run as the server's user, or chown the directory to it; check for a read-only mount",
        ),
    }
    true
}

fn check_space<W: Write>(r: &mut Report<'_, W>, config: &Config) {
    let (free, total) = match crate::store::free_bytes(&config.data_dir) {
        Ok(v) => v,
        Err(e) => {
            r.problem(&format!("cannot read free disk space: {e}"), "check the mount");
            return;
        }
    };
    let percent = (free as u128 * 100).checked_div(total as u128).unwrap_or(100) as u64;
    let what = format!("{} MiB free on the data directory's disk ({percent}%)", free >> 20);
    if free < config.min_free_disk_bytes {
        r.problem(
            &format!("{what}: below min_free_disk_mb, writes are being refused"),
            "free space (old media: hearth media purge --older-than-days N) or move to a bigger disk",
        );
    } else if free < LOW_SPACE_BYTES || percent < LOW_SPACE_PERCENT {
        r.problem(
            &format!("{what}: running low"),
            "free space (hearth media purge --older-than-days N) before writes start failing",
        );
    } else {
        r.ok(&what);
    }
}

fn mode_of(path: &Path) -> Option<u32> {
    std::fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o777)
}

fn check_permissions<W: Write>(r: &mut Report<'_, W>, dir: &Path) {
    if let Some(mode) = mode_of(dir) {
        if mode & 0o007 != 0 {
            r.problem(
                &format!(
                    "data directory {} is open to every user (mode {mode:o}); it holds password \
                     hashes and the server's signing key",
                    dir.display()
                ),
                &format!("chmod 700 {}", dir.display()),
            );
        } else {
            r.ok(&format!("data directory is private (mode {mode:o})"));
        }
    }
    for name in ["hearth.redb", super::SOCKET_NAME] {
        let path = dir.join(name);
        match mode_of(&path) {
            Some(mode) if mode & 0o077 != 0 => r.problem(
                &format!("{} is readable by others (mode {mode:o})", path.display()),
                &format!("chmod 600 {}", path.display()),
            ),
            Some(_) => r.ok(&format!("{name} is mode 600")),
            None => {}
        }
    }
}

fn check_clock<W: Write>(r: &mut Report<'_, W>) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    if now < SANE_CLOCK_SECS {
        r.problem(
            "the system clock is before 2024: tokens expire wrongly, TLS certificates look \
             invalid and message times are off (a board without a real-time clock?)",
            "enable time sync (timedatectl set-ntp true) or fit an RTC module",
        );
    } else {
        r.ok("the system clock looks right");
    }
}

fn check_tls<W: Write>(r: &mut Report<'_, W>, config: &Config) {
    let Some(tls) = &config.tls else { return };
    match std::fs::read(&tls.cert) {
        Ok(pem) if pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") => {
            r.ok(&format!("TLS certificate {} is a PEM certificate", tls.cert.display()));
        }
        Ok(_) => r.problem(
            &format!("TLS certificate {} holds no PEM certificate", tls.cert.display()),
            "point tls_cert at the PEM chain (fullchain.pem), leaf first",
        ),
        Err(e) => r.problem(
            &format!("TLS certificate {} cannot be read: {e}", tls.cert.display()),
            "check tls_cert and that the server's user may read it",
        ),
    }
    match std::fs::read(&tls.key) {
        Ok(pem) if pem.windows(11).any(|w| w == b"PRIVATE KEY") => match mode_of(&tls.key) {
            Some(mode) if mode & 0o077 != 0 => r.problem(
                &format!("TLS key {} is readable by others (mode {mode:o})", tls.key.display()),
                &format!("chmod 600 {}", tls.key.display()),
            ),
            _ => r.ok(&format!("TLS key {} is private", tls.key.display())),
        },
        Ok(_) => r.problem(
            &format!("TLS key {} holds no PEM private key", tls.key.display()),
            "point tls_key at the PEM private key (privkey.pem)",
        ),
        Err(e) => r.problem(
            &format!("TLS key {} cannot be read: {e}", tls.key.display()),
            "check tls_key and that the server's user may read it",
        ),
    }
}

fn check_database<W: Write>(r: &mut Report<'_, W>, dir: &Path, config: &Config) {
    if !dir.join("hearth.redb").exists() {
        r.ok("no database yet (the server creates it on first start)");
        return;
    }
    match Store::open(dir, 4 << 20, None) {
        Ok(store) => {
            let version = store.read().and_then(|t| t.schema_version());
            let repaired = store.was_repaired();
            store.shutdown();
            match version {
                Ok(v) => r.ok(&format!(
                    "the database opens (schema version {}, this Hearth writes {SCHEMA_VERSION})",
                    v.unwrap_or(0)
                )),
                Err(e) => r.problem(
                    &format!("the database opens but cannot be read: {e}"),
                    "restore a backup: hearth restore BACKUP_DIR",
                ),
            }
            if repaired {
                r.problem(
                    "the database was not closed cleanly (power loss or kill -9); it was checked \
                     and repaired just now",
                    "nothing more to do if this was a one-off; otherwise check the power supply",
                );
            }
        }
        Err(StoreError::Locked(_)) => {
            match super::client::request(&config.data_dir, &json!({ "op": "status" })) {
                Ok(v) if v["ok"] == true => r.ok(&format!(
                    "the server is running and its database is fine (schema version {})",
                    v["schema_version"]
                )),
                Ok(v) => r.problem(
                    &format!("the running server reports a database problem: {}", v["error"]),
                    "look at the server log (journalctl -u hearth)",
                ),
                Err(e) => r.problem(
                    &format!("the database is locked by another process, but {e}"),
                    "stop whatever holds hearth.redb (another hearth?), then retry",
                ),
            }
        }
        Err(StoreError::LogRefused { path, problem }) => r.problem(
            &format!("the write-ahead log {} {problem}", path.display()),
            "stop here if you can copy the data directory first; then run `hearth doctor \
             --salvage-wal`, which applies every intact record and lists what was lost",
        ),
        Err(e @ StoreError::NewerSchema { .. }) => {
            r.problem(&e.to_string(), "install the newer Hearth again, or restore a backup")
        }
        Err(e) => r.problem(
            &format!("the database does not open: {e}"),
            "restore a backup: hearth restore BACKUP_DIR",
        ),
    }
}

/// `hearth doctor --salvage-wal`: see the module doc. Returns the exit
/// code: 0 when nothing was lost, 1 when writes were lost or the salvage
/// failed.
pub fn salvage_wal(config: &Config, out: &mut impl Write) -> i32 {
    let report = match Store::salvage_log(&config.data_dir) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(out, "salvage failed: {e}");
            return 1;
        }
    };
    let _ = print_salvage(&report, out);
    if report.lost.is_empty() { 0 } else { 1 }
}

fn print_salvage(r: &SalvageReport, out: &mut impl Write) -> std::io::Result<()> {
    let ranges = |v: &[(u64, u64)]| {
        v.iter()
            .map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &r.kept_as {
        Some(p) => writeln!(out, "the write-ahead log was kept, unchanged, as {}", p.display())?,
        None => writeln!(out, "there was no write-ahead log")?,
    }
    writeln!(out, "the database held every write batch up to number {}", r.checkpoint_seq)?;
    if r.applied.is_empty() {
        writeln!(out, "applied: no intact batch after that")?;
    } else {
        writeln!(out, "applied: batches {}", ranges(&r.applied))?;
    }
    if r.lost.is_empty() {
        writeln!(out, "lost: no batch between the ones applied")?;
    } else {
        writeln!(out, "LOST: batches {}", ranges(&r.lost))?;
        if !r.lost_positions.is_empty() {
            writeln!(
                out,
                "LOST: stream positions {} (messages, state changes, receipts, account data \
                 written there are gone)",
                ranges(&r.lost_positions)
            )?;
        }
    }
    writeln!(
        out,
        "anything acknowledged at stream position {} or later was not in the file and cannot \
         be recovered; the server starts again with a new log",
        r.next_position
    )
}
