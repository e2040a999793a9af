//! [`ClientError`]: why a connection or a request did not succeed.

/// Why a connection or a request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The server refused the connection with this HTTP status (401, 403,
    /// 404, …): asking again would get the same answer, so the client does
    /// not retry.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's reason, from the response body.
        reason: String,
    },
    /// No connection could be made: every attempt of the reconnection
    /// policy failed; `cause` is the last one's error ("Connection
    /// refused", a TLS error, a timeout).
    Unreachable {
        /// Why the last attempt failed.
        cause: String,
    },
    /// The server accepted the WebSocket but sent no `ready` within the
    /// connect timeout: it is not a Switchboard hub (or is far too slow).
    NotAHub {
        /// How long the client waited.
        waited: std::time::Duration,
    },
    /// The server answered with an error.
    Server {
        /// The error code (`unknown_event`, `invalid_room`, `forbidden`, …).
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
            ClientError::Refused { status, reason } => {
                write!(f, "the server refused the connection: {status} {reason}")
            }
            ClientError::Unreachable { cause } => write!(f, "cannot connect: {cause}"),
            ClientError::NotAHub { waited } => write!(
                f,
                "connected, but no `ready` within {waited:?}: is this a Switchboard hub?"
            ),
            ClientError::Server { code, message } => write!(f, "server error {code}: {message}"),
            ClientError::Timeout => f.write_str("no reply within the ack timeout"),
            ClientError::Disconnected => f.write_str("disconnected before the reply"),
            ClientError::Dropped => f.write_str("dropped from the reconnection buffer"),
            ClientError::Closed => f.write_str("client closed"),
        }
    }
}

impl std::error::Error for ClientError {}
