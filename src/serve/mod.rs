//! `switchboard serve`: the hub, the echo endpoint and the HTTP edges on one port.
//!
//! - `app`: [`App`], what every connection task and route reads;
//! - `routes`: which path does what, authorization, the HTTP API;
//! - `bridge_api`: `/api/bridges`, the bridges opened and closed at run time;
//! - `credentials`: where a request's token is (header, cookie, query);
//! - `jwt` and `claims`: signed tokens for /ws, as the hub's authorizer;
//! - `metrics`: the Prometheus exposition;
//! - `backend`: the HTTP client of the proxies; `connect_proxy`, the
//!   backend's decision on an upgrade; `event_proxy`, the hub's forwarder
//!   of events to the backend;
//! - `slots`, `files`: places for handshakes and connections, and the
//!   open-file limit they must fit in;
//! - `tls`: the certificate and key, reloaded on SIGHUP;
//! - `rooms`: Espruino's rooms protocol, for `rooms` endpoints
//!   (`crate::endpoints` says which path speaks what);
//! - this module: the accept loop, connection tasks and graceful shutdown.

mod answers;
mod app;
// The settings check proxy URLs with it.
pub(crate) mod backend;
mod bridge_api;
mod claims;
mod connect_proxy;
mod credentials;
mod event_proxy;
mod files;
mod jwt;
mod metrics;
mod publish_stream;
mod rooms;
mod routes;
mod slots;
mod socketio;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use switchboard_hub::{ConnId, Hub, HubConfig, Rate, SlowConsumerPolicy};
use switchboard_net::{Accepted, CloseCode, Config, Event, MemoryBudget, Session};
use switchboard_proto::deflate::DeflateConfig;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::bridge::Bridges;
use crate::cluster::Cluster;
use crate::settings::{ServeArgs, ServeSettings};

use app::App;
pub use routes::{Endpoint, Router};
use slots::Slots;
use tls::Tls;

