//! Command line → [`Settings`].
//!
//! Hand-written on purpose: a dozen flags do not justify a dependency. The
//! URL is checked here once: this tool only ever sends traffic to loopback
//! (127.0.0.0/8 or ::1), and says so clearly when given anything else.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::scale::Scale;

pub(crate) const USAGE: &str = "\
hearth-bench: drive a Matrix homeserver over the client-server API and measure it

USAGE:
    hearth-bench --url http://127.0.0.1:8008 [options]
    hearth-bench --url http://127.0.0.1:8008 --wait-ready [--pid PID] [--spawned-at-ns NS]

OPTIONS:
    --url URL            homeserver base URL; plain http on loopback only
                         (127.0.0.0/8, localhost or [::1])
    --pid PID            server process id, for RSS / disk-write / CPU readings
    --data-dir DIR       server data directory, for database and media size
    --scale NAME         small | default | large          [default: default]
    --only LIST          comma-separated scenarios to run (setup always runs):
                         send, sync, sliding, wake, fanout, idle, messages,
                         media, and fill (50 users, 100 rooms, 20,000
                         messages, then RSS; only run when named here)
    --senders N          concurrent senders in the send scenario
                         [default: 8 small, 32 default, 64 large]
    --txn-ids KIND       sequential (prefix.counter, like matrix-js-sdk) or random
                         (32 hex digits, like Element X)      [default: sequential]
    --json               print one JSON document on stdout (progress stays on stderr)
    --wait-ready         only wait for the first 200 from /_matrix/client/versions
                         and print the seconds it took (start-up time)
    --spawned-at-ns NS   with --wait-ready: when the server was spawned, in ns
                         since the Unix epoch (`date +%s%N`); default: now
    --ready-timeout SECS with --wait-ready: give up after this long [default: 120]
    -h, --help           this text
";

/// Scenario names accepted by `--only`, in the order they run.
pub(crate) const SCENARIOS: [&str; 9] =
    ["sync", "sliding", "messages", "wake", "idle", "fanout", "media", "send", "fill"];
/// Scenarios that run only when `--only` names them: `fill` sends 20,000
/// messages, which takes Synapse the better part of ten minutes.
const OPT_IN: [&str; 1] = ["fill"];

#[derive(Debug)]
pub(crate) enum Command {
    Run(Box<Settings>),
    Help,
}

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// `http://host:port` with no trailing slash; the host is loopback.
    pub(crate) base_url: String,
    pub(crate) pid: Option<u32>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) scale: Scale,
    pub(crate) only: BTreeSet<&'static str>,
    pub(crate) json: bool,
    pub(crate) wait_ready: Option<WaitReady>,
    /// `--txn-ids random`.
    pub(crate) random_txn_ids: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct WaitReady {
    pub(crate) spawned_at_ns: Option<u128>,
    pub(crate) timeout: Duration,
}

impl Settings {
    pub(crate) fn wants(&self, scenario: &str) -> bool {
        self.only.contains(scenario)
    }
}

pub(crate) fn parse(args: impl Iterator<Item = OsString>) -> Result<Command, String> {
    let mut url = None;
    let mut pid = None;
    let mut data_dir = None;
    let mut scale_name = String::from("default");
    let mut only: Option<BTreeSet<&'static str>> = None;
    let mut senders = None;
    let mut json = false;
    let mut random_txn_ids = false;
    let mut wait_ready = false;
    let mut spawned_at_ns = None;
    let mut ready_timeout = Duration::from_secs(120);

    let mut args = args.map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = args.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline.clone().or_else(|| args.next()).ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--url" => url = Some(value("--url")?),
            "--pid" => {
                let v = value("--pid")?;
                pid = Some(v.parse::<u32>().map_err(|_| format!("--pid: not a process id: {v}"))?);
            }
            "--data-dir" => data_dir = Some(PathBuf::from(value("--data-dir")?)),
            "--scale" => scale_name = value("--scale")?,
            "--only" => {
                let v = value("--only")?;
                let mut set = BTreeSet::new();
                for name in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let known = SCENARIOS.iter().find(|s| **s == name).ok_or_else(|| {
                        format!(
                            "--only: unknown scenario {name:?} (known: {})",
                            SCENARIOS.join(", ")
                        )
                    })?;
                    set.insert(*known);
                }
                if set.is_empty() {
                    return Err("--only: no scenario named".into());
                }
                only = Some(set);
            }
            "--senders" => {
                let v = value("--senders")?;
                let n = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1024).contains(n))
                    .ok_or_else(|| format!("--senders: expected 1..=1024, got {v}"))?;
                senders = Some(n);
            }
            "--json" => json = true,
            "--txn-ids" => {
                random_txn_ids = match value("--txn-ids")?.as_str() {
                    "sequential" => false,
                    "random" => true,
                    other => {
                        return Err(format!(
                            "--txn-ids: expected sequential or random, got {other:?}"
                        ));
                    }
                }
            }
            "--wait-ready" => wait_ready = true,
            "--spawned-at-ns" => {
                let v = value("--spawned-at-ns")?;
                spawned_at_ns = Some(
                    v.parse::<u128>().map_err(|_| format!("--spawned-at-ns: not a number: {v}"))?,
                );
            }
            "--ready-timeout" => {
                let v = value("--ready-timeout")?;
                let secs = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
                    .ok_or_else(|| format!("--ready-timeout: expected seconds, got {v}"))?;
                ready_timeout = Duration::from_secs_f64(secs);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }

    let url = url.ok_or("--url is required")?;
    let base_url = loopback_base_url(&url)?;
    let mut scale = Scale::named(&scale_name)
        .ok_or_else(|| format!("--scale: expected small, default or large, got {scale_name:?}"))?;
    if let Some(n) = senders {
        scale.senders = n;
        scale.send_rooms = scale.send_rooms.min(n);
    }
    Ok(Command::Run(Box::new(Settings {
        base_url,
        pid,
        data_dir,
        scale,
        only: only
            .unwrap_or_else(|| SCENARIOS.into_iter().filter(|s| !OPT_IN.contains(s)).collect()),
        json,
        wait_ready: wait_ready.then_some(WaitReady { spawned_at_ns, timeout: ready_timeout }),
        random_txn_ids,
    })))
}

