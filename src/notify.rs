//! systemd service notifications (`sd_notify(3)`) without libsystemd.
//!
//! This module owns the talk with the service manager: telling it we are
//! ready (`READY=1`), stopping (`STOPPING=1`), alive (`WATCHDOG=1`) or what
//! we are doing (`STATUS=…`), and reading the watchdog interval it asks for.
//! It speaks the documented wire protocol directly (one datagram of
//! newline-separated `KEY=VALUE` assignments to the unix socket named in
//! `$NOTIFY_SOCKET`) so the binary needs no C library beyond libc and
//! cross-builds for the board stay plain. Outside systemd (no
//! `$NOTIFY_SOCKET`) every call is a cheap no-op.
//!
//! It must not decide *when* to notify: the server calls [`notify`] once the
//! listener is bound and again at shutdown, and runs [`watchdog_pings`] on
//! the event loop so a stalled loop stops the pings and systemd restarts us.
//!
//! spec: <https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html>

use std::ffi::OsStr;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

/// The longest a notification may wait for room in systemd's queue. Sends
/// happen on the event loop, which must never block for long; systemd's
/// socket has a large receive buffer, so this only bounds a pathological
/// case (a wedged PID 1).
const SEND_TIMEOUT: Duration = Duration::from_millis(100);

/// Sends `state` (e.g. `"READY=1"`, `"STOPPING=1"`, `"WATCHDOG=1"`,
/// `"STATUS=serving"`; several assignments may be joined with `\n`) as one
/// datagram to the socket in `$NOTIFY_SOCKET`.
///
/// Returns `Ok(false)` when the variable is unset or empty (not started by
/// systemd, or `Type=` is not `notify`), `Ok(true)` once the datagram is
/// sent. Filesystem paths (`/run/systemd/notify`) and abstract sockets
/// (`@name`) are supported; any other form is `InvalidInput`.
pub fn notify(state: &str) -> io::Result<bool> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(socket) if !socket.is_empty() => notify_socket(&socket, state).map(|()| true),
        _ => Ok(false),
    }
}

/// How often to send `WATCHDOG=1`, or `None` when systemd asked for no
/// watchdog: half of `$WATCHDOG_USEC`, as `sd_watchdog_enabled(3)`
/// recommends, so one late ping is not yet fatal. When `$WATCHDOG_PID` is
/// set it must name this process (the watchdog is meant for the main PID,
/// not for children that inherited the environment).
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    parse_watchdog(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// Sends `WATCHDOG=1` every `every`, forever. Spawn it on the event loop
/// (`tokio::task::spawn_local`) with the value of [`watchdog_interval`]:
/// it must share the loop with request handling so that a blocked loop
/// misses pings and systemd restarts the service. Send failures are
/// logged and retried at the next tick.
pub async fn watchdog_pings(every: Duration) {
    let mut ticks = tokio::time::interval(every);
    // After a stall, one ping is enough; a burst of catch-up pings would
    // only hide how late we were.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = notify("WATCHDOG=1") {
            tracing::warn!("systemd watchdog ping failed: {e}");
        }
    }
}

/// Sends `state` to the notification socket `socket` (a path, or `@name`
/// for the abstract namespace). Separate from [`notify`] so tests need not
/// touch the process environment.
fn notify_socket(socket: &OsStr, state: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    sock.set_write_timeout(Some(SEND_TIMEOUT))?;
    let bytes = socket.as_encoded_bytes();
    let sent = match bytes.first() {
        Some(b'/') => sock.send_to(state.as_bytes(), Path::new(socket))?,
        Some(b'@') => send_abstract(&sock, &bytes[1..], state.as_bytes())?,
        // systemd also documents `vsock:` addresses (for VMs); a board never
        // gets one, and a relative path would depend on our working directory.
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unsupported NOTIFY_SOCKET address {socket:?}"),
            ));
        }
    };
    // Datagrams are sent whole or not at all; check anyway rather than
    // assume, since a truncated READY=1 would leave systemd waiting.
    if sent != state.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "notification datagram truncated"));
    }
    Ok(())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_abstract(sock: &UnixDatagram, name: &[u8], buf: &[u8]) -> io::Result<usize> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    sock.send_to_addr(buf, &addr)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &[u8]) -> io::Result<usize> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "abstract unix sockets need Linux"))
}

/// [`watchdog_interval`] on explicit values: `usec` from `$WATCHDOG_USEC`,
/// `pid` from `$WATCHDOG_PID`, `our_pid` this process's id. Anything
/// malformed or zero means "no watchdog", like `sd_watchdog_enabled`.
fn parse_watchdog(usec: Option<&str>, pid: Option<&str>, our_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok()? != our_pid
    {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    Some(Duration::from_micros(usec) / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver(dir: &tempfile::TempDir) -> (UnixDatagram, std::path::PathBuf) {
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (sock, path)
    }

    fn recv(sock: &UnixDatagram) -> Vec<u8> {
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn ready_is_sent_as_one_datagram_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let (sock, path) = receiver(&dir);
        notify_socket(path.as_os_str(), "READY=1").unwrap();
        assert_eq!(recv(&sock), b"READY=1");
    }

    #[test]
    fn each_call_is_its_own_datagram_with_exact_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (sock, path) = receiver(&dir);
        notify_socket(path.as_os_str(), "STATUS=serving mybox.local\nWATCHDOG=1").unwrap();
        notify_socket(path.as_os_str(), "STOPPING=1").unwrap();
        assert_eq!(recv(&sock), b"STATUS=serving mybox.local\nWATCHDOG=1");
        assert_eq!(recv(&sock), b"STOPPING=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn abstract_socket_is_reached_through_an_at_sign() {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::SocketAddr;
        let name =
            format!("hearth-notify-test-{}-{:?}", std::process::id(), std::thread::current().id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        notify_socket(OsStr::new(&format!("@{name}")), "WATCHDOG=1").unwrap();
        assert_eq!(recv(&sock), b"WATCHDOG=1");
    }

    #[test]
    fn relative_and_vsock_addresses_are_rejected() {
        for addr in ["notify", "vsock:2:1234"] {
            let err = notify_socket(OsStr::new(addr), "READY=1").unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{addr}");
        }
    }

    #[test]
    fn missing_socket_is_an_error_not_a_silent_success() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nobody-listens");
        assert!(notify_socket(path.as_os_str(), "READY=1").is_err());
    }

    #[test]
    fn watchdog_interval_is_half_of_watchdog_usec() {
        assert_eq!(parse_watchdog(Some("30000000"), None, 7), Some(Duration::from_secs(15)));
        assert_eq!(parse_watchdog(Some("1000"), None, 7), Some(Duration::from_micros(500)));
    }

    #[test]
    fn watchdog_pid_must_be_ours() {
        assert_eq!(parse_watchdog(Some("30000000"), Some("7"), 7), Some(Duration::from_secs(15)));
        assert_eq!(parse_watchdog(Some("30000000"), Some("8"), 7), None);
        assert_eq!(parse_watchdog(Some("30000000"), Some("x"), 7), None);
    }

    #[test]
    fn no_or_bad_watchdog_usec_means_no_watchdog() {
        assert_eq!(parse_watchdog(None, None, 7), None);
        assert_eq!(parse_watchdog(None, Some("7"), 7), None);
        assert_eq!(parse_watchdog(Some("0"), None, 7), None);
        assert_eq!(parse_watchdog(Some("-5"), None, 7), None);
        assert_eq!(parse_watchdog(Some("soon"), None, 7), None);
    }
}
