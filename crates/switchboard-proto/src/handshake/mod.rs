//! The opening handshake (RFC 6455 §4): an HTTP/1.1 Upgrade exchange.
//!
//! - [`server`]: parse a request, decide whether it is a valid upgrade, and
//!   answer it with a 101 or with an error status and a reason.
//! - [`client`]: build a request for a `ws://` URL and check the server's answer.
//! - [`extensions`]: the `Sec-WebSocket-Extensions` grammar shared by both.

pub mod client;
pub mod extensions;
pub mod server;

use base64::Engine;
use sha1::{Digest, Sha1};

pub use client::{ClientHandshake, ClientOptions, Response, Target};
pub use extensions::{ExtensionOffer, ExtensionParam};
pub use server::{reject_response, Request, Upgrade};

/// The GUID appended to the key before hashing (RFC 6455 §1.3).
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version this implementation speaks (RFC 6455 §4.1).
pub const VERSION: &str = "13";

/// Limits on the size of a handshake, protecting the parser and the memory
/// held per connection before it is upgraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The most bytes a request or response head may take. Default 16 KiB,
    /// well above what browsers send, as nginx's default header buffers are.
    pub max_handshake_bytes: usize,
    /// The most header lines. Default 64.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_handshake_bytes: 16 * 1024,
            max_headers: 64,
        }
    }
}

impl Limits {
    /// Sets `max_handshake_bytes` (default 16 KiB).
    pub fn max_handshake_bytes(mut self, bytes: usize) -> Self {
        self.max_handshake_bytes = bytes;
        self
    }

    /// Sets `max_headers` (default 64).
    pub fn max_headers(mut self, count: usize) -> Self {
        self.max_headers = count;
        self
    }
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2, item 5.4).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// One HTTP header, with the name as sent and the raw value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The field name (compare it case-insensitively).
    pub name: String,
    /// The field value, as bytes: HTTP does not promise UTF-8.
    pub value: Vec<u8>,
}

/// The values of every header called `name`, trimmed, as text (non-UTF-8 values
/// are skipped: no WebSocket header may contain such bytes).
pub(crate) fn header_values<'h, 'n>(
    headers: &'h [Header],
    name: &'n str,
) -> impl Iterator<Item = &'h str> + use<'h, 'n> {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .filter_map(|h| std::str::from_utf8(&h.value).ok())
        .map(str::trim)
}

/// Whether any `name` header's comma-separated list holds `token`, ignoring case
/// (RFC 7230 §7 lists, as `Connection: keep-alive, Upgrade`).
pub(crate) fn has_token(headers: &[Header], name: &str, token: &str) -> bool {
    header_values(headers, name)
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// Converts httparse's headers into owned ones.
pub(crate) fn own_headers(raw: &[httparse::Header<'_>]) -> Vec<Header> {
    raw.iter()
        .map(|h| Header {
            name: h.name.to_owned(),
            value: h.value.to_vec(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_accept_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
