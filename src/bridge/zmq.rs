//! The ZeroMQ bridge, on the pure-Rust `zeromq` crate (ZMTP 3, NULL
//! security), which talks to libzmq peers such as pyzmq.
//!
//! - PUSH sends each address message as one frame, `{"path":...,"values":[...]}`
//!   (or `"value"` for `"values"`, as IS2 does, with the output's `key = "value"`).
//!   With no peer connected the message is dropped (and counted), not queued:
//!   a late reader gets current values, not a backlog.
//! - PUB sends two frames, `[path, json]`, so subscribers can filter by
//!   address prefix (`sub.subscribe(b"/sensors/")`).
//! - PULL and SUB read the same JSON from the last frame of each message
//!   (a leading topic frame is ignored); SUB subscribes to everything.
//!
//! An endpoint is `tcp://HOST:PORT`; PUSH, PUB and PULL bind it and SUB
//! connects to it, unless it starts with `@` (bind) or `>` (connect), as in
//! CZMQ. A connecting socket keeps retrying in the background.
//!
//! The socket's monitor tells when a peer connects (a bound socket accepts
//! one, a connecting socket reaches its endpoint) and disconnects; each is
//! announced as `connected` / `disconnected` with the peer's address.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt as _;
use serde_json::{json, Value};
use switchboard_hub::envelope::address_values;
use zeromq::util::PeerIdentity;
use zeromq::{
    PubSocket, PullSocket, PushSocket, Socket as _, SocketEvent, SocketOptions, SocketRecv,
    SocketSend, SubSocket, ZmqError, ZmqMessage,
};

use super::endpoint::{parse_endpoint, Mode};
use super::kind::Kind;
use super::link::{Inbox, Link, Task};

enum Inner {
    Push(PushSocket),
    Pub(PubSocket),
    Pull(PullSocket),
    Sub(SubSocket),
}

/// An open ZeroMQ socket.
pub(crate) struct Socket {
    inner: Inner,
    /// The bound endpoint (port resolved), or the one to connect to.
    local: String,
    /// Set while the socket still has to connect.
    connect: Option<String>,
    /// The socket's monitor.
    peers: Peers,
}

impl Socket {
    pub fn local(&self) -> String {
        self.local.clone()
    }
}

/// Creates the socket and binds it now (so a taken port is an error at
/// startup); a connecting socket connects in its task.
pub(crate) async fn open(kind: Kind, endpoint: &str) -> anyhow::Result<Socket> {
    let (mode, address) = parse_endpoint(kind, endpoint).map_err(anyhow::Error::msg)?;
    let mut options = SocketOptions::default();
    options.no_connect_timeout();
    let mut inner = match kind {
        Kind::ZmqPush => Inner::Push(PushSocket::with_options(options)),
        Kind::ZmqPub => Inner::Pub(PubSocket::with_options(options)),
        Kind::ZmqPull => Inner::Pull(PullSocket::with_options(options)),
        Kind::ZmqSub => {
            let mut socket = SubSocket::with_options(options);
            socket.subscribe("").await?;
            Inner::Sub(socket)
        }
        Kind::OscListen | Kind::OscSend => unreachable!("not a ZeroMQ kind"),
    };
    // Before binding, so that no peer is missed.
    let monitor = match &mut inner {
        Inner::Push(socket) => socket.monitor(),
        Inner::Pub(socket) => socket.monitor(),
        Inner::Pull(socket) => socket.monitor(),
        Inner::Sub(socket) => socket.monitor(),
    };
    let peers = Peers {
        events: monitor.boxed(),
        known: HashMap::new(),
        ended: false,
    };
    let socket = match mode {
        Mode::Bind => {
            let bound = match &mut inner {
                Inner::Push(socket) => socket.bind(address).await,
                Inner::Pub(socket) => socket.bind(address).await,
                Inner::Pull(socket) => socket.bind(address).await,
                Inner::Sub(socket) => socket.bind(address).await,
            }
            .map_err(|error| anyhow::anyhow!("cannot bind {}: {error}", address))?;
            Socket {
                inner,
                local: bound.to_string(),
                connect: None,
                peers,
            }
        }
        Mode::Connect => Socket {
            inner,
            local: address.to_owned(),
            connect: Some(address.to_owned()),
            peers,
        },
    };
    Ok(socket)
}

/// Runs an open socket until told to stop, then closes it (unbinding).
pub(crate) async fn run(mut socket: Socket, mut task: Task) {
    if let Some(address) = socket.connect.take() {
        if !connect(&mut socket.inner, &address, &task).await {
            return close(socket.inner).await;
        }
    }
    let peers = &mut socket.peers;
    match &mut socket.inner {
        Inner::Push(_) | Inner::Pub(_) => send_loop(&mut socket.inner, peers, &mut task).await,
        Inner::Pull(pull) => receive_loop(pull, peers, &mut task).await,
        Inner::Sub(sub) => receive_loop(sub, peers, &mut task).await,
    }
    close(socket.inner).await;
}

/// The peers a socket's monitor reported, by identity.
struct Peers {
    events: BoxStream<'static, SocketEvent>,
    known: HashMap<PeerIdentity, String>,
    /// The monitor's channel ended (the socket is closing).
    ended: bool,
}

