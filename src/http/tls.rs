//! HTTPS for the listener: loading `tls_cert` / `tls_key` into a rustls
//! `ServerConfig` (ring provider, ALPN `h2` then `http/1.1`), swapping it
//! on reload (SIGHUP, or a [`Reloader`] in tests), the executor hyper's
//! HTTP/2 server needs on our single-threaded loop, and the self-signed
//! certificates of `hearth tls self-signed`.
//!
//! It knows nothing of requests: `http::serve` accepts, asks [`Tls`] for
//! an acceptor, and hands the decrypted stream to the same connection code
//! as plain HTTP.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// The one crypto provider: ring, pure Rust and assembly that cross-compiles
/// for ARM. Always passed explicitly, never the process default, so a build
/// that also links aws-lc (the test client's dependencies do) cannot pick a
/// different one or panic over the ambiguity.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate or key problem; the message starts with the config key.
#[derive(Debug, Clone)]
pub struct TlsError(pub String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// Reads and checks both files and builds the server config. Blocking file
/// I/O of two small files: done at start-up and, on reload, off the loop.
pub fn load_server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = read_certs(&files.cert)?;
    let key = read_key(&files.key)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("tls_cert: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsError(format!(
                "tls_key: {} is not the key of the certificate in {}",
                files.key.display(),
                files.cert.display()
            )),
            other => TlsError(format!("tls_key: {}: {other}", files.key.display())),
        })?;
    // ALPN: HTTP/2 for clients that offer it (browsers, reqwest, OkHttp),
    // HTTP/1.1 for the rest; a client offering neither still gets 1.1.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_file(key: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError(format!("{key}: cannot read {}: {e}", path.display())))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file("tls_cert", path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("tls_cert: {} is not valid PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "tls_cert: {} holds no certificate (expected -----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    // Parse the leaf now, so a corrupt certificate is reported by name
    // instead of failing every handshake later.
    rustls::server::ParsedCertificate::try_from(&certs[0]).map_err(|e| {
        TlsError(format!("tls_cert: {} is not a usable certificate: {e}", path.display()))
    })?;
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file("tls_key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        TlsError(format!(
            "tls_key: {} holds no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}",
            path.display()
        ))
    })
}

/// The live TLS state of a listener. Lives on the event loop only, so the
/// current config is a `RefCell` (no lock, no ArcSwap): the accept loop
/// clones the `Arc` per connection, and a reload replaces it. Connections
/// already open keep the config they started with.
pub struct Tls {
    files: TlsFiles,
    current: RefCell<Arc<ServerConfig>>,
}

impl Tls {
    /// Loads the files named in the config.
    pub fn load(files: &TlsFiles) -> Result<Tls, TlsError> {
        let config = load_server_config(files)?;
        Ok(Tls { files: files.clone(), current: RefCell::new(config) })
    }

    /// An acceptor with the current certificate.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.borrow().clone())
    }

    /// Re-reads both files (off the loop) and, if they are good, serves new
    /// connections with them. If not, the old certificate stays and the
    /// error says why.
    pub async fn reload(&self) -> Result<(), TlsError> {
        let files = self.files.clone();
        let loaded = tokio::task::spawn_blocking(move || load_server_config(&files))
            .await
            .map_err(|e| TlsError(format!("tls_cert: reload task failed: {e}")))??;
        *self.current.borrow_mut() = loaded;
        Ok(())
    }
}

type ReloadReply = oneshot::Sender<Result<(), String>>;

/// Asks a running server to reload its certificate, as SIGHUP does, and
/// waits for the outcome. `Send` and cheap to clone, so another thread (a
/// test) can hold it.
#[derive(Clone)]
pub struct Reloader {
    tx: mpsc::UnboundedSender<ReloadReply>,
}

impl Reloader {
    /// `Ok` once new connections use the re-read files; `Err` with the
    /// reason if they were bad (the old certificate is still served) or the
    /// server does not use TLS or has stopped.
    pub async fn reload(&self) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(reply).map_err(|_| "the server has stopped".to_owned())?;
        answer.await.map_err(|_| "the server has stopped".to_owned())?
    }
}

