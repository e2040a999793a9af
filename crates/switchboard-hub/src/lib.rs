//! The event hub: a centralized message dispatcher over WebSockets.
//!
//! Connections get ids and names, join rooms, send named JSON (or
//! MessagePack) events to one connection, a room or everyone, get
//! acknowledgements, subscribe to address patterns, and see who is in their
//! rooms. The wire format is documented in `docs/PROTOCOL.md`.
//!
//! # Modules
//!
//! - [`hub`]: the [`Hub`] — hooks (`on`, `on_connect`, authorization),
//!   lookups, sending (`to(room).emit`, `emit_all`, `publish`), shutdown.
//! - `session`: one connection's life: `ready`, reading and dispatching,
//!   leaving ([`Hub::serve`]).
//! - `dispatch`: what each client message does.
//! - `presence`: coalesced room user lists.
//! - [`cluster`]: the [`ClusterAdapter`] that links hubs on several nodes,
//!   and the view of the other nodes' connections.
//! - [`envelope`]: the wire format, JSON and MessagePack.
//! - [`pattern`]: address patterns with wildcards.
//! - `registry`, `outbox`: the indexes, and the bounded per-connection
//!   queues with their slow-consumer policy.
//! - [`socket`], [`id`], [`config`], [`metrics`].
//!
//! # Use
//!
//! ```no_run
//! # async fn run(accepted: switchboard_net::Accepted) {
//! use switchboard_hub::{Hub, HubConfig};
//! let hub = Hub::new(HubConfig::default());
//! hub.on("sum", |cx| {
//!     let sum: f64 = cx.data.as_array().into_iter().flatten().filter_map(|v| v.as_f64()).sum();
//!     Ok(serde_json::json!(sum))
//! });
//! hub.serve(accepted, Default::default(), None).await;
//! # }
//! ```
#![deny(missing_docs)]

pub mod cluster;
pub mod config;
mod dispatch;
pub mod envelope;
pub mod hub;
pub mod id;
pub mod metrics;
mod outbox;
pub mod pattern;
mod presence;
mod registry;
mod session;
pub mod socket;

pub use cluster::{ClusterAdapter, ClusterMessage, PresenceChange, Route, User};
pub use config::{HubConfig, SlowConsumerPolicy};
pub use envelope::{Codec, Encoding, RequestError, Target, JSON_PROTOCOL, MSGPACK_PROTOCOL};
pub use hub::{Context, Hub, RoomEmitter, Stats};
pub use id::ConnId;
pub use metrics::Metrics;
pub use socket::{Meta, Socket};