impl Peers {
    /// The next event of the monitor; never, once it has ended.
    async fn next(&mut self) -> SocketEvent {
        if !self.ended {
            if let Some(event) = self.events.next().await {
                return event;
            }
            self.ended = true;
        }
        std::future::pending().await
    }

    /// Announces a peer that connected or disconnected.
    fn handle(&mut self, event: SocketEvent, task: &Task) {
        let link = &task.link;
        let (what, peer) = match event {
            SocketEvent::Accepted(endpoint, id) | SocketEvent::Connected(endpoint, id) => {
                let peer = endpoint.to_string();
                self.known.insert(id, peer.clone());
                ("connected", peer)
            }
            SocketEvent::Disconnected(id) => match self.known.remove(&id) {
                Some(peer) => ("disconnected", peer),
                None => return,
            },
            _ => return,
        };
        tracing::debug!(bridge = link.kind.name(), endpoint = %link.endpoint, %peer, "peer {what}");
        task.inbox.announce(
            what,
            json!({ "id": link.id(), "kind": link.kind.name(), "peer": peer }),
        );
    }
}

/// Connects, retrying until it works or the task is stopped; returns
/// whether it is connected.
async fn connect(inner: &mut Inner, address: &str, task: &Task) -> bool {
    let mut stop = task.stop.clone();
    loop {
        let attempt = async {
            match inner {
                Inner::Push(socket) => socket.connect(address).await,
                Inner::Pub(socket) => socket.connect(address).await,
                Inner::Pull(socket) => socket.connect(address).await,
                Inner::Sub(socket) => socket.connect(address).await,
            }
        };
        let result = tokio::select! {
            result = attempt => result,
            _ = stop.changed() => return false,
        };
        match result {
            Ok(()) => {
                tracing::info!(bridge = task.link.kind.name(), address, "connected");
                return true;
            }
            Err(error) => {
                tracing::warn!(bridge = task.link.kind.name(), address, %error, "cannot connect; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return false,
                }
            }
        }
    }
}

async fn close(inner: Inner) {
    let errors = match inner {
        Inner::Push(socket) => socket.close().await,
        Inner::Pub(socket) => socket.close().await,
        Inner::Pull(socket) => socket.close().await,
        Inner::Sub(socket) => socket.close().await,
    };
    for error in errors {
        tracing::debug!(%error, "while closing a ZeroMQ socket");
    }
}

async fn send_loop(inner: &mut Inner, peers: &mut Peers, task: &mut Task) {
    let Some(mut queue) = task.queue.take() else {
        return;
    };
    let link = task.link.clone();
    loop {
        let message = tokio::select! {
            message = queue.recv() => message,
            event = peers.next() => {
                peers.handle(event, task);
                continue;
            }
            _ = task.stop.changed() => None,
        };
        let Some(message) = message else { return };
        let send = async {
            match inner {
                Inner::Push(socket) => {
                    let json = message.json_with(link.values_key()).clone();
                    socket.send(ZmqMessage::from(json)).await
                }
                Inner::Pub(socket) => {
                    let mut frames = ZmqMessage::from(Bytes::from(message.path.clone()));
                    frames.push_back(message.json_with(link.values_key()).clone());
                    socket.send(frames).await
                }
                Inner::Pull(_) | Inner::Sub(_) => Ok(()),
            }
        };
        let result = tokio::select! {
            result = send => result,
            _ = task.stop.changed() => return,
        };
        match result {
            Ok(()) => link.sent(),
            Err(ZmqError::ReturnToSender { .. }) => link.dropped(),
            Err(error) => link.send_error(&error),
        }
    }
}

async fn receive_loop<S: SocketRecv>(socket: &mut S, peers: &mut Peers, task: &mut Task) {
    loop {
        let received = tokio::select! {
            received = socket.recv() => received,
            event = peers.next() => {
                peers.handle(event, task);
                continue;
            }
            _ = task.stop.changed() => return,
        };
        match received {
            Ok(message) => {
                if let Err(why) = accept(&task.inbox, &task.link, &message) {
                    task.link.malformed(&why);
                }
            }
            Err(ZmqError::NoMessage) => {
                // No peer right now; do not spin.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => task.link.malformed(&format!("receive failed: {error}")),
        }
    }
}

/// Reads one received message and publishes it.
fn accept(inbox: &Inbox, link: &Link, message: &ZmqMessage) -> Result<(), String> {
    let frame = message
        .get(message.len().saturating_sub(1))
        .ok_or("empty message")?;
    if frame.len() > inbox.max_message_size() {
        return Err(format!(
            "{} bytes, more than the {} allowed",
            frame.len(),
            inbox.max_message_size()
        ));
    }
    let (path, values) = parse_message(frame)?;
    inbox.deliver(link, &path, &values)
}

/// `{"path": P, "values": [...]}`, or IS2's `{"path": P, "value": ...}`
/// (the hub's rule, `envelope::address_values`).
pub(crate) fn parse_message(frame: &[u8]) -> Result<(String, Vec<Value>), String> {
    let text = std::str::from_utf8(frame).map_err(|_| "not UTF-8".to_owned())?;
    let value: Value = serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
    let Value::Object(mut object) = value else {
        return Err("not a JSON object".into());
    };
    let path = match object.remove("path") {
        Some(Value::String(path)) => path,
        _ => return Err("no \"path\" string".into()),
    };
    let values = address_values(object.remove("values"), object.remove("value"))
        .map_err(|error| error.message)?;
    Ok((path, values))
}
