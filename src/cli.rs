//! The command line: `hearth serve` (the default) and the admin commands,
//! which work on the data directory while the server is stopped. redb locks
//! its file, so an admin command against a running server is refused with a
//! clear message instead of racing it.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use crate::account::{hash_password_blocking, now_ms};
use crate::config::{Config, Overrides};
use crate::ids::{DeviceId, UserId};
use crate::store::{RegistrationTokenRecord, Store, StoreError, UserRecord, WriteCtx};

const USAGE: &str = "\
usage:
  hearth [serve] [--config FILE] [--listen ADDR] [--data-dir DIR]
                 [--server-name NAME] [--registration open|token|closed]
  hearth user add NAME [--admin] [--password-file FILE]
  hearth user passwd NAME [--password-file FILE]
  hearth user list
  hearth user deactivate NAME
  hearth user lock|unlock|suspend|unsuspend NAME
  hearth registration-token create [TOKEN] [--uses N] [--expires-in-days N]
  hearth registration-token list
  hearth registration-token revoke TOKEN
  hearth reports list
  hearth media usage
  hearth media delete mxc://SERVER/MEDIA_ID
  hearth media purge --older-than-days N
  hearth backup DEST      (also while the server runs)
  hearth restore SRC      (server stopped)
  hearth doctor           (exit 0: all fine, 1: something to fix)
  hearth doctor --salvage-wal   (server stopped: recover from a damaged write-ahead log)
  hearth tls self-signed NAME [ALSO...] [--out-dir DIR]

Admin commands take --config / --data-dir / --server-name too, and must run
while the server is stopped.";

/// Exit codes: 0 success, 1 failure at run time, 2 bad usage or config.
pub fn main(args: Vec<String>) -> i32 {
    let mut opts = Options::default();
    let mut words = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> Result<String, String> {
            it.next().ok_or_else(|| format!("{name} needs a value"))
        };
        let r = match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return 0;
            }
            "-V" | "--version" => {
                println!("hearth {}", env!("CARGO_PKG_VERSION"));
                return 0;
            }
            "--config" | "-c" => value("--config").map(|v| opts.config = Some(v.into())),
            "--listen" => value("--listen").map(|v| opts.overrides.listen = Some(v)),
            "--data-dir" => value("--data-dir").map(|v| opts.overrides.data_dir = Some(v.into())),
            "--server-name" => value("--server-name").map(|v| opts.overrides.server_name = Some(v)),
            "--registration" => {
                value("--registration").map(|v| opts.overrides.registration = Some(v))
            }
            "--password-file" => {
                value("--password-file").map(|v| opts.password_file = Some(v.into()))
            }
            "--uses" => value("--uses").and_then(|v| {
                v.parse()
                    .map(|n| opts.uses = Some(n))
                    .map_err(|_| "--uses takes a whole number".into())
            }),
            "--expires-in-days" => value("--expires-in-days").and_then(|v| {
                v.parse()
                    .map(|n| opts.expires_in_days = Some(n))
                    .map_err(|_| "--expires-in-days takes a whole number".into())
            }),
            "--older-than-days" => value("--older-than-days").and_then(|v| {
                v.parse()
                    .map(|n| opts.older_than_days = Some(n))
                    .map_err(|_| "--older-than-days takes a whole number".into())
            }),
            "--admin" => {
                opts.admin = true;
                Ok(())
            }
            "--out-dir" => value("--out-dir").map(|v| opts.out_dir = Some(v.into())),
            "--salvage-wal" => {
                opts.salvage_wal = true;
                Ok(())
            }
            s if s.starts_with('-') => Err(format!("unknown option {s}")),
            _ => {
                words.push(a);
                Ok(())
            }
        };
        if let Err(e) = r {
            eprintln!("hearth: {e}\n{USAGE}");
            return 2;
        }
    }
    let config = match Config::load(opts.config.as_deref(), &opts.overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hearth: {e}");
            return 2;
        }
    };
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        [] | ["serve"] => return serve(config),
        ["user", "add", name] => user_add(&config, name, &opts),
        ["user", "passwd", name] => user_passwd(&config, name, &opts),
        ["user", "list"] => user_list(&config),
        ["user", "deactivate", name] => user_deactivate(&config, name),
        ["user", verb @ ("lock" | "unlock" | "suspend" | "unsuspend"), name] => {
            let on = !verb.starts_with("un");
            let lock = verb.ends_with("lock");
            let done = format!("{verb}ed");
            update_user(&config, name, &done, move |_, _, u| {
                if lock {
                    u.locked = on;
                } else {
                    u.suspended = on;
                }
                Ok(())
            })
        }
        ["registration-token", "create"] => token_create(&config, None, &opts),
        ["registration-token", "create", token] => token_create(&config, Some(token), &opts),
        ["registration-token", "list"] => token_list(&config),
        ["registration-token", "revoke", token] => token_revoke(&config, token),
        ["reports", "list"] => reports_list(&config),
        ["media", "usage"] => media_usage(&config),
        ["backup", dest] => backup(&config, dest),
        ["restore", src] => restore(&config, src),
        ["doctor"] if opts.salvage_wal => {
            return crate::admin::doctor::salvage_wal(&config, &mut std::io::stdout());
        }
        ["doctor"] => {
            let fine = crate::admin::doctor::run(&config, &mut std::io::stdout());
            return if fine { 0 } else { 1 };
        }
        ["tls", "self-signed", name, also @ ..] => tls_self_signed(name, also, &opts),
        ["media", "delete", uri] => media_delete(&config, uri),
        ["media", "purge"] => match opts.older_than_days {
            Some(days) => media_purge(&config, days),
            None => {
                eprintln!("hearth: media purge needs --older-than-days N\n{USAGE}");
                return 2;
            }
        },
        _ => {
            eprintln!("hearth: unknown command {:?}\n{USAGE}", words.join(" "));
            return 2;
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("hearth: {e}");
            1
        }
    }
}

