//! [`ClientError`]: why a request did not get its answer.

/// Why a request did not get its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The server answered with an error.
    Server {
        /// The error code (see docs/PROTOCOL.md).
        code: String,
        /// The explanation.
        message: String,
    },
    /// No reply within the ack timeout.
    Timeout,
    /// The connection was lost before the reply came.
    Disconnected,
    /// The message was dropped from a full reconnection buffer.
    Dropped,
    /// The client is closed.
    Closed,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Server { code, message } => write!(f, "server error {code}: {message}"),
            ClientError::Timeout => f.write_str("no reply within the ack timeout"),
            ClientError::Disconnected => f.write_str("disconnected before the reply"),
            ClientError::Dropped => f.write_str("dropped from the reconnection buffer"),
            ClientError::Closed => f.write_str("client closed"),
        }
    }
}

impl std::error::Error for ClientError {}
