//! Opening connections: `connect("ws://host:port/path")`.

use bytes::BytesMut;
use switchboard_proto::handshake::{ClientHandshake, ClientOptions, Response, Target};
use switchboard_proto::{HandshakeError, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
}

/// Connects to a `ws://` URL with default options.
pub async fn connect(url: &str) -> Result<(WebSocket, Response), Error> {
    connect_with(url, ConnectOptions::default()).await
}

/// Connects to a `ws://` URL: TCP connect, opening handshake, all within
/// `handshake_timeout`.
pub async fn connect_with(
    url: &str,
    options: ConnectOptions,
) -> Result<(WebSocket, Response), Error> {
    options.config.validate()?;
    let target = Target::parse(url)?;
    if target.secure {
        return Err(
            HandshakeError::new(0, "wss:// is not supported by this client; use ws://").into(),
        );
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
    let mut handshake_options = ClientOptions::default();
    handshake_options.protocols = options.protocols;
    handshake_options.headers = options.headers;
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
            let socket = WebSocket::from_tcp(stream, Role::Client, &options.config, rest);
            if let Some((negotiated, deflate)) = deflate {
                socket.enable_deflate(&negotiated, deflate);
            }
            return Ok((socket, response));
        }
    }
}
