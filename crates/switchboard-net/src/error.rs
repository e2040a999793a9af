//! The one error type of this crate: opaque, with predicates.

use std::fmt;
use std::io;

use switchboard_proto::{ConfigError, HandshakeError, ProtocolError, UsageError};

/// An error from a WebSocket connection or handshake.
///
/// Ask what kind it is with the `is_*` predicates; the underlying cause, if
/// any, is in [`std::error::Error::source`].
#[derive(Debug)]
pub struct Error {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Io(io::Error),
    Protocol(ProtocolError),
    Handshake(HandshakeError),
    Usage(UsageError),
    Config(ConfigError),
    Closed,
    Timeout(&'static str),
    /// A TLS handshake failed or a certificate, key or CA file is unusable.
    Tls(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    pub(crate) fn closed() -> Self {
        Error { kind: Kind::Closed }
    }

    pub(crate) fn timeout(what: &'static str) -> Self {
        Error {
            kind: Kind::Timeout(what),
        }
    }

    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn tls(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error {
            kind: Kind::Tls(error.into()),
        }
    }

    /// An I/O error from a TLS stream: a TLS failure (bad certificate,
    /// alert from the peer) when rustls is its cause, else plain I/O.
    #[cfg(feature = "tls")]
    pub(crate) fn from_tls_io(error: io::Error) -> Self {
        let kind = error.kind();
        let from_rustls = error
            .get_ref()
            .is_some_and(|inner| inner.is::<rustls::Error>());
        match error.into_inner() {
            Some(inner) if from_rustls => Error::tls(inner),
            Some(inner) => Error::from(io::Error::new(kind, inner)),
            None => Error::from(io::Error::from(kind)),
        }
    }

    /// The transport failed (connection reset, refused, …).
    pub fn is_io(&self) -> bool {
        matches!(self.kind, Kind::Io(_))
    }

    /// The peer broke the WebSocket protocol; the connection was failed.
    pub fn is_protocol(&self) -> bool {
        matches!(self.kind, Kind::Protocol(_))
    }

    /// The opening handshake failed.
    pub fn is_handshake(&self) -> bool {
        matches!(self.kind, Kind::Handshake(_))
    }

    /// The program asked for something the protocol does not allow.
    pub fn is_usage(&self) -> bool {
        matches!(self.kind, Kind::Usage(_))
    }

    /// The connection is closed; nothing more can be sent or received.
    pub fn is_closed(&self) -> bool {
        matches!(self.kind, Kind::Closed)
    }

    /// A handshake or connect took longer than allowed.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, Kind::Timeout(_))
    }

    /// TLS failed: the peer's certificate was not trusted or did not name
    /// the host, the handshake was refused, or a certificate, key or CA
    /// file could not be used. The rustls error, if any, is the source.
    pub fn is_tls(&self) -> bool {
        matches!(self.kind, Kind::Tls(_))
    }

    /// An invalid configuration.
    pub fn is_config(&self) -> bool {
        matches!(self.kind, Kind::Config(_))
    }

    /// The protocol violation, when [`Error::is_protocol`].
    pub fn protocol_error(&self) -> Option<&ProtocolError> {
        match &self.kind {
            Kind::Protocol(error) => Some(error),
            _ => None,
        }
    }

    /// The handshake failure, when [`Error::is_handshake`]; on a client its
    /// `status()` is the server's HTTP status when the server refused.
    pub fn handshake_error(&self) -> Option<&HandshakeError> {
        match &self.kind {
            Kind::Handshake(error) => Some(error),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Io(error) => write!(f, "I/O error: {error}"),
            Kind::Protocol(error) => write!(f, "protocol error: {error}"),
            Kind::Handshake(error) => error.fmt(f),
            Kind::Usage(error) => write!(f, "usage error: {error}"),
            Kind::Config(error) => error.fmt(f),
            Kind::Closed => f.write_str("connection closed"),
            Kind::Timeout(what) => write!(f, "timed out: {what}"),
            Kind::Tls(error) => write!(f, "TLS error: {error}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Io(error) => Some(error),
            Kind::Protocol(error) => Some(error),
            Kind::Handshake(error) => Some(error),
            Kind::Usage(error) => Some(error),
            Kind::Config(error) => Some(error),
            Kind::Tls(error) => Some(error.as_ref()),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(error: io::Error) -> Self {
        Error {
            kind: Kind::Io(error),
        }
    }
}

impl From<ProtocolError> for Error {
    fn from(error: ProtocolError) -> Self {
        Error {
            kind: Kind::Protocol(error),
        }
    }
}

impl From<HandshakeError> for Error {
    fn from(error: HandshakeError) -> Self {
        Error {
            kind: Kind::Handshake(error),
        }
    }
}

impl From<UsageError> for Error {
    fn from(error: UsageError) -> Self {
        match error {
            UsageError::AlreadyClosing => Error::closed(),
            other => Error {
                kind: Kind::Usage(other),
            },
        }
    }
}

impl From<ConfigError> for Error {
    fn from(error: ConfigError) -> Self {
        Error {
            kind: Kind::Config(error),
        }
    }
}
