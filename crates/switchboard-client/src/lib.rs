//! A client for the Switchboard hub, with the same event API as the server
//! side: `on`, `emit`, `emit_with_ack`, `join`, `leave`, and the built-in
//! events `ready`, `reconnecting`, `reconnection_failed`, `userlist`, `end`.
//!
//! # Modules
//!
//! - [`client`]: the [`Client`] handle the application uses.
//! - `driver`: the task that owns the connection; reconnects with
//!   exponential backoff and jitter, rejoins rooms, renews subscriptions and
//!   replays buffered messages.
//! - `state`: what the handles and the driver both see (handlers, the
//!   event stream, [`Status`], the connection id).
//! - `error`: [`ClientError`].
//! - [`options`]: [`ClientOptions`] and the [`Reconnect`] policy.
//! - [`incoming`]: the [`Incoming`] event type.
//!
//! # Reconnection
//!
//! A lost connection (the server went away, a keepalive ping went
//! unanswered within `pong_timeout`, or the server sent `end`) starts up to
//! `reconnect.attempts` attempts, waiting `reconnect.delay(n)` before each.
//! Meanwhile messages are kept in a buffer of `buffer` entries (the oldest is
//! dropped when it is full; a dropped `emit_with_ack` fails with
//! [`ClientError::Dropped`]); rooms, name and subscriptions are restored
//! before the buffer is replayed. After the last failed attempt the client
//! emits `reconnection_failed` and its status becomes [`Status::Gone`].
//!
//! Each attempt is announced with `reconnecting`, data
//! `{"attempt", "delay_ms", "error"}`; `reconnection_failed` has
//! `{"attempts", "error"}`. `error` says why the last attempt to connect
//! failed (refused, an HTTP status, a timeout), or is `null` when a
//! connection was just lost. A server that refuses the upgrade with a
//! client error (401, 403, 404, …) is not asked again: the client gives up
//! at once, and [`Client::failure`] keeps the [`ClientError::Refused`].
//!
//! # Rooms with history
//!
//! In a room that keeps history (docs/PROTOCOL.md), every message has an
//! offset. The client remembers, per room, the epoch and the last offset it
//! handed to the application, rejoins with `since` after a reconnect (to
//! any of [`ClientOptions::fallback_urls`] too), and drops a message it
//! handed over already: the application sees each message once, in order,
//! across reconnects. A rejoin then emits `recovered` (`{"room",
//! "replayed"}`) or, when history no longer reaches back,
//! `recovery_failed` (`{"room", "epoch", "offset", "had"}`): what is still
//! kept can be read with [`Client::history`]. With
//! [`ClientOptions::acks`] the client also acknowledges what it handed
//! over, so the server keeps what it has not.
//!
//! # Connecting
//!
//! [`Client::connect`] returns once `ready` has come, or fails with the
//! cause: [`ClientError::Refused`] (the HTTP status and reason),
//! [`ClientError::Unreachable`] (the first attempt could not connect: it is
//! not retried here), [`ClientError::NotAHub`] (a WebSocket server that
//! sends no `ready` within [`ClientOptions::connect_timeout`]).
//! [`Client::start`] returns at once and lets the reconnection policy retry
//! the first connection too.
//!
//! No event is lost between `connect` and `on`: an event that comes while
//! no handler takes its name (and no `events()` stream reads) is kept (up to 256 in all) and handed to the
//! first handler registered for it, so the order below receives what the
//! server sends right after `ready`.
//!
//! ```no_run
//! # async fn run() -> Result<(), switchboard_client::ClientError> {
//! use switchboard_client::{Client, ClientOptions, To};
//! let client = Client::connect("ws://127.0.0.1:9080/ws", ClientOptions::default()).await?;
//! client.on("chat", |message| println!("{:?}: {}", message.from_name, message.data));
//! client.join("lobby").await?;
//! client.emit("chat", &serde_json::json!({"text": "hi"}), To::Room("lobby".into())).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

// The README's example compiles (it is a doc test of this empty item).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub mod client;
mod driver;
mod error;
pub mod incoming;
pub mod options;
mod state;

pub use client::{Client, ClientError, Status, To};
pub use incoming::Incoming;
pub use options::{ClientOptions, Reconnect};
/// The TLS configs [`ClientOptions::tls`] takes, and how to build them.
pub use switchboard_net::tls;
