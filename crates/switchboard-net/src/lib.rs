//! WebSocket transport on tokio, driving the sans-IO core of
//! `switchboard-proto`.
//!
//! # Modules
//!
//! - [`server`]: accept a TCP connection, answer plain HTTP through a
//!   [`Handler`] or upgrade it to a [`WebSocket`].
//! - [`body`]: a request body read as it arrives, for handlers that
//!   stream it on ([`Handler::streams_body`]).
//! - [`client`]: [`connect`] to a `ws://` or `wss://` URL.
//! - [`tls`] (feature `tls`, default): rustls configs from PEM files,
//!   [`tls::accept`] for servers, the trust of `wss://` clients.
//! - [`upgrade`]: upgrade a request that came through a `hyper` 1.x server.
//! - [`socket`]: the [`WebSocket`], its [`Reader`] and [`Writer`] halves,
//!   keepalive, streaming and backpressure.
//! - [`session`], [`outbox`]: a server connection driven by one task
//!   ([`Session`]), and the handle any task sends on ([`Outbox`]): frames
//!   encoded once for many connections are written by the sender itself when
//!   the socket can take them, queued (bounded) when it cannot.
//! - [`config`], [`error`]: settings and the error type.
//!
//! # Use
//!
//! A server accepts with [`accept`], then loops on [`WebSocket::recv`]; a
//! client calls [`connect`]. Either side may [`WebSocket::split`] to read
//! and write from different tasks. Keepalive, idle and close timers run while
//! a task awaits the reader.
#![deny(missing_docs)]

// The README's example compiles (it is a doc test of this empty item).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub mod body;
mod chunks;
pub mod client;
pub mod config;
pub mod error;
pub mod outbox;
mod read_half;
pub mod server;
pub mod session;
pub mod socket;
#[cfg(feature = "tls")]
pub mod tls;
pub mod upgrade;

pub use body::BodyStream;
pub use client::{connect, connect_with, ConnectOptions};
pub use config::Config;
pub use error::Error;
pub use outbox::{Cork, Lane, Outbox, PushError};
pub use server::{
    accept, accept_stream, AcceptAll, Accepted, Decision, Handler, HttpResponse, Parts,
};
pub use session::Session;
pub use socket::{Reader, WebSocket, Writer};
pub use upgrade::{upgrade_with, PendingUpgrade};
// What the signatures above use from the protocol core, so that a user
// of this crate needs no other.
pub use switchboard_proto::handshake::{Request, Response};
pub use switchboard_proto::{
    CloseCause, CloseCode, CloseFrame, CloseInfo, Event, Fragment, HandshakeError, MemoryBudget,
    Message, MessageKind, Role, Utf8Bytes,
};
