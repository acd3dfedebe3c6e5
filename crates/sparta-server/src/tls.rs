//! Native TLS: the acceptor the accept loop ([`crate::serve`]) runs each
//! handshake through in the connection's own task (one slow client cannot
//! stall the loop), with a certificate that is reloaded when its files change on disk (certbot and
//! cert-manager renew by rewriting them). HTTP/2 is offered over ALPN.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

/// How long a client may take to complete its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the certificate files are looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The certificate chain and key files (PEM).
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// A file's modification time and size, when it exists.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl CertFiles {
    /// Reads and checks the pair: the key must belong to the first certificate.
    pub fn load(&self) -> io::Result<CertifiedKey> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| invalid(format!("{}: {e}", self.cert.display())))?
            .collect::<Result<_, _>>()
            .map_err(|e| invalid(format!("{}: {e}", self.cert.display())))?;
        if certs.is_empty() {
            return Err(invalid(format!(
                "{}: no PEM certificate found",
                self.cert.display()
            )));
        }
        // The error names the file only: a key's bytes never reach a log.
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|_| {
            invalid(format!(
                "{}: no readable PEM private key",
                self.key.display()
            ))
        })?;
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let certified = CertifiedKey::from_der(certs, key, &provider)
            .map_err(|e| invalid(format!("certificate and key do not match: {e}")))?;
        Ok(certified)
    }

    fn stamps(&self) -> (Stamp, Stamp) {
        (stamp(&self.cert), stamp(&self.key))
    }
}

/// Serves the current certificate; a watcher swaps it when the files change.
#[derive(Debug)]
pub struct ReloadingCert {
    files: CertFiles,
    current: RwLock<Arc<CertifiedKey>>,
    seen: RwLock<(Stamp, Stamp)>,
}

impl ReloadingCert {
    /// Loads the files once; fails when they are unusable.
    pub fn open(files: CertFiles) -> io::Result<Arc<Self>> {
        let seen = files.stamps();
        let key = files.load()?;
        Ok(Arc::new(ReloadingCert {
            files,
            current: RwLock::new(Arc::new(key)),
            seen: RwLock::new(seen),
        }))
    }

    /// Reloads when either file changed; keeps the old pair when the new one
    /// is unusable (half-written during a renewal, say), and tries again on
    /// the next change. True when a new certificate is in force.
    pub fn reload_if_changed(&self) -> bool {
        let now = self.files.stamps();
        if *self.seen.read().unwrap_or_else(|e| e.into_inner()) == now {
            return false;
        }
        match self.files.load() {
            Ok(key) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
                *self.seen.write().unwrap_or_else(|e| e.into_inner()) = now;
                info!(cert = %self.files.cert.display(), "tls certificate reloaded");
                true
            }
            Err(e) => {
                // Not marked seen: a renewal that finishes writing changes
                // the stamp again, and the next look picks it up.
                warn!(error = %e, "tls certificate not reloaded; the previous one stays in force");
                false
            }
        }
    }

    /// Watches the files until the returned handle is dropped.
    pub fn watch(self: &Arc<Self>) -> AbortOnDrop {
        let this = self.clone();
        AbortOnDrop(tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECK_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let this = this.clone();
                let _ = tokio::task::spawn_blocking(move || this.reload_if_changed()).await;
            }
        }))
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// The rustls server settings: TLS 1.2 and 1.3, ALPN h2 then http/1.1.
pub fn server_config(cert: Arc<ReloadingCert>) -> io::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The acceptor for [`crate::serve::Listener`].
pub fn acceptor(cert: Arc<ReloadingCert>) -> io::Result<TlsAcceptor> {
    Ok(TlsAcceptor::from(server_config(cert)?))
}

/// Aborts a task when dropped.
#[derive(Debug)]
pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
