//! `serve` settings: defaults, then a TOML file, then the environment and
//! flags (each flag has a `SWITCHBOARD_*` variable).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;

use crate::bridge::{BridgeSettings, Kind};
use crate::endpoints::EndpointSpec;
use switchboard_hub::HistoryRule;

/// Flags of `switchboard serve`; every one overrides the config file.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (flags win over it).
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, env = "SWITCHBOARD_HOST")]
    pub host: Option<String>,
    /// Port to listen on [default: 9080].
    #[arg(long, env = "SWITCHBOARD_PORT")]
    pub port: Option<u16>,
    /// Most hub (/ws) connections at once; further upgrades get 503 [default: 10000].
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most /echo connections at once, counted apart from the hub's [default: 1000].
    #[arg(long, env = "SWITCHBOARD_MAX_ECHO_CONNECTIONS")]
    pub max_echo_connections: Option<usize>,
    /// Most TCP connections still in their handshake at once; more are
    /// refused at once [default: 4096].
    #[arg(long, env = "SWITCHBOARD_MAX_HANDSHAKES")]
    pub max_handshakes: Option<usize>,
    /// Most handshakes at once from one address (IPv6: one /64); 0 is no limit [default: 256].
    #[arg(long, env = "SWITCHBOARD_MAX_HANDSHAKES_PER_IP")]
    pub max_handshakes_per_ip: Option<usize>,
    /// Most connections (WebSocket or HTTP) at once from one address; 0 is
    /// no limit, right behind a proxy [default: 0].
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// Most different wildcard segments the hub's subscriptions may hold
    /// (each costs every publish one search); more are refused [default: 5000].
    #[arg(long, env = "SWITCHBOARD_MAX_WILDCARD_PATTERNS")]
    pub max_wildcard_patterns: Option<usize>,
    /// Messages a second one hub connection may send (burst: one second's
    /// worth); past it the connection is closed with 1008; 0 is no limit [default: 1000].
    #[arg(long, env = "SWITCHBOARD_MAX_MESSAGE_RATE")]
    pub max_message_rate: Option<u32>,
    /// Bytes a second one hub connection may send; as above [default: 16777216].
    #[arg(long, env = "SWITCHBOARD_MAX_BYTE_RATE")]
    pub max_byte_rate: Option<u64>,
    /// Messages a second all hub connections from one address may send together; 0 is no limit [default: 0].
    #[arg(long, env = "SWITCHBOARD_MAX_MESSAGE_RATE_PER_IP")]
    pub max_message_rate_per_ip: Option<u32>,
    /// Bytes a second all hub connections from one address may send together; 0 is no limit [default: 0].
    #[arg(long, env = "SWITCHBOARD_MAX_BYTE_RATE_PER_IP")]
    pub max_byte_rate_per_ip: Option<u64>,
    /// Bytes all connections together may hold in messages still arriving
    /// and in output queued for slow readers; past it, a large message
    /// closes its connection with 1013 and a slow reader meets the
    /// slow-consumer policy [default: a quarter of the machine's memory].
    #[arg(long, env = "SWITCHBOARD_MEMORY_BUDGET")]
    pub memory_budget: Option<u64>,
    /// Largest message accepted from a client, in bytes; larger closes with 1009 [default: 1048576].
    #[arg(long, env = "SWITCHBOARD_MAX_MESSAGE_SIZE")]
    pub max_message_size: Option<usize>,
    /// Seconds without a data message before a connection is closed; 0 disables [default: 600].
    #[arg(long, env = "SWITCHBOARD_IDLE_TIMEOUT")]
    pub idle_timeout: Option<u64>,
    /// Seconds of silence before the server pings a client; 0 disables [default: 30].
    #[arg(long, env = "SWITCHBOARD_PING_INTERVAL")]
    pub ping_interval: Option<u64>,
    /// Seconds a client has to answer a ping before it is dropped [default: 10].
    #[arg(long, env = "SWITCHBOARD_PONG_TIMEOUT")]
    pub pong_timeout: Option<u64>,
    /// Most messages queued for one client before the slow-consumer policy applies [default: 1024].
    #[arg(long, env = "SWITCHBOARD_QUEUE_LEN")]
    pub queue_len: Option<usize>,
    /// Most bytes queued for one client before the slow-consumer policy applies [default: 4194304].
    #[arg(long, env = "SWITCHBOARD_QUEUE_BYTES")]
    pub queue_bytes: Option<usize>,
    /// Bytes of user lists a second one room's changes may send, over all
    /// its members; more changes are held and sent together [default: 4194304].
    #[arg(long, env = "SWITCHBOARD_USERLIST_RATE")]
    pub userlist_rate: Option<usize>,
    /// Send every connection the list of all users (a `userlist` without
    /// `room`) when anyone connects, leaves or renames [default: false].
    #[arg(long, env = "SWITCHBOARD_GLOBAL_USERLIST", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub global_userlist: Option<bool>,
    /// What to do with a client whose queue is full: close (1008) or drop [default: close].
    #[arg(long, env = "SWITCHBOARD_SLOW_CONSUMER")]
    pub slow_consumer: Option<String>,
    /// Origins allowed to open WebSockets, comma-separated; empty allows any [default: any].
    #[arg(long, env = "SWITCHBOARD_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,
    /// Key required by POST /api/publish (as `Authorization: Bearer KEY`) [default: none].
    #[arg(long, env = "SWITCHBOARD_API_KEY")]
    pub api_key: Option<String>,
    /// Token required to open /ws (`?token=` or `Authorization: Bearer`) [default: none].
    #[arg(long, env = "SWITCHBOARD_WS_TOKEN")]
    pub ws_token: Option<String>,
    /// Token required to open /echo, like --ws-token [default: the --ws-token].
    #[arg(long, env = "SWITCHBOARD_ECHO_TOKEN")]
    pub echo_token: Option<String>,
    /// Key required by GET /metrics (as `Authorization: Bearer KEY`) [default: none].
    #[arg(long, env = "SWITCHBOARD_METRICS_KEY")]
    pub metrics_key: Option<String>,
    /// Secret that /ws tokens are signed with, as JWT HS256 (at least 32
    /// bytes); not with --ws-token or --jwt-public-key [default: none].
    #[arg(long, env = "SWITCHBOARD_JWT_SECRET")]
    pub jwt_secret: Option<String>,
    /// PEM file of the public key that /ws tokens are signed for: RS256 for
    /// an RSA key, ES256 for a P-256 one [default: none].
    #[arg(long, env = "SWITCHBOARD_JWT_PUBLIC_KEY", value_name = "FILE")]
    pub jwt_public_key: Option<PathBuf>,
    /// The `aud` a token must name (then required) [default: none, tokens
    /// with `aud` refused].
    #[arg(long, env = "SWITCHBOARD_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// The `iss` a token must have (then required) [default: any].
    #[arg(long, env = "SWITCHBOARD_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Cookie a browser's token may come in [default: switchboard_token].
    #[arg(long, env = "SWITCHBOARD_JWT_COOKIE")]
    pub jwt_cookie: Option<String>,
    /// Seconds of clock skew allowed on `exp` and `nbf`, at most 3600 [default: 0].
    #[arg(long, env = "SWITCHBOARD_JWT_LEEWAY", value_name = "SECONDS")]
    pub jwt_leeway: Option<u64>,
    /// PEM certificate chain, leaf first; with --tls-key the port speaks only
    /// TLS (https, wss). Both files are read again on SIGHUP [default: none].
    #[arg(long, env = "SWITCHBOARD_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1) [default: none].
    #[arg(long, env = "SWITCHBOARD_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Seconds to wait for clients to leave on SIGINT/SIGTERM [default: 10].
    #[arg(long, env = "SWITCHBOARD_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Option<u64>,
    /// Log filter, e.g. `debug` or `switchboard=debug` [default: warn].
    #[arg(long, env = "SWITCHBOARD_LOG")]
    pub log: Option<String>,
    /// Accept permessage-deflate offers (browsers make them) [default: true].
    #[arg(long, env = "SWITCHBOARD_DEFLATE", value_name = "BOOL")]
    pub deflate: Option<bool>,
    /// zlib level for compressed messages, 0–9 [default: 6].
    #[arg(long, env = "SWITCHBOARD_DEFLATE_LEVEL")]
    pub deflate_level: Option<u32>,
    /// Messages shorter than this many bytes go uncompressed [default: 128].
    #[arg(long, env = "SWITCHBOARD_DEFLATE_THRESHOLD")]
    pub deflate_threshold: Option<usize>,
    /// Most bridge endpoints open at once, configured and opened through
    /// /api/bridges alike [default: 32].
    #[arg(long, env = "SWITCHBOARD_MAX_BRIDGES")]
    pub max_bridges: Option<usize>,
    /// ZeroMQ PUSH endpoint that address messages go to, as
    /// `tcp://HOST:PORT[=PATTERN]`; repeatable [default: none].
    #[arg(
        long,
        env = "SWITCHBOARD_ZMQ_PUSH",
        value_name = "ENDPOINT[=PATTERN]",
        value_delimiter = ','
    )]
    pub zmq_push: Option<Vec<String>>,
    /// ZeroMQ PUB endpoint that address messages go to as `[path, json]`,
    /// `tcp://HOST:PORT[=PATTERN]`; repeatable [default: none].
    #[arg(
        long,
        env = "SWITCHBOARD_ZMQ_PUB",
        value_name = "ENDPOINT[=PATTERN]",
        value_delimiter = ','
    )]
    pub zmq_pub: Option<Vec<String>>,
    /// ZeroMQ PULL endpoint (bound) whose JSON `{path, values}` messages are
    /// published; repeatable [default: none].
    #[arg(
        long,
        env = "SWITCHBOARD_ZMQ_PULL",
        value_name = "ENDPOINT",
        value_delimiter = ','
    )]
    pub zmq_pull: Option<Vec<String>>,
    /// ZeroMQ PUB endpoint to connect a SUB socket to; its JSON
    /// `{path, values}` messages are published; repeatable [default: none].
    #[arg(
        long,
        env = "SWITCHBOARD_ZMQ_SUB",
        value_name = "ENDPOINT",
        value_delimiter = ','
    )]
    pub zmq_sub: Option<Vec<String>>,
    /// UDP address where OSC messages and bundles are received and
    /// published, e.g. 127.0.0.1:57120; repeatable [default: none].
    #[arg(
        long,
        env = "SWITCHBOARD_OSC_LISTEN",
        value_name = "HOST:PORT",
        value_delimiter = ','
    )]
    pub osc_listen: Option<Vec<String>>,
    /// UDP address that address messages are sent to as OSC, as
    /// `HOST:PORT[=PATTERN]`; repeatable [default: none].
    #[arg(
        long,
        env = "SWITCHBOARD_OSC_SEND",
        value_name = "HOST:PORT[=PATTERN]",
        value_delimiter = ','
    )]
    pub osc_send: Option<Vec<String>>,
    /// Redis to cluster through, e.g. redis://127.0.0.1:6379; every node with
    /// the same Redis and prefix acts as one server [default: none, one node].
    #[arg(long, env = "SWITCHBOARD_REDIS", value_name = "URL")]
    pub redis: Option<String>,
    /// Prefix of the cluster's Redis keys and channels [default: switchboard].
    #[arg(long, env = "SWITCHBOARD_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// Seconds after its last heartbeat that a node counts as dead and its
    /// users leave the others' lists [default: 10].
    #[arg(long, env = "SWITCHBOARD_CLUSTER_TTL", value_name = "SECONDS")]
    pub cluster_ttl: Option<f64>,
    /// Seconds between a node's heartbeats and checks of the others [default: 3].
    #[arg(long, env = "SWITCHBOARD_CLUSTER_HEARTBEAT", value_name = "SECONDS")]
    pub cluster_heartbeat: Option<f64>,
    /// How messages for several nodes travel: `nodes` (one PUBLISH to each
    /// node with recipients) or `shared` (one PUBLISH every node reads)
    /// [default: nodes].
    #[arg(long, env = "SWITCHBOARD_CLUSTER_CHANNELS")]
    pub cluster_channels: Option<String>,
    /// Backend asked about every /ws upgrade (an http:// URL); it accepts,
    /// names and places the connection or refuses it (docs/PROXY.md) [default: none].
    #[arg(long, env = "SWITCHBOARD_CONNECT_PROXY", value_name = "URL")]
    pub connect_proxy: Option<String>,
    /// Seconds the connect proxy has to answer, below the 10 s handshake
    /// timeout; past it the upgrade is refused with 503 [default: 3].
    #[arg(
        long,
        env = "SWITCHBOARD_CONNECT_PROXY_TIMEOUT",
        value_name = "SECONDS"
    )]
    pub connect_proxy_timeout: Option<f64>,
    /// Backend that events nothing handles, and connects and disconnects,
    /// are POSTed to (an http:// URL; docs/PROXY.md) [default: none].
    #[arg(long, env = "SWITCHBOARD_EVENT_PROXY", value_name = "URL")]
    pub event_proxy: Option<String>,
    /// Seconds the event proxy has to answer one event; past it the client
    /// gets `proxy_timeout` [default: 5].
    #[arg(long, env = "SWITCHBOARD_EVENT_PROXY_TIMEOUT", value_name = "SECONDS")]
    pub event_proxy_timeout: Option<f64>,
    /// Events that go to the event proxy even when addressed to a room, a
    /// connection or everyone, comma-separated [default: none].
    #[arg(long, env = "SWITCHBOARD_EVENT_PROXY_EVENTS", value_delimiter = ',')]
    pub event_proxy_events: Option<Vec<String>>,
    /// Events of one connection waiting for the event proxy; past it an
    /// event is refused with `proxy_busy` [default: 64].
    #[arg(long, env = "SWITCHBOARD_EVENT_PROXY_MAX_QUEUED")]
    pub event_proxy_max_queued: Option<usize>,
    /// Requests at the event proxy at once, over all connections [default: 256].
    #[arg(long, env = "SWITCHBOARD_PROXY_MAX_IN_FLIGHT")]
    pub proxy_max_in_flight: Option<usize>,
    /// A WebSocket endpoint more, as `PATH=KIND[,protocol=NAME…]` with
    /// KIND `hub`, `is2`, `echo` or `rooms` (docs/SEEDS.md), e.g.
    /// `/=is2`; repeatable (`;` between them in the variable); replaces
    /// the file's `[[endpoint]]` tables [default: /ws=hub and /echo=echo only].
    #[arg(
        long,
        env = "SWITCHBOARD_ENDPOINT",
        value_name = "PATH=KIND[,protocol=NAME…]",
        value_delimiter = ';'
    )]
    pub endpoint: Option<Vec<String>>,
    /// Rooms that keep history, as `ROOMS[,size=N][,ttl=SECONDS]` where
    /// `*` in ROOMS stands for any run of characters (`chat-*`); repeatable
    /// (`;` between them in the variable); replaces the file's
    /// `[[history]]` tables [default: none; size 1000, ttl 300 for each].
    #[arg(
        long,
        env = "SWITCHBOARD_HISTORY",
        value_name = "ROOMS[,size=N][,ttl=SECONDS]",
        value_delimiter = ';'
    )]
    pub history: Option<Vec<String>>,
    /// Bytes of room history one node keeps in memory, over all rooms,
    /// without a cluster [default: 268435456].
    #[arg(long, env = "SWITCHBOARD_HISTORY_MEMORY")]
    pub history_memory: Option<usize>,
    /// Messages of one room a connection opened with `?acks=1` may leave
    /// unacknowledged before it is closed with 4002 [default: 1000].
    #[arg(long, env = "SWITCHBOARD_HISTORY_UNACKED")]
    pub history_unacked: Option<usize>,
    /// The largest stream a client may send (`stream:start`); past it the
    /// connection is closed with 1009 [default: 67108864].
    #[arg(long, env = "SWITCHBOARD_MAX_STREAM_SIZE")]
    pub max_stream_size: Option<usize>,
    /// Client streams under way at once, over the server; 0 turns them off
    /// [default: 64].
    #[arg(long, env = "SWITCHBOARD_MAX_STREAMS")]
    pub max_streams: Option<usize>,
    /// Where Socket.IO clients connect (Engine.IO v4: WebSocket and
    /// long-polling); an empty path turns Socket.IO off
    /// (docs/SOCKETIO.md) [default: /socket.io/].
    #[arg(long, env = "SWITCHBOARD_SOCKETIO_PATH")]
    pub socketio_path: Option<String>,
    /// Seconds between the server's Engine.IO pings [default: 25].
    #[arg(
        long,
        env = "SWITCHBOARD_SOCKETIO_PING_INTERVAL",
        value_name = "SECONDS"
    )]
    pub socketio_ping_interval: Option<f64>,
    /// Seconds a Socket.IO client has to answer a ping [default: 20].
    #[arg(
        long,
        env = "SWITCHBOARD_SOCKETIO_PING_TIMEOUT",
        value_name = "SECONDS"
    )]
    pub socketio_ping_timeout: Option<f64>,
    /// Bytes of one long-polling request or response body (Engine.IO's
    /// `maxPayload`) [default: 1000000].
    #[arg(long, env = "SWITCHBOARD_SOCKETIO_MAX_PAYLOAD")]
    pub socketio_max_payload: Option<usize>,
    /// The Socket.IO namespaces that exist, comma-separated; others are
    /// refused with CONNECT_ERROR [default: any].
    #[arg(long, env = "SWITCHBOARD_SOCKETIO_NAMESPACES", value_delimiter = ',')]
    pub socketio_namespaces: Option<Vec<String>>,
    /// Namespaces one Socket.IO connection may join [default: 8].
    #[arg(long, env = "SWITCHBOARD_SOCKETIO_MAX_NAMESPACES")]
    pub socketio_max_namespaces: Option<usize>,
    /// Binary attachments in one Socket.IO packet [default: 10].
    #[arg(long, env = "SWITCHBOARD_SOCKETIO_MAX_ATTACHMENTS")]
    pub socketio_max_attachments: Option<usize>,
}

