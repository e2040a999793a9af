//! [`SocketError`]: what the error hooks and the event proxy's `error`
//! learn of an error the hub saw on a connection.

use crate::envelope::RequestError;

/// An error the hub saw on a connection: a request it refused (the client
/// was answered with an `error` event or the ack's error, and the
/// connection stays open), or a fault that closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketError {
    /// What went wrong, machine-readable: a protocol error code as the
    /// client got it (`invalid_json`, `forbidden`, …), `protocol_error`
    /// (the peer broke RFC 6455), `rate_limited`.
    pub code: String,
    /// For people.
    pub message: String,
    /// The close code the connection is closed with, when it is.
    pub close_code: Option<u16>,
}

impl SocketError {
    /// A refused request; the connection stays open.
    pub(crate) fn refused(error: &RequestError) -> SocketError {
        SocketError {
            code: error.code.to_string(),
            message: error.message.clone(),
            close_code: None,
        }
    }

    /// A fault that closes the connection with `close_code`.
    pub(crate) fn fatal(code: &str, message: String, close_code: u16) -> SocketError {
        SocketError {
            code: code.to_owned(),
            message,
            close_code: Some(close_code),
        }
    }
}

impl std::fmt::Display for SocketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(code) = self.close_code {
            write!(f, " (closed with {code})")?;
        }
        Ok(())
    }
}
