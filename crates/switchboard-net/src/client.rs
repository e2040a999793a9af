//! Opening connections: `connect("ws://host:port/path")`, or `wss://` over
//! TLS (feature `tls`; see [`crate::tls`]).

#[cfg(feature = "tls")]
use std::sync::Arc;

use bytes::BytesMut;
use switchboard_proto::deflate::{DeflateConfig, Negotiated};
use switchboard_proto::handshake::{ClientHandshake, ClientOptions, Response, Target};
use switchboard_proto::{HandshakeError, Role};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::Config;
use crate::error::Error;
use crate::socket::WebSocket;

/// What a client sends besides the bare handshake.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Transport and protocol settings.
    pub config: Config,
    /// Subprotocols to offer, in order of preference.
    pub protocols: Vec<String>,
    /// Extra request headers (`Origin`, `Authorization`, …).
    pub headers: Vec<(String, String)>,
    /// Whom to trust for `wss://`: `None` (the default) trusts the roots of
    /// [`crate::tls::default_client_config`].
    #[cfg(feature = "tls")]
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl ConnectOptions {
    /// Adds a subprotocol to offer.
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocols.push(protocol.into());
        self
    }

    /// Adds a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The TLS settings of `wss://` connections: whom to trust, client
    /// certificates, ALPN. Default: the Mozilla roots
    /// ([`crate::tls::default_client_config`]); for a private CA see
    /// [`crate::tls::client_config_from_ca_file`].
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }
}

/// Connects to a `ws://` or `wss://` URL with default options.
pub async fn connect(url: &str) -> Result<(WebSocket, Response), Error> {
    connect_with(url, ConnectOptions::default()).await
}

/// Connects to a `ws://` or `wss://` URL: TCP connect, TLS handshake for
/// `wss://` (SNI and certificate check for the URL's host), opening
/// handshake, all within `handshake_timeout`.
pub async fn connect_with(
    url: &str,
    options: ConnectOptions,
) -> Result<(WebSocket, Response), Error> {
    options.config.validate()?;
    let target = Target::parse(url)?;
    #[cfg(not(feature = "tls"))]
    if target.secure {
        return Err(HandshakeError::new(
            0,
            "wss:// needs switchboard-net's `tls` feature; use ws://",
        )
        .into());
    }
    let timeout = options.config.handshake_timeout;
    // Boxed: the handshake's state would otherwise size the caller's task for good.
    match tokio::time::timeout(timeout, Box::pin(open(&target, options))).await {
        Ok(result) => result,
        Err(_) => Err(Error::timeout("connect and opening handshake")),
    }
}

async fn open(target: &Target, options: ConnectOptions) -> Result<(WebSocket, Response), Error> {
    let mut stream = TcpStream::connect((target.host.as_str(), target.port)).await?;
    let _ = stream.set_nodelay(true);
    #[cfg(feature = "tls")]
    if target.secure {
        let tls = options
            .tls
            .clone()
            .unwrap_or_else(crate::tls::default_client_config);
        let mut stream = crate::tls::connect(stream, &target.host, tls).await?;
        let (response, rest, deflate) = handshake(&mut stream, target, &options).await?;
        let socket = WebSocket::from_stream(stream, Role::Client, &options.config, rest);
        return Ok(finish(socket, response, deflate));
    }
    let (response, rest, deflate) = handshake(&mut stream, target, &options).await?;
    let socket = WebSocket::from_tcp(stream, Role::Client, &options.config, rest);
    Ok(finish(socket, response, deflate))
}

/// The compression a server agreed to, with the local settings for it.
type Agreed<'a> = Option<(Negotiated, &'a DeflateConfig)>;

/// The opening handshake over an open stream: the response, the bytes read
/// past it (they belong to the WebSocket), and the agreed compression.
async fn handshake<'a, S>(
    stream: &mut S,
    target: &Target,
    options: &'a ConnectOptions,
) -> Result<(Response, BytesMut, Agreed<'a>), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut handshake_options = ClientOptions::default();
    handshake_options.protocols = options.protocols.clone();
    handshake_options.headers = options.headers.clone();
    handshake_options.limits = options.config.limits;
    handshake_options.extensions = options.config.deflate.as_ref().map(|d| d.client_offer());
    let (handshake, request) = ClientHandshake::new(target, handshake_options);
    stream.write_all(&request).await?;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(HandshakeError::new(
                0,
                "server closed the connection during the handshake",
            )
            .into());
        }
        if let Some((response, len)) = handshake.parse_response(&buf)? {
            let rest = buf.split_off(len);
            let deflate = match &options.config.deflate {
                Some(deflate) => deflate
                    .accept_response(&response.extensions)
                    .map_err(|why| HandshakeError::new(0, format!("permessage-deflate: {why}")))?
                    .map(|negotiated| (negotiated, deflate)),
                None => None,
            };
            return Ok((response, rest, deflate));
        }
    }
}

/// Turns on the compression that was agreed.
fn finish(socket: WebSocket, response: Response, deflate: Agreed<'_>) -> (WebSocket, Response) {
    if let Some((negotiated, deflate)) = deflate {
        socket.enable_deflate(&negotiated, deflate);
    }
    (socket, response)
}