/// The resolved settings of `serve`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServeSettings {
    pub host: String,
    pub port: u16,
    pub max_connections: usize,
    pub max_echo_connections: usize,
    pub max_handshakes: usize,
    pub max_handshakes_per_ip: usize,
    pub max_connections_per_ip: usize,
    pub max_wildcard_patterns: usize,
    pub max_message_rate: u32,
    pub max_byte_rate: u64,
    pub max_message_rate_per_ip: u32,
    pub max_byte_rate_per_ip: u64,
    /// None: a quarter of the machine's memory (see `memory_budget()`).
    pub memory_budget: Option<u64>,
    pub max_message_size: usize,
    pub idle_timeout: u64,
    pub ping_interval: u64,
    pub pong_timeout: u64,
    pub queue_len: usize,
    pub queue_bytes: usize,
    pub userlist_rate: usize,
    pub global_userlist: bool,
    pub slow_consumer: String,
    pub allowed_origins: Vec<String>,
    pub api_key: Option<String>,
    pub ws_token: Option<String>,
    pub echo_token: Option<String>,
    pub metrics_key: Option<String>,
    /// HS256 secret of /ws tokens.
    pub jwt_secret: Option<String>,
    /// PEM public key of /ws tokens (RS256 or ES256).
    pub jwt_public_key: Option<PathBuf>,
    pub jwt_audience: Option<String>,
    pub jwt_issuer: Option<String>,
    pub jwt_cookie: String,
    pub jwt_leeway: u64,
    /// With `tls_key`, the port speaks only TLS; none serves plain TCP.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub shutdown_timeout: u64,
    pub log: String,
    pub deflate: bool,
    pub deflate_level: u32,
    pub deflate_threshold: usize,
    /// ZeroMQ and OSC endpoints (the `[bridge]` table); none by default.
    pub bridge: BridgeSettings,
    /// Bridge endpoints open at once, from `[bridge]` and `/api/bridges`.
    pub max_bridges: usize,
    /// The Redis URL of the cluster; none runs one node.
    pub redis: Option<String>,
    pub redis_prefix: String,
    /// Seconds (fractions allowed).
    pub cluster_ttl: f64,
    /// Seconds (fractions allowed).
    pub cluster_heartbeat: f64,
    pub cluster_channels: String,
    /// The connect proxy's URL; none admits without asking.
    pub connect_proxy: Option<String>,
    /// Seconds (fractions allowed).
    pub connect_proxy_timeout: f64,
    /// The event proxy's URL; none answers unhandled events `unknown_event`.
    pub event_proxy: Option<String>,
    /// Seconds (fractions allowed).
    pub event_proxy_timeout: f64,
    pub event_proxy_events: Vec<String>,
    pub event_proxy_max_queued: usize,
    pub proxy_max_in_flight: usize,
    /// WebSocket endpoints besides `/ws` and `/echo` (`[[endpoint]]` tables).
    pub endpoint: Vec<EndpointSpec>,
    /// Rooms that keep history (`[[history]]` tables).
    pub history: Vec<HistorySpec>,
    pub history_memory: usize,
    pub history_unacked: usize,
    /// Bytes of one client stream.
    pub max_stream_size: usize,
    /// Client streams at once.
    pub max_streams: usize,
    /// Where Socket.IO is served; empty: nowhere.
    pub socketio_path: String,
    /// Seconds (fractions allowed).
    pub socketio_ping_interval: f64,
    /// Seconds (fractions allowed).
    pub socketio_ping_timeout: f64,
    pub socketio_max_payload: usize,
    /// Empty: any namespace.
    pub socketio_namespaces: Vec<String>,
    pub socketio_max_namespaces: usize,
    pub socketio_max_attachments: usize,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            host: "127.0.0.1".into(),
            port: 9080,
            max_connections: 10_000,
            max_echo_connections: 1_000,
            // A trickling client holds its socket for the handshake timeout:
            // these bound how many of the process's files such clients can
            // hold, in all and from one address.
            max_handshakes: 4096,
            max_handshakes_per_ip: 256,
            max_connections_per_ip: 0,
            max_wildcard_patterns: 5_000,
            max_message_rate: 1000,
            max_byte_rate: 16 << 20,
            max_message_rate_per_ip: 0,
            max_byte_rate_per_ip: 0,
            memory_budget: None,
            max_message_size: 1 << 20,
            idle_timeout: 600,
            ping_interval: 30,
            pong_timeout: 10,
            queue_len: 1024,
            queue_bytes: 4 << 20,
            userlist_rate: 4 << 20,
            // Off: on a big hub every change costs a list to everyone.
            global_userlist: false,
            slow_consumer: "close".into(),
            allowed_origins: Vec::new(),
            api_key: None,
            ws_token: None,
            echo_token: None,
            metrics_key: None,
            jwt_secret: None,
            jwt_public_key: None,
            jwt_audience: None,
            jwt_issuer: None,
            jwt_cookie: "switchboard_token".into(),
            // Expiry is exact unless the operator allows for skewed clocks.
            jwt_leeway: 0,
            tls_cert: None,
            tls_key: None,
            shutdown_timeout: 10,
            deflate: true,
            deflate_level: 6,
            deflate_threshold: 128,
            log: "warn".into(),
            bridge: Default::default(),
            // Each endpoint is a socket and a task; a few dozen is plenty
            // for an installation, and bounds what a leaked key can open.
            max_bridges: 32,
            redis: None,
            redis_prefix: "switchboard".into(),
            // A node is declared dead 10 to 13 s after it stops: long enough
            // to ride out a pause or a slow Redis, short enough that user
            // lists do not show ghosts for long.
            cluster_ttl: 10.0,
            cluster_heartbeat: 3.0,
            cluster_channels: "nodes".into(),
            connect_proxy: None,
            // Well inside the 10 s handshake timeout, so that a client
            // hears 503 from us rather than 408.
            connect_proxy_timeout: 3.0,
            event_proxy: None,
            event_proxy_timeout: 5.0,
            event_proxy_events: Vec::new(),
            // A client may pipeline; one client cannot queue without bound.
            event_proxy_max_queued: 64,
            max_stream_size: 64 << 20,
            max_streams: 64,
            // Enough for a busy backend; a slow one holds at most this many
            // sockets and requests.
            proxy_max_in_flight: 256,
            endpoint: Vec::new(),
            history: Vec::new(),
            history_memory: 256 << 20,
            history_unacked: 1000,
            // Socket.IO's own defaults, so that its clients behave as they
            // do against a Node server.
            socketio_path: "/socket.io/".into(),
            socketio_ping_interval: 25.0,
            socketio_ping_timeout: 20.0,
            socketio_max_payload: 1_000_000,
            socketio_namespaces: Vec::new(),
            // One client rarely joins more than a few; each costs a name.
            socketio_max_namespaces: 8,
            socketio_max_attachments: 10,
        }
    }
}