/// Runs the server until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn run(args: ServeArgs) -> anyhow::Result<std::process::ExitCode> {
    let mut settings = ServeSettings::resolve(&args)?;
    init_logging(&settings.log);
    files::fit_connection_limits(&mut settings)?;
    let app = Arc::new(build_app(settings)?);
    if let Some(cluster) = &app.cluster {
        // Serve at once either way; until Redis answers the node is alone
        // ("cluster":"degraded" on /healthz).
        if !cluster.wait_up(Duration::from_secs(2)).await {
            eprintln!("switchboard: Redis is not reachable yet; serving alone until it is");
        }
    }
    app.bridges.start(&app.settings.bridge).await?;
    if let Some(tls) = &app.tls {
        tls.reload_on_sighup()?;
    }
    let addr = format!("{}:{}", app.settings.host, app.settings.port);
    let listener = TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let (http, ws) = if app.tls.is_some() {
        ("https", "wss")
    } else {
        ("http", "ws")
    };
    eprintln!(
        "switchboard listening on {http}://{local} (hub {ws}://{local}/ws, echo {ws}://{local}/echo)"
    );
    for spec in &app.settings.endpoint {
        let (path, kind) = (&spec.path, spec.kind.name());
        eprintln!("switchboard: endpoint {ws}://{local}{path} ({kind})");
    }

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let router = Arc::new(Router::new(app.clone()));
    tokio::select! {
        result = accept_loop(&listener, &app, &router, &shutdown_rx, &done_tx) => result?,
        _ = shutdown_signal() => {}
    }
    drop(listener);
    eprintln!("switchboard: shutting down");
    let _ = shutdown_tx.send(true);
    // One deadline for the whole shutdown: the hub's connections, then the
    // remaining tasks (echo connections, handshakes) in what is left of it.
    let deadline = Duration::from_secs(app.settings.shutdown_timeout);
    let give_up = tokio::time::Instant::now() + deadline;
    let drained = app.hub.shutdown(deadline).await;
    drop(done_tx);
    let tasks_done = tokio::time::timeout_at(give_up, done_rx.recv())
        .await
        .is_ok();
    if !(drained && tasks_done) {
        eprintln!("switchboard: some connections did not close within {deadline:?}");
    }
    app.bridges.close_all().await;
    if let Some(cluster) = &app.cluster {
        cluster.leave().await;
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn build_app(settings: ServeSettings) -> anyhow::Result<App> {
    // First: an unusable certificate stops the start before anything runs.
    let tls = match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(Tls::load(cert, key)?)),
        _ => None,
    };
    let mut net = Config::default();
    net.max_message_size(settings.max_message_size)
        .max_frame_size(settings.max_message_size)
        .idle_timeout(ServeSettings::seconds(settings.idle_timeout))
        .ping_interval(ServeSettings::seconds(settings.ping_interval))
        .pong_timeout(Duration::from_secs(settings.pong_timeout));
    // No server-wide subprotocols: each endpoint answers its own
    // (`EndpointSpec::select_protocol`, in the router's decision).
    let memory = MemoryBudget::new(usize::try_from(settings.memory_budget()).unwrap_or(usize::MAX));
    net.protocol().message_budget(Some(memory.clone()));
    if settings.deflate {
        // Without context takeover on either side (the defaults), no zlib
        // state is kept per connection and broadcasts are compressed once.
        let mut deflate = DeflateConfig::default();
        deflate
            .level(settings.deflate_level)
            .threshold(settings.deflate_threshold);
        net.deflate(Some(deflate));
    }
    net.validate()?;
    let mut hub_config = HubConfig::default();
    hub_config
        .max_connections(settings.max_connections)
        .queue_len(settings.queue_len)
        .max_pending_send_bytes(settings.queue_bytes)
        .userlist_rate(settings.userlist_rate)
        .global_userlist(settings.global_userlist)
        .max_wildcard_patterns(settings.max_wildcard_patterns)
        .max_forward_queue(settings.event_proxy_max_queued)
        .max_stream_size(settings.max_stream_size)
        .max_streams(settings.max_streams)
        .history(settings.history_rules())
        .history_memory(settings.history_memory)
        .history_unacked(settings.history_unacked)
        .rate(Rate {
            messages: settings.max_message_rate,
            bytes: settings.max_byte_rate,
        })
        .rate_per_address(Rate {
            messages: settings.max_message_rate_per_ip,
            bytes: settings.max_byte_rate_per_ip,
        })
        .slow_consumer(if settings.slow_consumer == "drop" {
            SlowConsumerPolicy::Drop
        } else {
            SlowConsumerPolicy::Close
        });
    hub_config.validate()?;
    let hub = Hub::new(hub_config);
    if let Some(verifier) = jwt::Verifier::from_settings(&settings)? {
        verifier.install(&hub);
    }
    let connect_proxy = match &settings.connect_proxy {
        Some(url) => Some(connect_proxy::ConnectProxy::new(
            url,
            Duration::from_secs_f64(settings.connect_proxy_timeout),
            settings.proxy_max_in_flight,
        )?),
        None => None,
    };
    let event_proxy = match &settings.event_proxy {
        Some(url) => {
            let proxy = Arc::new(event_proxy::EventProxy::new(
                url,
                Duration::from_secs_f64(settings.event_proxy_timeout),
                settings.proxy_max_in_flight,
            )?);
            proxy.install(&hub, &settings.event_proxy_events);
            Some(proxy)
        }
        None => None,
    };
    let bridges = Bridges::new(&hub, settings.max_message_size).with_max_open(settings.max_bridges);
    let cluster = match settings.cluster() {
        Some(cluster) => Some(Cluster::start(&hub, cluster)?),
        None => None,
    };
    let max_streams = settings.max_streams;
    let socket_io = socketio::SocketIo::from_settings(&settings);
    let echo_permits = Arc::new(Semaphore::new(
        settings.max_echo_connections.min(Semaphore::MAX_PERMITS),
    ));
    Ok(App {
        memory,
        handshakes: Slots::new(settings.max_handshakes, settings.max_handshakes_per_ip),
        connections_per_ip: Slots::new(0, settings.max_connections_per_ip),
        hub,
        bridges,
        cluster,
        settings,
        net,
        echo_permits,
        tls,
        connect_proxy,
        event_proxy,
        started: std::time::Instant::now(),
        rooms: rooms::Rooms::default(),
        http_streams: Arc::new(Semaphore::new(max_streams.min(Semaphore::MAX_PERMITS))),
        socket_io,
    })
}

async fn accept_loop(
    listener: &TcpListener,
    app: &Arc<App>,
    router: &Arc<Router>,
    shutdown: &watch::Receiver<bool>,
    done: &mpsc::Sender<()>,
) -> anyhow::Result<()> {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Places are taken before any work is done for the connection: one
        // among those from its address, one among the handshakes.
        let places = app
            .connections_per_ip
            .take(remote.ip())
            .and_then(|connection| Ok((connection, app.handshakes.take(remote.ip())?)));
        let (connection_place, handshake_place) = match places {
            Ok(places) => places,
            Err(full) => {
                refuse_at_once(&stream, &full);
                continue;
            }
        };
        let (app, router, shutdown, done) =
            (app.clone(), router.clone(), shutdown.clone(), done.clone());
        tokio::spawn(async move {
            let _connection_place = connection_place;
            // A handshake is not cut short by a shutdown: the router refuses
            // upgrades (503) from the moment it begins, and one admitted just
            // before gets `end` and 1001 like every other connection. Only
            // admitted connections hold up the shutdown (`done`); the others
            // end with the process.
            // The handshake's futures (TLS, the request, the connect proxy's
            // call) are boxed, and the accepted connection is a temporary
            // of one statement: the task keeps room for neither while it
            // serves (over 2 KiB more for every idle connection).
            let Some(serving) = Box::pin(handshake(stream, &app, &router, remote))
                .await
                .map(|accepted| {
                    let place = handshake_place;
                    serve_endpoint(&app, &router, accepted, remote, shutdown, place)
                })
            else {
                return;
            };
            serving.await;
            drop(done);
        });
    }
}

