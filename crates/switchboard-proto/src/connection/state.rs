//! The pieces of a connection's receive state that the connection holds and
//! the receive path fills in: the frame and message under way, and the
//! compression agreed on.

use bytes::BytesMut;

use crate::budget::Holding;
use crate::deflate::{Deflater, Inflater};
use crate::frame::FrameHeader;
use crate::message::MessageKind;
use crate::utf8::Utf8Validator;

/// The message being received.
#[derive(Debug)]
pub(crate) struct Inbound {
    pub(crate) kind: MessageKind,
    /// Assembled fragments; unused for single-frame messages and when streaming.
    pub(crate) buf: BytesMut,
    pub(crate) size: u64,
    pub(crate) fragments: usize,
    pub(crate) streaming: bool,
    /// Its size limit: `max_message_size`, or that of streamed binary
    /// messages ([`super::Connection::set_binary_streaming`]).
    pub(crate) max_size: usize,
    pub(crate) validator: Utf8Validator,
    /// RSV1 was set on the first frame: the payload is deflated (RFC 7692 §6).
    pub(crate) compressed: bool,
    /// Bytes inflated so far, bounded by `max_message_size`.
    pub(crate) inflated: usize,
    /// What the message holds of the shared message budget.
    pub(crate) held: Holding,
}

/// The negotiated permessage-deflate state of a connection.
#[derive(Debug)]
pub(crate) struct Compression {
    pub(crate) deflater: Deflater,
    pub(crate) inflater: Inflater,
    pub(crate) threshold: usize,
}

/// The frame being received: its header, and how much of its payload is
/// already unmasked (and validated, for text) in the input buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PartialFrame {
    pub(crate) header: FrameHeader,
    pub(crate) done: usize,
}