macro_rules! override_with {
    ($settings:ident, $args:ident, $($field:ident),*) => {
        $(if let Some(value) = $args.$field.clone() { $settings.$field = value.into(); })*
    };
}

impl ServeSettings {
    /// Defaults, overridden by the file named in `--config`, overridden by flags and environment.
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<ServeSettings> {
        let mut settings = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => ServeSettings::default(),
        };
        override_with!(
            settings,
            args,
            host,
            port,
            max_connections,
            max_echo_connections,
            max_handshakes,
            max_handshakes_per_ip,
            max_connections_per_ip,
            max_wildcard_patterns,
            max_message_rate,
            max_byte_rate,
            max_message_rate_per_ip,
            max_byte_rate_per_ip,
            max_message_size,
            idle_timeout,
            ping_interval,
            pong_timeout,
            queue_len,
            queue_bytes,
            userlist_rate,
            global_userlist,
            max_bridges,
            slow_consumer,
            allowed_origins,
            shutdown_timeout,
            log,
            deflate,
            deflate_level,
            deflate_threshold,
            redis_prefix,
            cluster_ttl,
            cluster_heartbeat,
            cluster_channels,
            jwt_cookie,
            jwt_leeway,
            connect_proxy_timeout,
            event_proxy_timeout,
            event_proxy_events,
            event_proxy_max_queued,
            proxy_max_in_flight,
            max_stream_size,
            max_streams,
            history_memory,
            history_unacked,
            socketio_path,
            socketio_ping_interval,
            socketio_ping_timeout,
            socketio_max_payload,
            socketio_namespaces,
            socketio_max_namespaces,
            socketio_max_attachments
        );
        if args.connect_proxy.is_some() {
            settings.connect_proxy = args.connect_proxy.clone();
        }
        if args.event_proxy.is_some() {
            settings.event_proxy = args.event_proxy.clone();
        }
        if args.redis.is_some() {
            settings.redis = args.redis.clone();
        }
        if args.api_key.is_some() {
            settings.api_key = args.api_key.clone();
        }
        if args.ws_token.is_some() {
            settings.ws_token = args.ws_token.clone();
        }
        if args.memory_budget.is_some() {
            settings.memory_budget = args.memory_budget;
        }
        if args.echo_token.is_some() {
            settings.echo_token = args.echo_token.clone();
        }
        if args.metrics_key.is_some() {
            settings.metrics_key = args.metrics_key.clone();
        }
        let optional = [
            (&mut settings.jwt_secret, &args.jwt_secret),
            (&mut settings.jwt_audience, &args.jwt_audience),
            (&mut settings.jwt_issuer, &args.jwt_issuer),
        ];
        for (setting, arg) in optional {
            if arg.is_some() {
                setting.clone_from(arg);
            }
        }
        if args.jwt_public_key.is_some() {
            settings.jwt_public_key = args.jwt_public_key.clone();
        }
        if args.tls_cert.is_some() {
            settings.tls_cert = args.tls_cert.clone();
        }
        if args.tls_key.is_some() {
            settings.tls_key = args.tls_key.clone();
        }
        settings.apply_bridge_flags(args)?;
        if let Some(given) = &args.endpoint {
            settings.endpoint = given
                .iter()
                .map(|text| EndpointSpec::parse(text))
                .collect::<Result<_, _>>()
                .map_err(anyhow::Error::msg)
                .context("--endpoint")?;
        }
        if let Some(given) = &args.history {
            settings.history = given
                .iter()
                .map(|text| HistoryRule::parse(text).map(HistorySpec))
                .collect::<Result<_, _>>()
                .map_err(anyhow::Error::msg)
                .context("--history")?;
        }
        settings.validate()?;
        Ok(settings)
    }

    /// The history rules, for the hub.
    pub fn history_rules(&self) -> Vec<HistoryRule> {
        self.history.iter().map(|spec| spec.0.clone()).collect()
    }

    /// Replaces each `[bridge]` list that a flag (or its variable) gives.
    fn apply_bridge_flags(&mut self, args: &ServeArgs) -> anyhow::Result<()> {
        let flags = [
            (Kind::ZmqPush, &args.zmq_push, "--zmq-push"),
            (Kind::ZmqPub, &args.zmq_pub, "--zmq-pub"),
            (Kind::ZmqPull, &args.zmq_pull, "--zmq-pull"),
            (Kind::ZmqSub, &args.zmq_sub, "--zmq-sub"),
            (Kind::OscListen, &args.osc_listen, "--osc-listen"),
            (Kind::OscSend, &args.osc_send, "--osc-send"),
        ];
        for (kind, given, flag) in flags {
            if let Some(given) = given {
                self.bridge.replace(kind, given, flag)?;
            }
        }
        Ok(())
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.max_connections > 0, "max_connections must be > 0");
        anyhow::ensure!(
            self.max_echo_connections > 0,
            "max_echo_connections must be > 0"
        );
        anyhow::ensure!(
            self.max_message_size >= 125,
            "max_message_size must be at least 125 bytes"
        );
        anyhow::ensure!(self.queue_len > 0, "queue_len must be > 0");
        anyhow::ensure!(self.queue_bytes > 0, "queue_bytes must be > 0");
        anyhow::ensure!(self.userlist_rate > 0, "userlist_rate must be > 0");
        anyhow::ensure!(self.max_handshakes > 0, "max_handshakes must be > 0");
        anyhow::ensure!(
            self.memory_budget() >= 2 * self.max_message_size as u64,
            "memory_budget must hold at least two messages of max_message_size"
        );
        for (name, rate) in [
            ("max_byte_rate", self.max_byte_rate),
            ("max_byte_rate_per_ip", self.max_byte_rate_per_ip),
        ] {
            anyhow::ensure!(
                rate == 0 || rate >= self.max_message_size as u64,
                "{name} ({rate}) must be 0 or at least max_message_size ({}): \
                 a message larger than a second's bytes could never be sent",
                self.max_message_size
            );
        }
        anyhow::ensure!(self.pong_timeout > 0, "pong_timeout must be > 0");
        anyhow::ensure!(
            matches!(self.slow_consumer.as_str(), "close" | "drop"),
            "slow_consumer must be \"close\" or \"drop\", not {:?}",
            self.slow_consumer
        );
        anyhow::ensure!(
            self.tls_cert.is_some() == self.tls_key.is_some(),
            "tls_cert and tls_key go together: give both or neither"
        );
        self.bridge.validate()?;
        let configured = self.bridge.entries().count();
        anyhow::ensure!(
            configured <= self.max_bridges,
            "{configured} bridge endpoints are configured, more than max_bridges ({})",
            self.max_bridges
        );
        self.validate_proxies()?;
        crate::endpoints::resolve(&self.endpoint).map_err(anyhow::Error::msg)?;
        self.validate_jwt()?;
        self.validate_socketio()?;
        self.validate_cluster()
    }

    fn validate_socketio(&self) -> anyhow::Result<()> {
        let path = &self.socketio_path;
        anyhow::ensure!(
            path.is_empty() || (path.starts_with('/') && path.ends_with('/') && path.len() > 1),
            "socketio_path must start and end with / (or be empty to turn Socket.IO off), not {path:?}"
        );
        for (name, seconds) in [
            ("socketio_ping_interval", self.socketio_ping_interval),
            ("socketio_ping_timeout", self.socketio_ping_timeout),
        ] {
            anyhow::ensure!(
                seconds.is_finite() && (0.05..=3600.0).contains(&seconds),
                "{name} must be between 0.05 and 3600 seconds"
            );
        }
        anyhow::ensure!(
            self.socketio_max_payload >= 1024,
            "socketio_max_payload must be at least 1024 bytes"
        );
        anyhow::ensure!(
            self.socketio_max_namespaces > 0,
            "socketio_max_namespaces must be > 0"
        );
        for nsp in &self.socketio_namespaces {
            anyhow::ensure!(
                nsp.starts_with('/') && nsp.len() <= 64 && !nsp.contains(','),
                "a Socket.IO namespace starts with / and has at most 64 characters and no comma: {nsp:?}"
            );
        }
        Ok(())
    }

    /// One way to authorize /ws: a shared token or signed ones, and signed
    /// ones with one key.
    fn validate_jwt(&self) -> anyhow::Result<()> {
        let jwt = self.jwt_secret.is_some() || self.jwt_public_key.is_some();
        anyhow::ensure!(
            !(jwt && self.ws_token.is_some()),
            "ws_token and jwt_secret/jwt_public_key exclude each other: give one"
        );
        anyhow::ensure!(
            !(self.jwt_secret.is_some() && self.jwt_public_key.is_some()),
            "give jwt_secret (HS256) or jwt_public_key (RS256/ES256), not both"
        );
        if let Some(secret) = &self.jwt_secret {
            // RFC 7518 §3.2: an HS256 key at least as long as the hash.
            anyhow::ensure!(
                secret.len() >= 32,
                "jwt_secret must be at least 32 bytes (RFC 7518 §3.2)"
            );
        }
        anyhow::ensure!(
            self.jwt_leeway <= 3600,
            "jwt_leeway is at most 3600 seconds, not {}",
            self.jwt_leeway
        );
        anyhow::ensure!(
            !self.jwt_cookie.is_empty()
                && !self
                    .jwt_cookie
                    .contains(|c: char| c.is_whitespace() || c == '=' || c == ';'),
            "jwt_cookie must be a cookie name, without spaces, = or ;"
        );
        Ok(())
    }

    fn validate_proxies(&self) -> anyhow::Result<()> {
        for url in [&self.connect_proxy, &self.event_proxy]
            .into_iter()
            .flatten()
        {
            crate::serve::backend::check_url(url)?;
        }
        let connect = self.connect_proxy_timeout;
        anyhow::ensure!(
            connect.is_finite() && connect > 0.0 && connect < 10.0,
            "connect_proxy_timeout must be above 0 and below the 10 s handshake timeout, not {connect}"
        );
        let event = self.event_proxy_timeout;
        anyhow::ensure!(
            event.is_finite() && event > 0.0 && event <= 600.0,
            "event_proxy_timeout must be above 0 and at most 600 seconds, not {event}"
        );
        anyhow::ensure!(
            self.event_proxy_max_queued > 0 && self.proxy_max_in_flight > 0,
            "event_proxy_max_queued and proxy_max_in_flight must be > 0"
        );
        anyhow::ensure!(
            !(self.connect_proxy.is_some()
                && (self.jwt_secret.is_some() || self.jwt_public_key.is_some())),
            "connect_proxy and jwt_secret/jwt_public_key exclude each other: give one"
        );
        Ok(())
    }

    fn validate_cluster(&self) -> anyhow::Result<()> {
        let (ttl, heartbeat) = (self.cluster_ttl, self.cluster_heartbeat);
        anyhow::ensure!(
            heartbeat.is_finite() && heartbeat >= 0.01,
            "cluster_heartbeat must be at least 0.01 seconds"
        );
        anyhow::ensure!(
            ttl.is_finite() && ttl > heartbeat,
            "cluster_ttl ({ttl} s) must be longer than cluster_heartbeat ({heartbeat} s)"
        );
        anyhow::ensure!(
            !self.redis_prefix.is_empty() && !self.redis_prefix.contains(char::is_whitespace),
            "redis_prefix must be non-empty, without spaces"
        );
        anyhow::ensure!(
            crate::cluster::Channels::parse(&self.cluster_channels).is_some(),
            "cluster_channels must be \"nodes\" or \"shared\", not {:?}",
            self.cluster_channels
        );
        Ok(())
    }

    /// The cluster link's settings, if `redis` is set.
    pub fn cluster(&self) -> Option<crate::cluster::ClusterSettings> {
        Some(crate::cluster::ClusterSettings {
            url: self.redis.clone()?,
            prefix: self.redis_prefix.clone(),
            ttl: Duration::from_secs_f64(self.cluster_ttl),
            heartbeat: Duration::from_secs_f64(self.cluster_heartbeat),
            channels: crate::cluster::Channels::parse(&self.cluster_channels)?,
        })
    }

    /// The shared budget for partial messages and queued output, in bytes:
    /// the setting, or a quarter of the machine's memory (1 GiB where that
    /// cannot be read).
    pub fn memory_budget(&self) -> u64 {
        self.memory_budget
            .unwrap_or_else(|| physical_memory().map_or(1 << 30, |bytes| bytes / 4))
    }

    /// Every WebSocket endpoint: `/ws`, `/echo` and the configured ones.
    pub fn endpoints(&self) -> Vec<EndpointSpec> {
        crate::endpoints::resolve(&self.endpoint).unwrap_or_default()
    }

    /// The token `/echo` asks for: its own, or the hub's.
    pub fn echo_token(&self) -> Option<&str> {
        self.echo_token.as_deref().or(self.ws_token.as_deref())
    }

    /// Seconds as an optional duration, where 0 means "off".
    pub fn seconds(value: u64) -> Option<Duration> {
        (value > 0).then(|| Duration::from_secs(value))
    }
}

