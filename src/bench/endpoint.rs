//! [`Endpoint`]: connections to the server under test, each from the next
//! source address, and the generator's client settings.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::BytesMut;
use switchboard_net::{Config, WebSocket};
use switchboard_proto::handshake::{ClientHandshake, ClientOptions, Target};
use switchboard_proto::{HandshakeError, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::flags::TargetArgs;

/// A resolved server address, the handshake target and the source
/// addresses to connect from, used in turn.
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<EndpointInner>,
}

struct EndpointInner {
    target: Target,
    addr: SocketAddr,
    sources: Vec<IpAddr>,
    next_source: AtomicUsize,
    config: Config,
}

impl Endpoint {
    /// Resolves `target.url` once; `config` applies to every connection.
    pub async fn resolve(target: &TargetArgs, config: Config) -> anyhow::Result<Endpoint> {
        let parsed = Target::parse(&target.url)?;
        anyhow::ensure!(!parsed.secure, "wss:// is not supported; use ws://");
        let addr = tokio::net::lookup_host((parsed.host.as_str(), parsed.port))
            .await
            .with_context(|| format!("cannot resolve {}", parsed.host))?
            .find(SocketAddr::is_ipv4)
            .with_context(|| format!("no IPv4 address for {}", parsed.host))?;
        anyhow::ensure!(!target.sources.is_empty(), "--sources is empty");
        Ok(Endpoint {
            inner: Arc::new(EndpointInner {
                target: parsed,
                addr,
                sources: target.sources.clone(),
                next_source: AtomicUsize::new(0),
                config,
            }),
        })
    }

    /// Opens a connection from the next source address: TCP connect and the
    /// opening handshake, within the configured `handshake_timeout`.
    pub async fn connect(&self) -> anyhow::Result<WebSocket> {
        let (stream, rest) = self.connect_raw().await?;
        Ok(WebSocket::from_tcp(
            stream,
            Role::Client,
            &self.inner.config,
            rest,
        ))
    }

    /// Connects and completes the handshake; the stream and the bytes read
    /// past the response, for a client that reads frames itself.
    pub async fn connect_raw(&self) -> anyhow::Result<(TcpStream, BytesMut)> {
        let inner = &self.inner;
        let index = inner.next_source.fetch_add(1, Ordering::Relaxed);
        let source = inner.sources[index % inner.sources.len()];
        tokio::time::timeout(HANDSHAKE_TIMEOUT, connect_from(source, inner))
            .await
            .map_err(|_| anyhow::anyhow!("connect and handshake took over {HANDSHAKE_TIMEOUT:?}"))?
    }
}

/// How long one connect and opening handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The client handshake over a socket bound to `source` (the transport's
/// `connect` has no bind option).
async fn connect_from(
    source: IpAddr,
    endpoint: &EndpointInner,
) -> anyhow::Result<(TcpStream, BytesMut)> {
    let socket = TcpSocket::new_v4()?;
    defer_port_choice(&socket);
    socket.bind(SocketAddr::new(source, 0))?;
    let mut stream = socket.connect(endpoint.addr).await?;
    stream.set_nodelay(true)?;
    let (handshake, request) = ClientHandshake::new(&endpoint.target, ClientOptions::default());
    stream.write_all(&request).await?;
    let mut buf = BytesMut::with_capacity(512);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(HandshakeError::new(0, "server closed during the handshake").into());
        }
        if let Some((_response, len)) = handshake.parse_response(&buf)? {
            return Ok((stream, buf.split_off(len)));
        }
    }
}

/// Lets the kernel pick the source port at connect time, per destination,
/// instead of at bind time (Linux's IP_BIND_ADDRESS_NO_PORT): a bound
/// source address then serves more than one range of ports' worth of
/// connections over a run.
fn defer_port_choice(socket: &TcpSocket) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd as _;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket and a pointer to an int of the size given.
        // Failure only means the port is chosen at bind time.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}

/// Client settings for the generator: reads sized to the messages, and no
/// keepalive (the generator never stays silent long enough).
pub fn client_config(message_size: usize) -> Config {
    let mut config = Config::default();
    let read = (message_size + 64).clamp(16 * 1024, 1 << 20);
    config
        .read_buffer_size(read)
        .max_pending_send_bytes((4 << 20).max(message_size * 4))
        .close_timeout(Duration::from_secs(3));
    config
}