/// The server's end of a [`Reloader`].
pub struct ReloadRequests {
    rx: Option<mpsc::UnboundedReceiver<ReloadReply>>,
}

impl ReloadRequests {
    /// Reload only on SIGHUP.
    pub fn none() -> ReloadRequests {
        ReloadRequests { rx: None }
    }
}

/// A [`Reloader`] and the requests it sends, for `server::run_with_reload`.
pub fn reload_channel() -> (Reloader, ReloadRequests) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Reloader { tx }, ReloadRequests { rx: Some(rx) })
}

/// Runs for the life of the listener: reloads on SIGHUP and on requests.
/// With plain HTTP there is nothing to reload, but SIGHUP is still caught,
/// so a stray one (whose default action is to end the process) is logged
/// instead of stopping the server.
pub(crate) async fn reload_on_request(tls: Option<std::rc::Rc<Tls>>, mut requests: ReloadRequests) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot watch for SIGHUP (certificate reload): {e}");
            None
        }
    };
    loop {
        let reply = tokio::select! {
            Some(()) = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => None,
            r = async {
                match requests.rx.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => match r {
                Some(reply) => Some(reply),
                None => {
                    // Every `Reloader` is gone; keep serving SIGHUP.
                    requests.rx = None;
                    continue;
                }
            },
            else => return,
        };
        let outcome = match &tls {
            None => {
                tracing::info!("reload requested, but TLS is not configured: nothing to reload");
                Err("TLS is not configured".to_owned())
            }
            Some(tls) => match tls.reload().await {
                Ok(()) => {
                    tracing::info!(
                        "reloaded the TLS certificate from {}",
                        tls.files.cert.display()
                    );
                    Ok(())
                }
                Err(e) => {
                    tracing::warn!("TLS reload failed, still serving the old certificate: {e}");
                    Err(e.0)
                }
            },
        };
        if let Some(reply) = reply {
            let _ = reply.send(outcome);
        }
    }
}

/// hyper's HTTP/2 server spawns a task per stream through an executor.
/// Our handlers hold `Rc<App>` and are not `Send`, so the executor is
/// `spawn_local` on the current `LocalSet` (hyper 1.x has no `Send` bound
/// of its own on `Executor<F>`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn execute(&self, future: F) {
        tokio::task::spawn_local(future);
    }
}

/// A freshly generated certificate for a LAN name, PEM-encoded.
///
/// Not one bare self-signed certificate but a throwaway CA and a server
/// certificate it signed: phones and browsers trust user-installed
/// certificates only as CAs (`CA:TRUE`), while TLS libraries such as rustls
/// refuse a CA certificate as the server's own. The CA's private key is
/// never written anywhere, so the installed CA can vouch for nothing but
/// this one server certificate.
pub struct SelfSigned {
    /// The server certificate followed by the CA: what `tls_cert` serves.
    pub cert_pem: String,
    /// The server certificate's private key: what `tls_key` names.
    pub key_pem: String,
    /// The CA certificate alone, to install on devices as trusted.
    pub ca_pem: String,
    /// SHA-256 of the server certificate (DER), `AB:CD:…`, for checking by
    /// eye when an app asks whether to trust it.
    pub sha256_fingerprint: String,
    /// Expiry as `YYYY-MM-DD` (UTC).
    pub not_after: String,
}

/// How long a generated certificate is valid: 825 days is the longest that
/// Apple platforms accept for a TLS server certificate, even a user-trusted
/// one.
const SELF_SIGNED_DAYS: i64 = 825;