#[derive(Default)]
struct Options {
    config: Option<PathBuf>,
    overrides: Overrides,
    password_file: Option<PathBuf>,
    admin: bool,
    uses: Option<u64>,
    expires_in_days: Option<u64>,
    older_than_days: Option<u64>,
    out_dir: Option<PathBuf>,
    salvage_wal: bool,
}

fn init_logging(filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // journald stamps lines itself; a second timestamp is noise.
    let _ = if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().with_ansi(false).try_init()
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).try_init()
    };
}

fn serve(config: Config) -> i32 {
    // Certificate problems are config errors (exit 2), found before anything
    // starts; the listener loads the files again when it starts.
    if let Some(files) = &config.tls
        && let Err(e) = crate::http::tls::load_server_config(files)
    {
        eprintln!("hearth: {e}");
        return 2;
    }
    init_logging(&config.log);
    if config.registration_defaulted_closed {
        tracing::warn!(
            "listening on {} (beyond loopback) with no `registration` setting: registration is \
             closed. Create accounts with `hearth user add`, or set registration = \"token\".",
            config.listen
        );
    }
    // The blocking pool runs argon2, thumbnails and file I/O; a few threads
    // are plenty on a board and each one costs a stack and an arena.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(8)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hearth: cannot start the runtime: {e}");
            return 1;
        }
    };
    let store = match crate::server::open_store(&config) {
        Ok(s) => s,
        // Like a config error (exit 2, which the systemd unit does not
        // restart): starting again cannot help, the operator must act.
        Err(e @ StoreError::LogRefused { .. }) => {
            eprintln!("hearth: {e}");
            return 2;
        }
        Err(e) => {
            eprintln!("hearth: {e}");
            return 1;
        }
    };
    let local = tokio::task::LocalSet::new();

    local.block_on(&runtime, async move {
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("hearth: cannot listen on {}: {e}", config.listen);
                store.shutdown();
                return 1;
            }
        };
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(
            "serving {} on {}://{addr} from {} (registration {})",
            config.server_name,
            if config.tls.is_some() { "https" } else { "http" },
            config.data_dir.display(),
            config.registration.as_str()
        );
        // systemd (Type=notify): ready once the socket accepts connections,
        // and a watchdog ping from the event loop itself, so a wedged loop
        // gets the service restarted.
        let _ = crate::notify::notify("READY=1");
        let watchdog = crate::notify::watchdog_interval()
            .map(|every| tokio::task::spawn_local(crate::notify::watchdog_pings(every)));
        crate::server::run(config, store, listener, async {
            shutdown_signal().await;
            let _ = crate::notify::notify("STOPPING=1");
        })
        .await;
        if let Some(w) = watchdog {
            w.abort();
        }
        tracing::info!("stopped");
        0
    })
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutting down");
}

