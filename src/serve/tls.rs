//! [`Tls`]: the server's certificate and key, read at start and again on
//! SIGHUP.
//!
//! A reload replaces the config that *new* handshakes use; a connection
//! already established keeps the session it negotiated, so nobody is
//! dropped. A file that cannot be used (missing, half-written, a key that
//! does not match) is reported and the previous certificate stays: a reload
//! never leaves the server without one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use switchboard_net::tls::rustls::ServerConfig;

/// The certificate files and the config built from them.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// Reads the certificate chain and key; an error if they are unusable.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Tls> {
        let config = read(cert, key)?;
        Ok(Tls {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(config),
        })
    }

    /// The config for the next handshake.
    pub fn config(&self) -> Arc<ServerConfig> {
        // Only a whole `Arc` is ever written, so a poisoned lock still
        // holds a valid config.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads both files again; on success new handshakes use them, on
    /// failure nothing changes.
    pub fn reload(&self) -> anyhow::Result<()> {
        let config = read(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = config;
        Ok(())
    }

    /// Reloads on every SIGHUP, for the life of the process. Installed
    /// before the server says it is listening: SIGHUP's default action
    /// would end the process.
    #[cfg(unix)]
    pub fn reload_on_sighup(self: &Arc<Self>) -> anyhow::Result<()> {
        use anyhow::Context as _;
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        let tls = self.clone();
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match tls.reload() {
                    Ok(()) => eprintln!(
                        "switchboard: reloaded the TLS certificate from {}",
                        tls.cert.display()
                    ),
                    Err(error) => eprintln!(
                        "switchboard: TLS reload failed, keeping the previous certificate: {error}"
                    ),
                }
            }
        });
        Ok(())
    }

    /// No SIGHUP off Unix: the certificate is read once.
    #[cfg(not(unix))]
    pub fn reload_on_sighup(self: &Arc<Self>) -> anyhow::Result<()> {
        Ok(())
    }
}

fn read(cert: &Path, key: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    // One line: the net error already names the file and the cause.
    switchboard_net::tls::server_config_from_pem_files(cert, key)
        .map_err(|error| anyhow::anyhow!("cannot use the TLS certificate: {error}"))
}