/// Makes a CA and a server certificate (ECDSA P-256) for `name` and any
/// `also` names or IP addresses, all as subject alternative names; `name`
/// is also the common name. See [`SelfSigned`].
pub fn self_signed(name: &str, also: &[&str]) -> Result<SelfSigned, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let mut sans = vec![name.to_owned()];
    sans.extend(also.iter().map(|s| (*s).to_owned()).filter(|s| s != name));
    for n in &sans {
        rustls_pki_types::ServerName::try_from(n.as_str())
            .map_err(|_| TlsError(format!("{n:?} is not a DNS name or an IP address")))?;
    }
    let today = days_since_epoch();
    // A day of slack for boards whose clock is a little behind.
    let (y, m, d) = civil_from_days(today - 1);
    let not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = civil_from_days(today + SELF_SIGNED_DAYS);
    let not_after = rcgen::date_time_ymd(y, m, d);
    let not_after_text = format!("{y:04}-{m:02}-{d:02}");
    let failed = |what: &str, e: rcgen::Error| TlsError(format!("cannot {what}: {e}"));

    let mut ca = CertificateParams::default();
    ca.distinguished_name.push(DnType::CommonName, format!("Hearth CA for {name}"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = not_before;
    ca.not_after = not_after;
    ca.serial_number = Some(random_serial()?);
    let ca_key = KeyPair::generate().map_err(|e| failed("make a key", e))?;
    let ca_cert = ca.self_signed(&ca_key).map_err(|e| failed("sign the CA", e))?;
    let issuer = Issuer::new(ca, ca_key);

    let mut params = CertificateParams::new(sans)
        .map_err(|e| TlsError(format!("{name:?}: not usable in a certificate: {e}")))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial()?);
    let key = KeyPair::generate().map_err(|e| failed("make a key", e))?;
    let cert = params.signed_by(&key, &issuer).map_err(|e| failed("sign the certificate", e))?;

    let digest = <sha2::Sha256 as sha2::Digest>::digest(cert.der().as_ref());
    let sha256_fingerprint =
        digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
    Ok(SelfSigned {
        cert_pem: format!("{}{}", cert.pem(), ca_cert.pem()),
        key_pem: key.serialize_pem(),
        ca_pem: ca_cert.pem(),
        sha256_fingerprint,
        not_after: not_after_text,
    })
}

/// A random serial: browsers reject two different certificates with the
/// same issuer and serial, which regenerating for one name would make.
fn random_serial() -> Result<rcgen::SerialNumber, TlsError> {
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| TlsError(format!("no randomness: {e}")))?;
    serial[0] &= 0x7f;
    Ok(rcgen::SerialNumber::from_slice(&serial))
}

fn days_since_epoch() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    i64::try_from(secs / 86_400).unwrap_or(0)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m as u8, d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_come_out_right() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    }

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn a_generated_pair_loads_and_advertises_h2() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = self_signed("mybox.local", &["localhost", "192.168.1.23"]).expect("generate");
        assert_eq!(s.sha256_fingerprint.len(), 32 * 3 - 1);
        let files = TlsFiles {
            cert: write(dir.path(), "c.pem", &s.cert_pem),
            key: write(dir.path(), "k.pem", &s.key_pem),
        };
        let config = load_server_config(&files).expect("loads");
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    }

    #[test]
    fn bad_files_are_reported_by_config_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = self_signed("a.local", &[]).expect("generate");
        let b = self_signed("b.local", &[]).expect("generate");
        let cert = write(dir.path(), "a.crt", &a.cert_pem);
        let key = write(dir.path(), "a.key", &a.key_pem);
        let other_key = write(dir.path(), "b.key", &b.key_pem);
        let garbage = write(dir.path(), "junk", "not pem at all\n");
        let missing = dir.path().join("missing");
        let err = |cert: &Path, key: &Path| {
            load_server_config(&TlsFiles { cert: cert.into(), key: key.into() })
                .expect_err("must fail")
                .0
        };
        assert!(err(&missing, &key).starts_with("tls_cert: cannot read"));
        assert!(err(&garbage, &key).starts_with("tls_cert:"));
        assert!(err(&key, &key).starts_with("tls_cert:"), "a key is not a certificate");
        assert!(err(&cert, &missing).starts_with("tls_key: cannot read"));
        assert!(err(&cert, &garbage).starts_with("tls_key:"));
        let mismatch = err(&cert, &other_key);
        assert!(mismatch.starts_with("tls_key:") && mismatch.contains("not the key"), "{mismatch}");
    }

    #[test]
    fn names_that_are_neither_dns_nor_ip_are_refused() {
        assert!(self_signed("bad name", &[]).is_err());
    }
}