/// `hearth tls self-signed NAME [ALSO...]`: writes `NAME.crt` (the server
/// certificate and its throwaway CA), `NAME.key` (mode 0600) and
/// `NAME-ca.crt` (the CA alone, for devices to trust), and prints the config
/// lines. Existing files are not overwritten.
fn tls_self_signed(name: &str, also: &[&str], opts: &Options) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let generated = crate::http::tls::self_signed(name, also).map_err(|e| e.to_string())?;
    let dir = opts.out_dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let dir = std::fs::canonicalize(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let ca = dir.join(format!("{name}-ca.crt"));
    for p in [&cert, &key, &ca] {
        if p.exists() {
            return Err(format!("{} exists; remove it first to make a new pair", p.display()));
        }
    }
    let write = |path: &PathBuf, text: &str, mode: u32| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write(&key, &generated.key_pem, 0o600)?;
    write(&cert, &generated.cert_pem, 0o644)?;
    write(&ca, &generated.ca_pem, 0o644)?;
    let mut names = vec![name];
    names.extend(also.iter().copied().filter(|a| *a != name));
    println!("wrote {}, {} and {}", cert.display(), key.display(), ca.display());
    println!("certificate for {}, valid until {}", names.join(", "), generated.not_after);
    println!("SHA-256 fingerprint: {}", generated.sha256_fingerprint);
    println!();
    println!("Devices must trust {} (install it as a CA certificate).", ca.display());
    println!("Add to the config file (the key must be readable by the user hearth runs as):");
    println!("tls_cert = {:?}", cert.display().to_string());
    println!("tls_key = {:?}", key.display().to_string());
    Ok(())
}

