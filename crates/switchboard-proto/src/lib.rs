//! The WebSocket protocol (RFC 6455) without I/O.
//!
//! Bytes go in, events come out; commands go in, bytes come out. Nothing here
//! owns a socket, spawns a task or reads a clock: time is passed in as an
//! `Instant`, so every timer is deterministic in tests. The transport lives in
//! `switchboard-net`.
//!
//! # Modules
//!
//! - [`handshake`]: the opening handshake, server side (parse and validate an
//!   upgrade request, answer it) and client side (build a request, check the
//!   response) (RFC 6455 §4).
//! - [`frame`]: frame headers, opcodes, encoding (RFC 6455 §5.2).
//! - [`mask`]: masking, a word at a time (RFC 6455 §5.3).
//! - [`utf8`]: whole and incremental UTF-8 validation (RFC 6455 §8.1).
//! - [`close`]: close codes and close frames (RFC 6455 §5.5.1, §7.4).
//! - [`message`]: messages and fragments as the application sees them.
//! - [`connection`]: the state machine that ties them together.
//! - [`config`] and [`error`]: the limits, and what goes wrong.
//!
//! # Call order
//!
//! After the handshake, a driver owns one [`Connection`] and loops:
//! `handle_bytes` / `handle_eof` / `handle_timeout` in, then `poll_event`
//! and `poll_transmit` until empty, then sleeps until `poll_timeout` or the
//! next read; see [`connection`] for the details.
#![deny(missing_docs)]

pub mod budget;
pub mod close;
mod close_code;
pub mod config;
pub mod connection;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod message;
mod timer;
pub mod utf8;

pub use budget::MemoryBudget;
pub use close::{CloseCode, CloseFrame};
pub use config::Config;
pub use connection::{CloseCause, CloseInfo, Connection, Event, Role};
pub use error::{ConfigError, HandshakeError, ProtocolError, UsageError};
pub use message::{Fragment, Message, MessageKind, Utf8Bytes};
