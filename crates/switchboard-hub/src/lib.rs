//! The event hub: a centralized message dispatcher over WebSockets.
//!
//! Connections get ids and names, join rooms, send named JSON (or
//! MessagePack) events to one connection, a room or everyone, get
//! acknowledgements, subscribe to address patterns, and see who is in their
//! rooms. The wire format is in [`envelope`].
//!
//! # Modules
//!
//! - [`hub`]: the [`Hub`] — hooks (`on`, `on_connect`, authorization),
//!   lookups, shutdown; [`observe`], the hooks on a connection's pongs,
//!   errors and close ([`Hub::on_pong`], [`Hub::on_error`], [`Hub::on_close`]).
//! - `admission`: the one decision on an upgrade ([`Hub::admit`], and the
//!   hub as a [`switchboard_net::Handler`]), carried to [`Hub::serve`] as an
//!   [`Admission`].
//! - `embed`: the hub behind a hyper or axum server ([`Hub::handle_upgrade`]).
//! - `session`: one connection's life in one task: `ready`, reading and
//!   dispatching, leaving ([`Hub::serve`]).
//! - `dispatch`: what each client message does; `access`, the checks of a
//!   connection's rights in it.
//! - [`grant`]: what an authorization gives a connection ([`Grant`]: name,
//!   metadata, rooms it may join and send to, expiry); `expiry`, the
//!   deadline in the connection's task and `refresh`; `rights`, the rooms
//!   a connection may join and send to ([`Access`]) and the addresses it
//!   may publish to ([`Paths`]).
//! - [`forward`]: events nothing here handles, and each connection's
//!   `connect` and `disconnect`, handed to an asynchronous forwarder
//!   ([`Hub::set_forwarder`]) in order per connection, off its task.
//! - `routing`: the one way out for every message (`to(room).emit`,
//!   `emit_all`, `emit_all_except`, `emit_to`, `publish`, client relays,
//!   other nodes' messages).
//! - `membership`: the server putting a connection in rooms and naming it
//!   ([`Hub::join_room`], [`Hub::leave_room`], [`Hub::set_name`]).
//! - [`stream`]: one message to many connections in fragments as its
//!   data comes ([`Hub::stream`], a client's `stream:start`), never
//!   interleaved with their other messages.
//! - `presence`: coalesced room user lists.
//! - [`history`]: numbered room messages kept on this node or in the
//!   cluster, recovery after a reconnect, at-least-once delivery.
//! - [`cluster`]: the [`ClusterAdapter`] that links hubs on several nodes;
//!   `clustered`, the hub's side of it; `remote`, the other nodes' connections.
//! - [`envelope`]: the wire format, JSON and MessagePack.
//! - [`socketio`]: the same connections speaking Socket.IO v5 over
//!   Engine.IO v4 ([`Admission::socket_io`]).
//! - [`pattern`]: address patterns with wildcards.
//! - `registry`: who is where (connections, rooms, subscriptions).
//! - [`socket`], [`id`], [`config`], [`metrics`].
//!
//! # Sending
//!
//! Every send borrows its data (as the client's `emit` does) and encodes
//! it once. A send to one connection ([`Socket::emit`], [`Hub::emit_to`])
//! returns `Result<(), SendError>`: the connection is gone, or its queue is
//! full. A send to many ([`Hub::emit_all`], [`Hub::to`]`(room).emit`,
//! [`Hub::publish`]) returns how many connections queued it.
//!
//! # Use
//!
//! ```no_run
//! # async fn run(listener: tokio::net::TcpListener) -> std::io::Result<()> {
//! use switchboard_hub::{Hub, HubConfig};
//! let hub = Hub::new(HubConfig::default());
//! hub.on("sum", |cx| {
//!     let sum: f64 = cx.data.as_array().into_iter().flatten().filter_map(|v| v.as_f64()).sum();
//!     Ok(serde_json::json!(sum))
//! });
//! let config = switchboard_hub::net::Config::default();
//! loop {
//!     let (stream, remote) = listener.accept().await?;
//!     let (hub, config) = (hub.clone(), config.clone());
//!     tokio::spawn(async move {
//!         // The hub decides on the upgrade (shutdown, authorizer, limit) ...
//!         if let Ok(Some(accepted)) = switchboard_hub::net::accept(stream, &config, &hub).await {
//!             // ... and runs the connection in this one task.
//!             hub.serve(accepted, Some(remote)).await;
//!         }
//!     });
//! }
//! # }
//! ```
#![deny(missing_docs)]

// The README's example compiles (it is a doc test of this empty item).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

mod access;
mod admission;
pub mod cluster;
mod clustered;
pub mod config;
mod dispatch;
mod embed;
pub mod envelope;
mod expiry;
pub mod forward;
mod forwarder;
mod fragments;
mod glob;
pub mod grant;
pub mod history;
pub mod hub;
pub mod id;
mod membership;
pub mod metrics;
pub mod observe;
pub mod pattern;
mod presence;
mod rate;
mod registry;
mod remote;
mod rights;
mod routing;
mod session;
pub mod socket;
mod socket_error;
pub mod socketio;
pub mod stream;
mod subscriptions;

pub use admission::Admission;
pub use cluster::{ClusterAdapter, ClusterMessage, PresenceChange, Route, User};
pub use config::{HubConfig, SlowConsumerPolicy};
pub use envelope::{Codec, Encoding, RequestError, Target, JSON_PROTOCOL, MSGPACK_PROTOCOL};
pub use expiry::TOKEN_EXPIRED;
pub use forward::{
    Connection, Emit, EmitTarget, Forward, ForwardError, ForwardFuture, ForwardKind, ForwardReply,
    Forwarder, PROXY_BUSY,
};
pub use grant::Grant;
pub use history::{
    Append, HistoryRule, HistoryUnavailable, Page, PageFuture, Published, Since, Stored,
};
pub use hub::{Authorizer, Context, GrantAuthorizer, Hub, Refresher, Stats};
pub use id::ConnId;
pub use metrics::Metrics;
pub use observe::SocketError;
pub use rate::{address_group, ConnectionLimits, Rate};
pub use rights::{Access, Paths};
pub use routing::RoomEmitter;
pub use socket::{Meta, SendError, Socket};
pub use stream::{Stream, StreamInfo};
/// The transport the hub runs on (`accept`, `Config`, `Accepted`, …), so
/// that a program embedding the hub needs no other dependency for it.
pub use switchboard_net as net;
pub use switchboard_net::Request;
