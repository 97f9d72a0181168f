//! TLS for the server: a certificate chain and private key read from PEM files, offered with
//! ALPN `h2` and `http/1.1`, and reloaded when the files change.
//!
//! The rustls config holds a certificate resolver rather than a fixed certificate, so a
//! reload swaps one `Arc` inside the resolver: handshakes after the swap get the new
//! certificate, connections already established keep theirs, and nothing is restarted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use parking_lot::RwLock;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Where the certificate and key are, and how often to look for changes.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM: the server certificate first, then any intermediates.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// How often the files' modification times are checked.
    pub reload_interval: Duration,
}

/// The one crypto provider of the process: ring, for the server, the webhook client and
/// tokens alike.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring the process-wide rustls provider, which HTTP clients built without one (the
/// webhook worker's) need. Calling it again is harmless.
pub fn install_crypto_provider() {
    // Fails only when a provider is installed already, which is the state wanted.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The certificates of a PEM file, as DER.
pub fn read_pem_certificates(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("could not read {}", path.display()))?
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no certificate", path.display());
    }
    Ok(certs)
}

/// Reads the certificate chain and key, checking that they belong together.
fn read_certified_key(settings: &TlsSettings) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(&settings.cert)
        .with_context(|| format!("could not read {}", settings.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", settings.cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{} holds no certificate", settings.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&settings.key).with_context(|| {
        format!(
            "could not read a PEM private key from {}",
            settings.key.display()
        )
    })?;
    CertifiedKey::from_der(chain, key, &crypto_provider()).with_context(|| {
        format!(
            "the key in {} does not fit the certificate in {}",
            settings.key.display(),
            settings.cert.display()
        )
    })
}

/// Hands every handshake the current certificate.
#[derive(Debug)]
struct CurrentCertificate(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0.read()))
    }
}

/// A loaded certificate and the rustls config serving it.
#[derive(Debug, Clone)]
pub struct Tls {
    settings: TlsSettings,
    current: Arc<CurrentCertificate>,
    config: Arc<ServerConfig>,
}

impl Tls {
    /// Loads the files; an error here stops the server from starting.
    pub fn load(settings: TlsSettings) -> anyhow::Result<Self> {
        let certified = read_certified_key(&settings)?;
        let current = Arc::new(CurrentCertificate(RwLock::new(Arc::new(certified))));
        let mut config = ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .context("the TLS provider supports no protocol version")?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            settings,
            current,
            config: Arc::new(config),
        })
    }

    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }

    /// Runs until aborted: whenever either file's modification time or length changes, loads
    /// both again and, if they are good, serves them to new connections. Bad files leave the
    /// previous certificate in place and are reported until they change again.
    pub async fn watch(self) {
        let mut seen = stamps(&self.settings);
        let mut interval = tokio::time::interval(self.settings.reload_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let now = stamps(&self.settings);
            if now == seen {
                continue;
            }
            seen = now;
            match read_certified_key(&self.settings) {
                Ok(certified) => {
                    *self.current.0.write() = Arc::new(certified);
                    tracing::info!(cert = %self.settings.cert.display(), "TLS certificate reloaded");
                }
                Err(e) => tracing::error!(
                    error = format!("{e:#}"),
                    "could not reload the TLS certificate; still serving the previous one"
                ),
            }
        }
    }
}

/// What tells a changed file: modification time and length (a missing file has neither).
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn stamps(settings: &TlsSettings) -> (Stamp, Stamp) {
    (stamp(&settings.cert), stamp(&settings.key))
}