/// Backs up directly when the server is stopped, else asks it over the
/// admin socket (redb's lock keeps us out of a running server's file).
fn backup(config: &Config, dest: &str) -> Result<(), String> {
    let dest = std::path::absolute(dest).map_err(|e| format!("{dest}: {e}"))?;
    match Store::open(&config.data_dir, config.db_cache_bytes, None) {
        Ok(store) => {
            let r = crate::admin::backup::backup(&store, &config.data_dir, &dest);
            store.shutdown();
            println!("backed up to {}: {}", dest.display(), r?.describe());
            Ok(())
        }
        Err(StoreError::Locked(_)) => {
            let req = serde_json::json!({ "op": "backup", "dest": dest });
            let v = crate::admin::client::request(&config.data_dir, &req).map_err(|e| {
                format!("the database is in use, but asking the server failed: {e}")
            })?;
            if v["ok"] != true {
                return Err(format!(
                    "the running server could not back up: {}",
                    v["error"].as_str().unwrap_or("unknown error")
                ));
            }
            println!(
                "backed up to {} by the running server: database {} bytes (stream position {}), \
                 {} media files copied, {} already there",
                dest.display(),
                v["db_bytes"],
                v["position"],
                v["media_copied"],
                v["media_skipped"]
            );
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

fn restore(config: &Config, src: &str) -> Result<(), String> {
    let status = serde_json::json!({ "op": "status" });
    if crate::admin::client::request(&config.data_dir, &status).is_ok() {
        return Err("the server is running on this data directory; stop it first".into());
    }
    let summary = crate::admin::backup::restore(std::path::Path::new(src), &config.data_dir)?;
    println!("restored {src} into {}: {}", config.data_dir.display(), summary.describe());
    Ok(())
}

fn open(config: &Config) -> Result<Store, String> {
    Store::open(&config.data_dir, config.db_cache_bytes, None).map_err(|e| e.to_string())
}

fn read_password(opts: &Options, prompt: &str) -> Result<String, String> {
    if let Some(f) = &opts.password_file {
        let text =
            std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        let pw = text.lines().next().unwrap_or("").to_owned();
        if pw.is_empty() {
            return Err(format!("{} is empty", f.display()));
        }
        return Ok(pw);
    }
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let ask = |label: &str| -> Result<String, String> {
        eprint!("{label}");
        let _ = std::io::stderr().flush();
        if tty {
            let _ = std::process::Command::new("stty").arg("-echo").status();
        }
        let mut line = String::new();
        let r = stdin.lock().read_line(&mut line);
        if tty {
            let _ = std::process::Command::new("stty").arg("echo").status();
            eprintln!();
        }
        r.map_err(|e| format!("cannot read the password: {e}"))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    };
    let pw = ask(prompt)?;
    if pw.is_empty() {
        return Err("the password must not be empty".into());
    }
    if tty && ask("Repeat it: ")? != pw {
        return Err("the passwords differ".into());
    }
    Ok(pw)
}

fn user_add(config: &Config, name: &str, opts: &Options) -> Result<(), String> {
    let localpart =
        name.trim_start_matches('@').split(':').next().unwrap_or("").to_ascii_lowercase();
    let user_id =
        UserId::new_local(&localpart, &config.server_name).map_err(|e| e.0.to_string())?;
    let store = open(config)?;
    if store
        .read()
        .map_err(|e| e.to_string())?
        .user(&localpart)
        .map_err(|e| e.to_string())?
        .is_some()
    {
        store.shutdown();
        return Err(format!("{user_id} already exists"));
    }
    let password = read_password(opts, &format!("Password for {user_id}: "))?;
    let hash = hash_password_blocking(&password)?;
    let admin = opts.admin;
    let lp = localpart.clone();
    let r = store.write_blocking(move |ctx| {
        let rec = UserRecord {
            password_hash: Some(hash),
            admin,
            created_ms: now_ms(),
            ..UserRecord::default()
        };
        if !ctx.create_user(&lp, rec)? {
            return Ok(Err(StoreError::Corrupt("exists".into())));
        }
        Ok(Ok(()))
    });
    store.shutdown();
    r.map_err(|e| e.to_string())?;
    println!("created {user_id}{}", if admin { " (admin)" } else { "" });
    Ok(())
}

fn user_passwd(config: &Config, name: &str, opts: &Options) -> Result<(), String> {
    let localpart = name.trim_start_matches('@').split(':').next().unwrap_or("").to_owned();
    let store = open(config)?;
    let exists =
        store.read().map_err(|e| e.to_string())?.user(&localpart).map_err(|e| e.to_string())?;
    if exists.is_none() {
        store.shutdown();
        return Err(format!("no user {localpart}"));
    }
    let password = read_password(opts, "New password: ")?;
    let hash = hash_password_blocking(&password)?;
    let r = store.write_blocking(move |ctx| {
        let Some(mut u) = ctx.user(&localpart)? else {
            return Ok(Err(StoreError::Corrupt("user vanished".into())));
        };
        u.password_hash = Some(hash);
        u.deactivated = false;
        ctx.put_user(&localpart, &u)?;
        Ok(Ok(()))
    });
    store.shutdown();
    r.map_err(|e| e.to_string())?;
    println!("password changed");
    Ok(())
}

fn user_list(config: &Config) -> Result<(), String> {
    let store = open(config)?;
    let users = store.read().map_err(|e| e.to_string())?.users().map_err(|e| e.to_string());
    store.shutdown();
    for (lp, u) in users? {
        let mut flags = Vec::new();
        if u.admin {
            flags.push("admin");
        }
        if u.deactivated {
            flags.push("deactivated");
        }
        if u.locked {
            flags.push("locked");
        }
        if u.suspended {
            flags.push("suspended");
        }
        println!("@{lp}:{}\t{}", config.server_name, flags.join(","));
    }
    Ok(())
}

fn user_deactivate(config: &Config, name: &str) -> Result<(), String> {
    update_user(config, name, "deactivated", |ctx, lp, u| {
        u.deactivated = true;
        u.password_hash = None;
        for d in ctx.device_ids(lp)? {
            ctx.delete_device(lp, &DeviceId::from_trusted(d))?;
        }
        Ok(())
    })
}

/// Changes one user record (and what goes with it) in one transaction.
fn update_user(
    config: &Config,
    name: &str,
    done: &str,
    change: impl FnOnce(&mut WriteCtx<'_>, &str, &mut UserRecord) -> Result<(), StoreError>
    + Send
    + 'static,
) -> Result<(), String> {
    let localpart = name.trim_start_matches('@').split(':').next().unwrap_or("").to_owned();
    let store = open(config)?;
    let lp = localpart.clone();
    let r = store.write_blocking(move |ctx| {
        let Some(mut u) = ctx.user(&lp)? else {
            return Ok(Err(StoreError::Corrupt(format!("no user {lp}"))));
        };
        change(ctx, &lp, &mut u)?;
        ctx.put_user(&lp, &u)?;
        Ok(Ok(()))
    });
    store.shutdown();
    r.map_err(|e| match e {
        StoreError::Corrupt(m) => m,
        other => other.to_string(),
    })?;
    println!("{done} {localpart}");
    Ok(())
}

fn token_create(config: &Config, token: Option<&str>, opts: &Options) -> Result<(), String> {
    let token = match token {
        Some(t) => {
            let ok = !t.is_empty()
                && t.len() <= 64
                && t.bytes().all(|c| c.is_ascii_alphanumeric() || b"._~-".contains(&c));
            if !ok {
                return Err("a registration token is 1-64 characters of A-Z a-z 0-9 . _ ~ -".into());
            }
            t.to_owned()
        }
        None => {
            let mut b = [0u8; 12];
            getrandom::fill(&mut b).map_err(|e| e.to_string())?;
            const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
            b.iter().map(|x| char::from(ALPHABET[usize::from(*x) % ALPHABET.len()])).collect()
        }
    };
    let now = now_ms();
    let record = RegistrationTokenRecord {
        uses_allowed: opts.uses,
        completed: 0,
        expiry_ms: opts.expires_in_days.map(|d| now + d * 24 * 3600 * 1000),
        created_ms: now,
    };
    let store = open(config)?;
    let t = token.clone();
    let r = store.write_blocking(move |ctx| {
        if ctx.registration_token(&t)?.is_some() {
            return Ok(Err(StoreError::Corrupt(format!("token {t} already exists"))));
        }
        ctx.put_registration_token(&t, &record)?;
        Ok(Ok(()))
    });
    store.shutdown();
    r.map_err(|e| match e {
        StoreError::Corrupt(m) => m,
        other => other.to_string(),
    })?;
    println!("{token}");
    Ok(())
}

fn token_list(config: &Config) -> Result<(), String> {
    let store = open(config)?;
    let tokens =
        store.read().map_err(|e| e.to_string())?.registration_tokens().map_err(|e| e.to_string());
    store.shutdown();
    let now = now_ms();
    for (t, r) in tokens? {
        let uses = match r.uses_allowed {
            Some(n) => format!("{}/{n} used", r.completed),
            None => format!("{} used", r.completed),
        };
        let state = if r.is_usable(now) { "valid" } else { "spent or expired" };
        println!("{t}\t{uses}\t{state}");
    }
    Ok(())
}

fn token_revoke(config: &Config, token: &str) -> Result<(), String> {
    let store = open(config)?;
    let t = token.to_owned();
    let r = store
        .write_blocking(move |ctx| Ok(Ok::<_, StoreError>(ctx.delete_registration_token(&t)?)));
    store.shutdown();
    if r.map_err(|e| e.to_string())? {
        println!("revoked {token}");
        Ok(())
    } else {
        Err(format!("no registration token {token}"))
    }
}

fn reports_list(config: &Config) -> Result<(), String> {
    let store = open(config)?;
    let reports = store.read().map_err(|e| e.to_string())?.reports().map_err(|e| e.to_string());
    store.shutdown();
    for (id, json) in reports? {
        let v: serde_json::Value = serde_json::from_slice(&json).map_err(|e| e.to_string())?;
        let target = match v["kind"].as_str() {
            Some("event") => format!(
                "event {} in {}",
                v["event_id"].as_str().unwrap_or("?"),
                v["room_id"].as_str().unwrap_or("?")
            ),
            Some("room") => format!("room {}", v["room_id"].as_str().unwrap_or("?")),
            _ => format!("user {}", v["user_id"].as_str().unwrap_or("?")),
        };
        println!(
            "#{id}\t{}\t{target}\t{}",
            v["reporter"].as_str().unwrap_or("?"),
            v["reason"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

fn media_files(config: &Config) -> Result<crate::media::MediaFiles, String> {
    crate::media::MediaFiles::open(&config.data_dir).map_err(|e| e.to_string())
}

fn media_usage(config: &Config) -> Result<(), String> {
    let store = open(config)?;
    let usage =
        store.read().map_err(|e| e.to_string())?.media_usage_all().map_err(|e| e.to_string());
    store.shutdown();
    for (user, bytes) in usage? {
        println!("{user}\t{bytes}");
    }
    println!("on disk\t{}", media_files(config)?.disk_usage());
    Ok(())
}

/// Deletes the record, then every file no remaining record names.
fn drop_media(
    store: &Store,
    files: &crate::media::MediaFiles,
    victims: Vec<(String, String)>,
) -> Result<usize, String> {
    let removed = store
        .write_blocking(move |ctx| {
            let mut hashes = Vec::new();
            for (s, m) in &victims {
                if let Some((rec, thumbs)) = ctx.delete_media(s, m)? {
                    hashes.extend(rec.hash);
                    hashes.extend(thumbs);
                }
            }
            Ok(Ok::<_, StoreError>(hashes))
        })
        .map_err(|e| e.to_string())?;
    let read = store.read().map_err(|e| e.to_string())?;
    let mut n = 0;
    for h in removed {
        if !read.hash_in_use(&h).map_err(|e| e.to_string())? {
            files.remove(&h).map_err(|e| e.to_string())?;
            n += 1;
        }
    }
    Ok(n)
}

fn media_delete(config: &Config, uri: &str) -> Result<(), String> {
    let rest = uri.strip_prefix("mxc://").ok_or("give the media as mxc://SERVER/MEDIA_ID")?;
    let (server, media_id) =
        rest.split_once('/').ok_or("give the media as mxc://SERVER/MEDIA_ID")?;
    let files = media_files(config)?;
    let store = open(config)?;
    let exists = store
        .read()
        .map_err(|e| e.to_string())?
        .media(server, media_id)
        .map_err(|e| e.to_string())?;
    let r = match exists {
        Some(_) => drop_media(&store, &files, vec![(server.to_owned(), media_id.to_owned())]),
        None => Err(format!("no media {uri}")),
    };
    store.shutdown();
    let n = r?;
    println!("deleted {uri} ({n} files removed)");
    Ok(())
}

fn media_purge(config: &Config, days: u64) -> Result<(), String> {
    let cutoff = now_ms().saturating_sub(days * 24 * 3600 * 1000);
    let files = media_files(config)?;
    let store = open(config)?;
    let victims: Result<Vec<(String, String)>, String> = store
        .read()
        .and_then(|r| r.all_media())
        .map(|all| {
            all.into_iter()
                .filter(|(_, _, r)| r.last_access_ms.unwrap_or(r.created_ms) < cutoff)
                .map(|(s, m, _)| (s, m))
                .collect()
        })
        .map_err(|e| e.to_string());
    let r = victims.and_then(|v| {
        let count = v.len();
        drop_media(&store, &files, v).map(|n| (count, n))
    });
    store.shutdown();
    let (count, n) = r?;
    println!("purged {count} media not used for {days} days ({n} files removed)");
    Ok(())
}
