//! permessage-deflate (RFC 7692): negotiation and the compressor.
//!
//! - [`params`]: the four parameters, parsing offers and responses, and the
//!   server's choice made from its [`DeflateConfig`].
//! - [`codec`]: compressing and inflating messages, with the inflated size
//!   bounded as it is produced (decompression bombs close with 1009).
//!
//! # Memory
//!
//! A zlib compressor with a 32 KiB window costs about 320 KiB resident
//! (measured); an inflater
//! about 40 KiB. Without context takeover no state survives a message, so
//! such connections borrow a compressor or inflater from a per-thread pool
//! for the time of one message and hold nothing between messages. That is
//! why a server asks for `server_no_context_takeover` and
//! `client_no_context_takeover` by default: idle connections pay nothing for
//! compression. With context takeover (better ratios for many small similar
//! messages) the state is allocated on the first compressed message and
//! freed with the connection.

pub mod codec;
pub mod params;

pub use codec::{Deflater, Inflater};
pub use params::{DeflateConfig, Negotiated, SharedDeflate};

/// The extension token.
pub const EXTENSION: &str = "permessage-deflate";
