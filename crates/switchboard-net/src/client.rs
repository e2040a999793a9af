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
        let parsed = match handshake.parse_response(&buf) {
            Err(refused) if refused.status() != 0 => {
                return Err(with_explanation(stream, buf, refused).await.into())
            }
            parsed => parsed?,
        };
        if let Some((response, len)) = parsed {
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

/// The most of a refusal's body that is kept as its explanation.
const MAX_EXPLANATION: usize = 1024;

/// How long a refusal's body is waited for: the status alone is an answer.
const EXPLANATION_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Adds the body of a refusal (a server's "token expired", "say who you
/// are") to its status line, as far as it is short plain text (not an
/// HTML page) that arrives soon.
async fn with_explanation<S>(
    stream: &mut S,
    mut buf: BytesMut,
    refused: HandshakeError,
) -> HandshakeError
where
    S: AsyncRead + Unpin,
{
    let Some(head_end) = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
    else {
        return refused;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let announced = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    let wanted = head_end + announced.unwrap_or(MAX_EXPLANATION).min(MAX_EXPLANATION);
    let read = async {
        while buf.len() < wanted {
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(EXPLANATION_WAIT, read).await;
    let end = buf.len().min(wanted);
    let body = String::from_utf8_lossy(&buf[head_end..end]);
    let body = body.trim();
    if body.is_empty() || body.contains('<') {
        return refused;
    }
    HandshakeError::new(refused.status(), format!("{}: {body}", refused.reason()))
}

/// Turns on the compression that was agreed.
fn finish(socket: WebSocket, response: Response, deflate: Agreed<'_>) -> (WebSocket, Response) {
    if let Some((negotiated, deflate)) = deflate {
        socket.enable_deflate(&negotiated, deflate);
    }
    (socket, response)
}
