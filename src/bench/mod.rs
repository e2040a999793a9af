//! `switchboard bench`: a load generator for any WebSocket server.
//!
//! - `echo`: round trips on pipelined connections (messages/s, MB/s, latency);
//! - `fanout`: one publisher, many subscribers (deliveries/s, latency);
//! - `idle`: many idle connections held open (for the server's memory);
//! - `handshake`: connections opened and closed per second.
//!
//! Each scenario prints one JSON line on stdout, with the CPU time the
//! generator itself used (`client_cpu_util`, where 1.0 is one core busy):
//! near 1.0 the generator, not the server, set the pace.
//!
//! - `stats`: histograms, CPU time, the JSON line;
//! - this module: the command line, the runtime, and [`Endpoint::connect`],
//!   which opens a client connection from a chosen source address.

mod echo;
mod fanout;
mod handshake;
mod idle;
mod stats;

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::BytesMut;
use clap::{Args, Subcommand};
use switchboard_net::{Config, WebSocket};
use switchboard_proto::handshake::{ClientHandshake, ClientOptions, Target};
use switchboard_proto::{HandshakeError, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// Flags of `switchboard bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    scenario: Scenario,
    /// Threads of the generator's runtime (1 = a single-threaded runtime,
    /// the cheapest per message; pin it with taskset).
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    /// The server's process id, on this machine: its CPU time over the
    /// measured window is reported too (`server_cpu_util`).
    #[arg(long, global = true)]
    server_pid: Option<u32>,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Round trips: C connections, each keeping K messages in flight.
    Echo(echo::EchoArgs),
    /// One publisher, N subscribers: deliveries per second and latency.
    Fanout(fanout::FanoutArgs),
    /// Open N connections, hold them idle, close them.
    Idle(idle::IdleArgs),
    /// Open and close connections as fast as possible.
    Handshake(handshake::HandshakeArgs),
}

/// Where connections go and where they come from.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// The server, e.g. ws://127.0.0.1:9080/echo.
    #[arg(long)]
    url: String,
    /// Source addresses to spread connections over (comma-separated, e.g.
    /// 127.0.0.1,127.0.0.2); each gives its own range of ports.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1")]
    sources: Vec<IpAddr>,
}

/// Runs a scenario on its own runtime and prints its JSON line.
pub fn main(args: BenchArgs) -> ExitCode {
    let limit = stats::raise_nofile();
    if let Some(pid) = args.server_pid {
        stats::watch_server(pid);
    }
    let mut builder = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(args.threads);
        builder
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("switchboard bench: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match args.scenario {
            Scenario::Echo(args) => echo::run(args).await,
            Scenario::Fanout(args) => fanout::run(args).await,
            Scenario::Idle(args) => idle::run(args, limit).await,
            Scenario::Handshake(args) => handshake::run(args).await,
        }
    });
    // Connections still closing must not hold the process.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(line) => {
            // A scenario that printed its line itself returns null.
            if !line.is_null() {
                stats::emit(&with_total_cpu(line));
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("switchboard bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Adds the CPU time the whole process used so far (connecting and
/// closing included), for a script that checks what else ran meanwhile.
pub fn with_total_cpu(line: serde_json::Value) -> serde_json::Value {
    let total = stats::round3(stats::cpu_time().as_secs_f64());
    stats::merge(line, serde_json::json!({ "client_cpu_total_s": total }))
}

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
async fn connect_from(source: IpAddr, endpoint: &EndpointInner) -> anyhow::Result<WebSocket> {
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
            let rest = buf.split_off(len);
            return Ok(WebSocket::from_tcp(
                stream,
                Role::Client,
                &endpoint.config,
                rest,
            ));
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

/// Parses a duration in seconds from the command line.
pub fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text.parse().map_err(|_| format!("not a number: {text}"))?;
    if !(0.0..=3600.0).contains(&value) {
        return Err(format!("{value} s is out of range (0 to 3600)"));
    }
    Ok(Duration::from_secs_f64(value))
}