/// The machine's memory in bytes, where it can be read.
fn physical_memory() -> Option<u64> {
    #[cfg(unix)]
    {
        // SAFETY: sysconf only reads system constants.
        let (pages, page_size) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if pages > 0 && page_size > 0 {
            return Some(pages as u64 * page_size as u64);
        }
    }
    None
}

/// One `[[history]]` table (`rooms`, and optionally `size` and `ttl` in
/// seconds), or the string `--history` takes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "toml::Value")]
pub struct HistorySpec(pub HistoryRule);

impl TryFrom<toml::Value> for HistorySpec {
    type Error = String;

    fn try_from(value: toml::Value) -> Result<HistorySpec, String> {
        let rule = match value {
            toml::Value::String(text) => HistoryRule::parse(&text)?,
            toml::Value::Table(mut table) => {
                let rooms = match table.remove("rooms") {
                    Some(toml::Value::String(rooms)) => rooms,
                    _ => return Err("a [[history]] table needs rooms = \"PATTERN\"".into()),
                };
                let mut rule = HistoryRule::new(rooms);
                if let Some(size) = table.remove("size") {
                    let size = size.as_integer().filter(|n| *n > 0);
                    rule.size = size.ok_or("history size must be a positive integer")? as usize;
                }
                if let Some(ttl) = table.remove("ttl") {
                    let seconds = ttl.as_float().or(ttl.as_integer().map(|n| n as f64));
                    let seconds = seconds.filter(|s| *s > 0.0);
                    rule.ttl = std::time::Duration::from_secs_f64(
                        seconds.ok_or("history ttl must be a positive number of seconds")?,
                    );
                }
                if let Some(key) = table.keys().next() {
                    return Err(format!(
                        "unknown key {key:?} in [[history]] (rooms, size, ttl)"
                    ));
                }
                rule.validate()?;
                rule
            }
            _ => {
                return Err("history: a table {rooms, size, ttl} or \"ROOMS,size=N,ttl=S\"".into())
            }
        };
        Ok(HistorySpec(rule))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_flags() {
        let dir = std::env::temp_dir().join(format!("sb-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("serve.toml");
        std::fs::write(
            &file,
            "port = 7000\nqueue_len = 5\nallowed_origins = [\"http://a\"]\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file.clone()),
            port: Some(7001),
            ..ServeArgs::default()
        };
        let settings = ServeSettings::resolve(&args).unwrap();
        assert_eq!(settings.port, 7001);
        assert_eq!(settings.queue_len, 5);
        assert_eq!(settings.allowed_origins, vec!["http://a".to_owned()]);
        assert_eq!(settings.host, "127.0.0.1");
        std::fs::write(&file, "nonsense = 1\n").unwrap();
        assert!(ServeSettings::resolve(&args).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cluster_settings_from_the_file_and_flags() {
        let dir = std::env::temp_dir().join(format!("sb-cluster-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("serve.toml");
        std::fs::write(
            &file,
            "redis = \"redis://127.0.0.1:6390\"\ncluster_ttl = 4.5\ncluster_channels = \"shared\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file),
            cluster_heartbeat: Some(0.5),
            ..ServeArgs::default()
        };
        let cluster = ServeSettings::resolve(&args).unwrap().cluster().unwrap();
        assert_eq!(cluster.url, "redis://127.0.0.1:6390");
        assert_eq!(cluster.prefix, "switchboard");
        assert_eq!(cluster.ttl, Duration::from_millis(4500));
        assert_eq!(cluster.heartbeat, Duration::from_millis(500));
        assert_eq!(cluster.channels, crate::cluster::Channels::Shared);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            ServeSettings::default().cluster().is_none(),
            "off by default"
        );
        for args in [
            ServeArgs {
                cluster_ttl: Some(3.0),
                cluster_heartbeat: Some(3.0),
                ..ServeArgs::default()
            },
            ServeArgs {
                cluster_heartbeat: Some(0.0),
                ..ServeArgs::default()
            },
            ServeArgs {
                cluster_channels: Some("rooms".into()),
                ..ServeArgs::default()
            },
            ServeArgs {
                redis_prefix: Some("a b".into()),
                ..ServeArgs::default()
            },
        ] {
            assert!(ServeSettings::resolve(&args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn a_bridge_flag_replaces_the_files_list_of_its_kind() {
        let text = "osc_send = [\"127.0.0.1:1\"]\nosc_listen = [\"127.0.0.1:2\"]\n";
        let mut settings = ServeSettings {
            bridge: toml::from_str(text).unwrap(),
            ..ServeSettings::default()
        };
        let args = ServeArgs {
            osc_send: Some(vec!["127.0.0.1:3=/a/**".into(), "127.0.0.1:4".into()]),
            ..ServeArgs::default()
        };
        settings.apply_bridge_flags(&args).unwrap();
        let endpoints: Vec<_> = settings
            .bridge
            .osc_send
            .iter()
            .map(|r| r.endpoint.as_str())
            .collect();
        assert_eq!(endpoints, ["127.0.0.1:3", "127.0.0.1:4"]);
        assert_eq!(
            settings.bridge.osc_send[0].pattern.as_deref(),
            Some("/a/**")
        );
        assert_eq!(settings.bridge.osc_listen[0].endpoint, "127.0.0.1:2");
    }

    #[test]
    fn more_configured_bridges_than_max_bridges_is_an_error() {
        let mut settings = ServeSettings {
            bridge: toml::from_str("osc_listen = [\"127.0.0.1:1\", \"127.0.0.1:2\"]").unwrap(),
            max_bridges: 1,
            ..ServeSettings::default()
        };
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains("max_bridges"), "{error}");
        settings.max_bridges = 2;
        settings.validate().unwrap();
        assert_eq!(ServeSettings::default().max_bridges, 32);
        assert!(!ServeSettings::default().global_userlist);
    }

    #[test]
    fn jwt_settings_from_the_file_and_flags() {
        let dir = std::env::temp_dir().join(format!("sb-jwt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("serve.toml");
        let secret = "s".repeat(32);
        std::fs::write(
            &file,
            format!("jwt_secret = \"{secret}\"\njwt_cookie = \"tok\"\njwt_leeway = 2\n"),
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file),
            jwt_issuer: Some("auth".into()),
            ..ServeArgs::default()
        };
        let settings = ServeSettings::resolve(&args).unwrap();
        assert_eq!(settings.jwt_secret.as_deref(), Some(secret.as_str()));
        assert_eq!(settings.jwt_cookie, "tok");
        assert_eq!(settings.jwt_leeway, 2);
        assert_eq!(settings.jwt_issuer.as_deref(), Some("auth"));
        assert_eq!(settings.jwt_audience, None);
        std::fs::remove_dir_all(&dir).unwrap();
        for args in [
            ServeArgs {
                jwt_secret: Some(secret.clone()),
                ws_token: Some("t".into()),
                ..ServeArgs::default()
            },
            ServeArgs {
                jwt_secret: Some(secret.clone()),
                jwt_public_key: Some("k.pem".into()),
                ..ServeArgs::default()
            },
            ServeArgs {
                jwt_secret: Some("short".into()),
                ..ServeArgs::default()
            },
            ServeArgs {
                jwt_secret: Some(secret.clone()),
                jwt_leeway: Some(u64::MAX),
                ..ServeArgs::default()
            },
        ] {
            assert!(ServeSettings::resolve(&args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn history_tables_and_flags() {
        let dir = std::env::temp_dir().join(format!("sb-history-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("serve.toml");
        let toml = "history_unacked = 50\n[[history]]\nrooms = \"chat-*\"\nsize = 20\nttl = 2.5\n\n[[history]]\nrooms = \"orders\"\n";
        std::fs::write(&file, toml).unwrap();
        let mut args = ServeArgs {
            config: Some(file.clone()),
            ..ServeArgs::default()
        };
        let settings = ServeSettings::resolve(&args).unwrap();
        let rules = settings.history_rules();
        assert_eq!(settings.history_unacked, 50);
        assert_eq!((rules[0].rooms.as_str(), rules[0].size), ("chat-*", 20));
        assert_eq!(rules[0].ttl, std::time::Duration::from_millis(2500));
        assert_eq!(rules[1], HistoryRule::new("orders"));
        args.history = Some(vec!["feed*,size=5".into()]);
        let rules = ServeSettings::resolve(&args).unwrap().history_rules();
        assert_eq!(
            rules,
            [HistoryRule {
                size: 5,
                ..HistoryRule::new("feed*")
            }]
        );
        args.history = Some(vec!["feed*,size=0".into()]);
        assert!(ServeSettings::resolve(&args).is_err());
        for bad in [
            "[[history]]\nsize = 3\n",
            "[[history]]\nrooms = \"a\"\ncolour = 1\n",
            "[[history]]\nrooms = \"a\"\nsize = -1\n",
        ] {
            std::fs::write(&file, bad).unwrap();
            args.history = None;
            assert!(ServeSettings::resolve(&args).is_err(), "{bad}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn endpoint_flags_replace_the_files_tables() {
        let dir = std::env::temp_dir().join(format!("sb-endpoint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("serve.toml");
        std::fs::write(&file, "[[endpoint]]\npath = \"/\"\nkind = \"is2\"\n").unwrap();
        let mut args = ServeArgs {
            config: Some(file),
            ..ServeArgs::default()
        };
        let paths = |settings: ServeSettings| {
            let table = settings.endpoints();
            table.into_iter().map(|e| e.path).collect::<Vec<_>>()
        };
        assert_eq!(
            paths(ServeSettings::resolve(&args).unwrap()),
            ["/ws", "/echo", "/"]
        );
        args.endpoint = Some(vec!["/r=rooms,protocol=p".into(), "/ws=is2".into()]);
        let settings = ServeSettings::resolve(&args).unwrap();
        assert_eq!(settings.endpoint[0].protocols, ["p"]);
        assert_eq!(paths(settings), ["/echo", "/r", "/ws"]);
        for bad in ["/x=chat", "/a=hub;/a=echo"] {
            args.endpoint = Some(bad.split(';').map(str::to_owned).collect());
            assert!(ServeSettings::resolve(&args).is_err(), "{bad}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn invalid_values_are_errors() {
        let args = ServeArgs {
            slow_consumer: Some("maybe".into()),
            ..ServeArgs::default()
        };
        assert!(ServeSettings::resolve(&args).is_err());
        let args = ServeArgs {
            queue_len: Some(0),
            ..ServeArgs::default()
        };
        assert!(ServeSettings::resolve(&args).is_err());
        let args = ServeArgs {
            tls_cert: Some("cert.pem".into()),
            ..ServeArgs::default()
        };
        assert!(
            ServeSettings::resolve(&args).is_err(),
            "a cert without a key"
        );
    }

    #[test]
    fn proxy_settings_from_the_file_and_flags() {
        let dir = std::env::temp_dir().join(format!("sb-proxy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("serve.toml");
        std::fs::write(
            &file,
            "event_proxy = \"http://127.0.0.1:8000/event\"\nevent_proxy_events = [\"chat\"]\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file),
            connect_proxy: Some("http://127.0.0.1:8000/connect".into()),
            connect_proxy_timeout: Some(0.5),
            ..ServeArgs::default()
        };
        let settings = ServeSettings::resolve(&args).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            settings.event_proxy.as_deref(),
            Some("http://127.0.0.1:8000/event")
        );
        assert_eq!(settings.event_proxy_events, ["chat"]);
        assert_eq!(settings.connect_proxy_timeout, 0.5);
        assert_eq!(
            (
                settings.event_proxy_timeout,
                settings.event_proxy_max_queued,
                settings.proxy_max_in_flight
            ),
            (5.0, 64, 256)
        );
        for args in [
            ServeArgs {
                connect_proxy: Some("https://auth.example/connect".into()),
                ..ServeArgs::default()
            },
            ServeArgs {
                connect_proxy_timeout: Some(10.0),
                ..ServeArgs::default()
            },
            ServeArgs {
                event_proxy_max_queued: Some(0),
                ..ServeArgs::default()
            },
            ServeArgs {
                connect_proxy: Some("http://127.0.0.1:1/".into()),
                jwt_secret: Some("s".repeat(32)),
                ..ServeArgs::default()
            },
        ] {
            assert!(ServeSettings::resolve(&args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn tls_files_from_the_file_and_flags() {
        let dir = std::env::temp_dir().join(format!("sb-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("serve.toml");
        std::fs::write(&file, "tls_cert = \"a.pem\"\ntls_key = \"a.key\"\n").unwrap();
        let args = ServeArgs {
            config: Some(file),
            tls_key: Some("b.key".into()),
            ..ServeArgs::default()
        };
        let settings = ServeSettings::resolve(&args).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(settings.tls_cert, Some(PathBuf::from("a.pem")));
        assert_eq!(settings.tls_key, Some(PathBuf::from("b.key")));
    }
}