/// The WebSocket handshake of a new connection, over TLS when it is on;
/// `None` if it was refused or failed.
async fn handshake(
    stream: tokio::net::TcpStream,
    app: &App,
    router: &Router,
    remote: SocketAddr,
) -> Option<Accepted<Endpoint>> {
    // The router as this peer sees it: the connect proxy is told the
    // peer's address.
    let router = &router.for_peer(remote);
    let accepted = match &app.tls {
        Some(tls) => switchboard_net::tls::accept(stream, tls.config(), &app.net, router).await,
        None => switchboard_net::accept(stream, &app.net, router).await,
    };
    accepted.unwrap_or_else(|error| {
        tracing::debug!(%remote, %error, "handshake failed");
        None
    })
}

/// The future that serves an accepted connection on its endpoint until it
/// closes. Made outside the connection's task and boxed: the task would
/// otherwise keep room for the accepted connection and for the largest of
/// the endpoints' futures beside the one it runs, for the connection's
/// whole life. The handshake's place is given back at once, but for a
/// Socket.IO connection, which holds it until its CONNECT.
fn serve_endpoint<'a>(
    app: &'a App,
    router: &'a Router,
    accepted: Accepted<Endpoint>,
    remote: SocketAddr,
    shutdown: watch::Receiver<bool>,
    handshake_place: slots::Slot,
) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
    let (accepted, endpoint) = accepted.replace_admission(());
    let handshake_place = match endpoint {
        Endpoint::SocketIo => Some(handshake_place),
        _ => None,
    };
    match endpoint {
        Endpoint::Hub(admission) => {
            let (accepted, ()) = accepted.replace_admission(admission);
            Box::pin(app.hub.serve(accepted, Some(remote)))
        }
        Endpoint::Echo(permit) => {
            let (session, _) = accepted.into_session(ECHO_QUEUE.0, ECHO_QUEUE.1);
            Box::pin(async move {
                echo(session, shutdown).await;
                drop(permit);
            })
        }
        Endpoint::SocketIo => Box::pin(async move {
            // The router as this peer sees it: the connect proxy is told
            // the peer's address.
            let router = router.for_peer(remote);
            let sid = format!("{}{}", ConnId::random(), ConnId::random());
            let (remote, place) = (Some(remote), handshake_place);
            socketio::serve_websocket(app, &router, accepted, remote, &sid, &[], place).await;
        }),
        Endpoint::SocketIoUpgrade(session) => Box::pin(socketio::serve_upgrade(accepted, session)),
        Endpoint::Rooms(admission) => {
            let settings = &app.settings;
            let (session, _) = accepted.into_session(settings.queue_len, settings.queue_bytes);
            Box::pin(async move {
                rooms::serve(&app.rooms, &app.hub, Some(remote.ip()), session, shutdown).await;
                drop(admission);
            })
        }
    }
}

/// Answers a connection that found no place with a 503, written without
/// waiting (what does not fit in the socket's buffer is not sent), and
/// closes it: the request is not read, no task is started.
fn refuse_at_once(stream: &tokio::net::TcpStream, full: &slots::Full) {
    let reason = match full {
        slots::Full::Total(max) => format!("{max} handshakes in progress; try again"),
        slots::Full::Address(max) => format!("{max} connections from this address"),
    };
    tracing::debug!(%reason, "connection refused");
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n{reason}\n",
        reason.len() + 1
    );
    let _ = stream.try_write(response.as_bytes());
}

/// The bounds of an echo connection's outbox: frames, bytes.
const ECHO_QUEUE: (usize, usize) = (1024, 4 << 20);

/// The raw echo endpoint: every message comes back unchanged, until the
/// peer closes or the server shuts down (1001).
async fn echo(mut session: Session, mut shutdown: watch::Receiver<bool>) {
    // Created once: building a watch future per message costs more than the echo.
    let stopping = shutdown.wait_for(|stop| *stop);
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            event = session.next_event() => match event {
                Ok(Event::Message(message)) => {
                    if session.send(message).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            },
            _ = &mut stopping => {
                session.outbox().close(CloseCode::GOING_AWAY, "server shutting down");
                break;
            }
        }
    }
    while session.next_event().await.is_ok() {}
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
