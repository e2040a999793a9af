//! Errors, split by whose fault they are.
//!
//! - [`ProtocolError`]: the peer broke RFC 6455; carries the close code to
//!   answer with. It ends the connection, never the program.
//! - [`HandshakeError`]: the opening handshake was refused; carries the HTTP
//!   status a server answers with, or describes what a server's response got
//!   wrong.
//! - [`UsageError`]: the local program asked for something the protocol does
//!   not allow (sending after close, an oversized ping).
//! - [`ConfigError`]: a configuration value that cannot work.

use std::fmt;

use crate::close_code::CloseCode;

/// The peer violated the protocol; the connection is failed with [`ProtocolError::close_code`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// An opcode reserved for future use (RFC 6455 §5.2).
    ReservedOpCode(u8),
    /// RSV bits set that no negotiated extension defines (RFC 6455 §5.2).
    ReservedBits,
    /// A control frame with FIN clear (RFC 6455 §5.5).
    FragmentedControlFrame,
    /// A control frame with more than 125 bytes (RFC 6455 §5.5).
    ControlFrameTooLong,
    /// A 64-bit length with its most significant bit set (RFC 6455 §5.2).
    InvalidLength,
    /// A client frame without a mask (RFC 6455 §5.1).
    UnmaskedFrame,
    /// A server frame with a mask (RFC 6455 §5.1).
    MaskedFrame,
    /// A continuation frame with no message to continue (RFC 6455 §5.4).
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is open (RFC 6455 §5.4).
    ExpectedContinuation,
    /// Text that is not UTF-8 (RFC 6455 §8.1); closes with 1007.
    InvalidUtf8,
    /// A close frame whose body is one byte (RFC 6455 §5.5.1).
    CloseFrameOneByte,
    /// A close code that may not appear on the wire (RFC 6455 §7.4).
    InvalidCloseCode(u16),
    /// A frame larger than `max_frame_size`; closes with 1009.
    FrameTooLarge {
        /// The announced payload length.
        size: u64,
        /// The configured limit.
        max: usize,
    },
    /// A message larger than `max_message_size`; closes with 1009.
    MessageTooLarge {
        /// The size the message reached, counting the frame that broke the limit.
        size: u64,
        /// The configured limit.
        max: usize,
    },
    /// A message in more fragments than `max_fragments`; closes with 1009.
    TooManyFragments {
        /// The configured limit.
        max: usize,
    },
    /// The shared budget for messages being received is spent (see
    /// `Config::message_budget`); closes with 1013.
    OverBudget {
        /// The bytes the message needed.
        size: u64,
    },
    /// Data arrived after the peer's close frame (RFC 6455 §5.5.1).
    DataAfterClose,
    /// An extension rejected a frame.
    Extension(String),
    /// A compressed message that does not inflate (RFC 7692 §8); closes with 1007.
    InvalidCompressedData(String),
}

impl ProtocolError {
    /// The close code that fails the connection for this error (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCompressedData(_) => {
                CloseCode::INVALID_PAYLOAD
            }
            ProtocolError::FrameTooLarge { .. }
            | ProtocolError::MessageTooLarge { .. }
            | ProtocolError::TooManyFragments { .. } => CloseCode::MESSAGE_TOO_BIG,
            ProtocolError::OverBudget { .. } => CloseCode::TRY_AGAIN_LATER,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedOpCode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::ReservedBits => f.write_str("reserved bits set"),
            ProtocolError::FragmentedControlFrame => f.write_str("fragmented control frame"),
            ProtocolError::ControlFrameTooLong => f.write_str("control frame over 125 bytes"),
            ProtocolError::InvalidLength => f.write_str("invalid 64-bit payload length"),
            ProtocolError::UnmaskedFrame => f.write_str("client frame not masked"),
            ProtocolError::MaskedFrame => f.write_str("server frame masked"),
            ProtocolError::UnexpectedContinuation => f.write_str("continuation without a message"),
            ProtocolError::ExpectedContinuation => {
                f.write_str("new message inside a fragmented one")
            }
            ProtocolError::InvalidUtf8 => f.write_str("invalid UTF-8 in text"),
            ProtocolError::CloseFrameOneByte => f.write_str("close frame with a 1-byte body"),
            ProtocolError::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            ProtocolError::FrameTooLarge { size, max } => {
                write!(f, "frame of {size} bytes exceeds max_frame_size {max}")
            }
            ProtocolError::MessageTooLarge { size, max } => {
                write!(f, "message of {size} bytes exceeds max_message_size {max}")
            }
            ProtocolError::TooManyFragments { max } => {
                write!(f, "message exceeds max_fragments {max}")
            }
            ProtocolError::OverBudget { size } => write!(
                f,
                "server busy: no memory for a message of {size} bytes now"
            ),
            ProtocolError::DataAfterClose => f.write_str("data after close frame"),
            ProtocolError::Extension(why) => write!(f, "extension error: {why}"),
            ProtocolError::InvalidCompressedData(why) => {
                write!(f, "invalid compressed data: {why}")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

/// The opening handshake failed.
///
/// On a server, [`HandshakeError::status`] is the HTTP status to answer with
/// and [`HandshakeError::reason`] goes in the body. On a client, the status is
/// the one the server answered with when that was the problem, and 0 otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeError {
    status: u16,
    reason: String,
}

impl HandshakeError {
    /// A handshake error with an HTTP status and a human-readable reason.
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        HandshakeError {
            status,
            reason: reason.into(),
        }
    }

    /// The HTTP status (400, 405, 426, 431, …; on a client, the server's status or 0).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Why the handshake failed.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.status == 0 {
            write!(f, "handshake failed: {}", self.reason)
        } else {
            write!(f, "handshake failed ({}): {}", self.status, self.reason)
        }
    }
}

impl std::error::Error for HandshakeError {}

/// The local program asked for something the protocol does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsageError {
    /// The connection has sent its close frame; no more frames may follow (RFC 6455 §5.5.1).
    AlreadyClosing,
    /// A ping or pong payload over 125 bytes.
    ControlPayloadTooLong(usize),
    /// A close code that may not be sent (1005, 1006, 1015, reserved ranges).
    InvalidCloseCode(u16),
    /// A whole message was sent while a fragmented one is still open, or a
    /// fragment was sent with no message open of that kind.
    FragmentState(&'static str),
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::AlreadyClosing => f.write_str("connection is closing"),
            UsageError::ControlPayloadTooLong(n) => {
                write!(f, "control payload of {n} bytes exceeds 125")
            }
            UsageError::InvalidCloseCode(code) => write!(f, "close code {code} may not be sent"),
            UsageError::FragmentState(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for UsageError {}

/// A configuration value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub(crate) String);

impl ConfigError {
    /// A configuration error explaining which value is wrong and why.
    pub fn new(why: impl Into<String>) -> Self {
        ConfigError(why.into())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}