/// Validates `url` and returns `http://HOST:PORT` with a literal loopback
/// address as host.
///
/// `localhost` is rewritten to `127.0.0.1` so that what is contacted never
/// depends on a resolver or `/etc/hosts`.
fn loopback_base_url(url: &str) -> Result<String, String> {
    let refuse = |why: &str| {
        format!(
            "refusing --url {url:?}: {why}. hearth-bench only sends traffic to loopback \
             (127.0.0.0/8, localhost or [::1]) over plain http"
        )
    };
    let rest =
        url.strip_prefix("http://").ok_or_else(|| refuse("only http:// URLs are supported"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(refuse("user info in the URL is not supported"));
    }
    if let Some(path) = rest.strip_prefix(authority)
        && !path.trim_end_matches('/').is_empty()
    {
        return Err(refuse("give the server's base URL without a path"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| refuse("unterminated [IPv6] host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port: u16 = match port {
        Some(p) => p.parse().map_err(|_| refuse("bad port"))?,
        None => 80,
    };
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse().map_err(|_| refuse("the host must be a loopback IP address or localhost"))?
    };
    if !ip.is_loopback() {
        return Err(refuse("the host is not a loopback address"));
    }
    Ok(match ip {
        IpAddr::V4(v4) => format!("http://{v4}:{port}"),
        IpAddr::V6(v6) => format!("http://[{v6}]:{port}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_are_accepted_and_normalised() {
        assert_eq!(
            loopback_base_url("http://127.0.0.1:8008/").as_deref(),
            Ok("http://127.0.0.1:8008")
        );
        assert_eq!(
            loopback_base_url("http://localhost:9000").as_deref(),
            Ok("http://127.0.0.1:9000")
        );
        assert_eq!(loopback_base_url("http://127.5.6.7:1").as_deref(), Ok("http://127.5.6.7:1"));
        assert_eq!(loopback_base_url("http://[::1]:8448").as_deref(), Ok("http://[::1]:8448"));
    }

    #[test]
    fn non_loopback_urls_are_refused() {
        for url in [
            "http://192.168.1.2:8008",
            "http://10.0.0.1",
            "http://matrix.org",
            "https://127.0.0.1:8448",
            "http://[::2]:80",
            "http://user@127.0.0.1:80",
            "http://127.0.0.1:8008/_matrix",
            "127.0.0.1:8008",
        ] {
            assert!(loopback_base_url(url).is_err(), "{url} was accepted");
        }
    }

    #[test]
    fn only_rejects_unknown_scenarios() {
        let args = ["--url", "http://127.0.0.1:1", "--only", "send,bogus"];
        assert!(parse(args.iter().map(OsString::from)).is_err());
        let args = ["--url", "http://127.0.0.1:1", "--only=send,sync"];
        match parse(args.iter().map(OsString::from)) {
            Ok(Command::Run(s)) => assert!(s.wants("send") && s.wants("sync") && !s.wants("idle")),
            other => panic!("unexpected {other:?}"),
        }
    }
}
