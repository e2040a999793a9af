//! TLS under the WebSocket, with rustls on the `ring` provider (feature
//! `tls`, on by default).
//!
//! - Clients: [`connect_with`](crate::connect_with) opens `wss://` URLs with
//!   [`ConnectOptions::tls`](crate::ConnectOptions::tls), or with
//!   [`default_client_config`] (the Mozilla roots of `webpki-roots`) when none
//!   is given. [`client_config_from_ca_file`] trusts one private CA instead.
//! - Servers: [`server_config_from_pem_files`] reads a certificate chain and
//!   its key; [`accept`] runs the TLS handshake, then [`crate::accept_stream`].
//!
//! Every config built here offers ALPN `http/1.1`, the only protocol a
//! WebSocket handshake can run over (RFC 6455 §4.1; HTTP/2 would need
//! RFC 8441's extended CONNECT).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::Config;
use crate::error::Error;
use crate::server::{accept_stream, Accepted, Handler};

/// The rustls version whose types this crate's signatures use.
pub use rustls;

/// The one application protocol a WebSocket handshake runs over.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The crypto provider of every config built here: `ring`, named rather than
/// taken from the process default, so that another crate enabling aws-lc-rs
/// changes nothing.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client config trusting `roots`, offering ALPN `http/1.1`.
pub fn client_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, Error> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(Error::tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

/// The client config used when [`crate::ConnectOptions`] names none: the
/// Mozilla root program as compiled into `webpki-roots`. Compiled in rather
/// than read from the system so that a client behaves the same in a bare
/// container as on a desktop; a private CA is given with
/// [`client_config_from_ca_file`]. Built once per process.
pub fn default_client_config() -> Arc<ClientConfig> {
    static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            client_config(roots).expect("ring supports the default protocol versions")
        })
        .clone()
}

/// A client config trusting only the CA certificates in a PEM file.
pub fn client_config_from_ca_file(path: impl AsRef<Path>) -> Result<Arc<ClientConfig>, Error> {
    let path = path.as_ref();
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots
            .add(cert)
            .map_err(|error| Error::tls(format!("{}: {error}", path.display())))?;
    }
    client_config(roots)
}

/// A server config presenting the certificate chain in `cert` (PEM, leaf
/// first) with the private key in `key` (PEM: PKCS#8, PKCS#1 or SEC1),
/// offering ALPN `http/1.1`. Fails when the key does not match the leaf.
pub fn server_config_from_pem_files(
    cert: impl AsRef<Path>,
    key: impl AsRef<Path>,
) -> Result<Arc<ServerConfig>, Error> {
    let (cert, key) = (cert.as_ref(), key.as_ref());
    let chain = read_certs(cert)?;
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|error| {
        let why = match error {
            rustls::pki_types::pem::Error::NoItemsFound => "no PEM private key found".into(),
            other => other.to_string(),
        };
        Error::tls(format!("{}: {why}", key.display()))
    })?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(Error::tls)?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|error| {
            let (key, cert) = (key.display(), cert.display());
            Error::tls(format!("{key} with {cert}: {error}"))
        })?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

/// Every certificate in a PEM file; an error when there is none.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| Error::tls(format!("{}: {error}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::tls(format!(
            "{}: no PEM certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

/// Serves one TCP connection over TLS: the TLS handshake, then
/// [`accept_stream`]. Each of the two handshakes has `handshake_timeout`, so
/// a peer that connects and never sends a ClientHello holds its task no
/// longer than that.
pub async fn accept<H: Handler + ?Sized>(
    stream: TcpStream,
    tls: Arc<ServerConfig>,
    config: &Config,
    handler: &H,
) -> Result<Option<Accepted<H::Admission>>, Error> {
    let _ = stream.set_nodelay(true);
    // Boxed: the TLS state moves into the stream once the handshake is
    // done and should not size the caller's task for the connection's life.
    let handshake = Box::pin(TlsAcceptor::from(tls).accept(stream));
    let stream = match tokio::time::timeout(config.handshake_timeout, handshake).await {
        Ok(result) => result.map_err(Error::from_tls_io)?,
        Err(_) => return Err(Error::timeout("TLS handshake")),
    };
    accept_stream(stream, config, handler).await
}

/// The client side of the TLS handshake for `host`: a DNS name is sent as
/// SNI and must be in the certificate; an IP address is not sent (RFC 6066
/// §3) and must be among the certificate's IP entries.
pub(crate) async fn connect<S>(
    stream: S,
    host: &str,
    tls: Arc<ClientConfig>,
) -> Result<TlsStream<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = ServerName::try_from(host.to_owned())
        .map_err(|error| Error::tls(format!("server name {host:?}: {error}")))?;
    TlsConnector::from(tls)
        .connect(name, stream)
        .await
        .map_err(Error::from_tls_io)
}
