//! The receive path: frame headers checked against the connection's state,
//! payloads unmasked and validated as they arrive, messages assembled (or
//! streamed) and inflated.

use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};

use super::state::{Inbound, PartialFrame};
use super::{CloseCause, Connection, Event, Role, State};
use crate::budget::Holding;
use crate::close::CloseFrame;
use crate::config::Config;
use crate::deflate::codec::InflateError;
use crate::deflate::Inflater;
use crate::error::ProtocolError;
use crate::frame::{FrameHeader, OpCode};
use crate::mask::apply_mask;
use crate::message::{Fragment, Message, MessageKind, Utf8Bytes};
use crate::utf8::Utf8Validator;

impl Connection {
    /// Reads at most one frame from `buf`; `Ok(false)` means more bytes are needed.
    pub(super) fn read_frame(
        &mut self,
        buf: &mut BytesMut,
        now: Instant,
    ) -> Result<bool, ProtocolError> {
        let mut frame = match self.frame {
            Some(frame) => frame,
            None => {
                let Some((header, header_len)) = FrameHeader::parse(buf)? else {
                    return Ok(false);
                };
                self.check_header(&header)?;
                buf.advance(header_len);
                PartialFrame { header, done: 0 }
            }
        };
        let len = frame.header.payload_len as usize;
        let available = buf.len().min(len);
        if available > frame.done {
            self.unmask_and_validate(&mut buf[..available], &frame)?;
            frame.done = available;
        }
        if frame.done < len {
            self.frame = Some(frame);
            return Ok(false);
        }
        self.frame = None;
        let payload = buf.split_to(len).freeze();
        self.on_frame(frame.header, payload, now)?;
        Ok(true)
    }

    /// The checks that need the connection's state (RFC 6455 §5.1, §5.2, §5.4),
    /// made as soon as a header is complete so that a bad frame is refused
    /// before its payload is read. Data frames open or continue `inbound`.
    pub(super) fn check_header(&mut self, header: &FrameHeader) -> Result<(), ProtocolError> {
        // RSV1 marks a compressed message, only with permessage-deflate and
        // only on a message's first frame (RFC 7692 §6); RSV2/3 never.
        let rsv1_allowed =
            self.compression.is_some() && matches!(header.opcode, OpCode::Text | OpCode::Binary);
        if (header.rsv1 && !rsv1_allowed) || header.rsv2 || header.rsv3 {
            return Err(ProtocolError::ReservedBits);
        }
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if header.payload_len > self.config.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooLarge {
                size: header.payload_len,
                max: self.config.max_frame_size,
            });
        }
        let kind = match header.opcode {
            OpCode::Text => MessageKind::Text,
            OpCode::Binary => MessageKind::Binary,
            OpCode::Continuation => {
                let inbound = self
                    .inbound
                    .as_mut()
                    .ok_or(ProtocolError::UnexpectedContinuation)?;
                return grow_message(inbound, header.payload_len, &self.config);
            }
            _ => return Ok(()),
        };
        if self.inbound.is_some() {
            return Err(ProtocolError::ExpectedContinuation);
        }
        // Binary messages may be streamed with a limit of their own.
        let binary_stream = self
            .binary_stream_limit
            .filter(|_| kind == MessageKind::Binary);
        let mut inbound = Inbound {
            kind,
            buf: BytesMut::new(),
            size: 0,
            fragments: 0,
            streaming: self.streaming || binary_stream.is_some(),
            max_size: binary_stream.unwrap_or(self.config.max_message_size),
            validator: Utf8Validator::default(),
            compressed: header.rsv1,
            inflated: 0,
            held: Holding::new(self.config.message_budget.as_ref()),
        };
        grow_message(&mut inbound, header.payload_len, &self.config)?;
        self.inbound = Some(inbound);
        Ok(())
    }

    /// Unmasks the newly arrived part of the payload in place and, for text,
    /// validates it, so that invalid UTF-8 fails the connection at once.
    pub(super) fn unmask_and_validate(
        &mut self,
        payload: &mut [u8],
        frame: &PartialFrame,
    ) -> Result<(), ProtocolError> {
        let fresh = &mut payload[frame.done..];
        if let Some(key) = frame.header.mask {
            apply_mask(fresh, key, frame.done);
        }
        if frame.header.opcode.is_control() {
            return Ok(());
        }
        if let Some(inbound) = self.inbound.as_mut() {
            // Compressed text is validated once inflated.
            if inbound.kind == MessageKind::Text && !inbound.compressed {
                inbound
                    .validator
                    .feed(fresh)
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
        }
        Ok(())
    }

    pub(super) fn on_frame(
        &mut self,
        header: FrameHeader,
        payload: Bytes,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        match header.opcode {
            OpCode::Ping => {
                if self.sent_close.is_none() {
                    self.queue_control(OpCode::Pong, &payload);
                }
                self.events.push_back(Event::Ping(payload));
            }
            OpCode::Pong => self.events.push_back(Event::Pong(payload)),
            OpCode::Close => self.on_close_frame(&payload, now)?,
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                self.on_data_frame(header.fin, payload, now)?
            }
        }
        Ok(())
    }

    pub(super) fn on_data_frame(
        &mut self,
        fin: bool,
        payload: Bytes,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        let Some(inbound) = self.inbound.as_mut() else {
            return Err(ProtocolError::UnexpectedContinuation);
        };
        let payload = match self.compression.as_mut() {
            Some(compression) if inbound.compressed => {
                inflate_frame(inbound, &mut compression.inflater, &payload, fin)?
            }
            _ => payload,
        };
        if fin && inbound.kind == MessageKind::Text {
            inbound
                .validator
                .finish()
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        if inbound.streaming {
            let fragment = Fragment {
                kind: inbound.kind,
                payload,
                // Headers are checked one frame at a time, so while the first
                // frame completes it is the only one counted.
                first: inbound.fragments == 1,
                fin,
            };
            self.events.push_back(Event::Fragment(fragment));
        } else if !fin {
            inbound.buf.extend_from_slice(&payload);
            return Ok(());
        } else {
            let kind = inbound.kind;
            let whole = if inbound.buf.is_empty() {
                payload
            } else {
                inbound.buf.extend_from_slice(&payload);
                std::mem::take(&mut inbound.buf).freeze()
            };
            let message = match kind {
                MessageKind::Text => Message::Text(Utf8Bytes::from_validated(whole)),
                MessageKind::Binary => Message::Binary(whole),
            };
            self.events.push_back(Event::Message(message));
        }
        if fin {
            self.inbound = None;
            self.timers.last_data = now;
        }
        Ok(())
    }

    pub(super) fn on_close_frame(
        &mut self,
        payload: &[u8],
        now: Instant,
    ) -> Result<(), ProtocolError> {
        let received = CloseFrame::parse(payload)?;
        if self.state == State::Open && !self.events.is_empty() {
            // Messages came before the close in the same input: they are
            // delivered first and the close is answered once they have been
            // polled, so the application's replies to them still go out, before
            // our close frame (RFC 6455 §5.5.1 lets an endpoint delay its close
            // until its current message is sent).
            self.pending_close = Some(Box::new((received, now)));
            return Ok(());
        }
        self.accept_close(received, now);
        Ok(())
    }

    /// Completes the closing handshake the peer's close frame started or ended.
    pub(super) fn accept_close(&mut self, received: CloseFrame, now: Instant) {
        if self.state == State::Open {
            // RFC 6455 §5.5.1: answer with a close frame, echoing the code
            // (and the reason, so the peer sees its own words come back).
            let reply = received.clone();
            self.queue_control(OpCode::Close, &reply.encode());
            self.sent_close = Some(Box::new(reply));
        }
        self.finish(Some(received), CloseCause::Handshake);
        self.close_transport_after_handshake(now);
    }

    /// RFC 6455 §7.1.1: the server closes the TCP connection first; a client
    /// waits for that, up to `close_timeout`.
    pub(super) fn close_transport_after_handshake(&mut self, now: Instant) {
        match self.role {
            Role::Server => self.transport_done = true,
            Role::Client => self.timers.close_started = Some(now),
        }
    }
}

/// Inflates one frame of a compressed message, bounding the inflated size by
/// `max_message_size` (decompression bombs close with 1009) and validating
/// inflated text as it comes.
fn inflate_frame(
    inbound: &mut Inbound,
    inflater: &mut Inflater,
    payload: &[u8],
    fin: bool,
) -> Result<Bytes, ProtocolError> {
    let limit = inbound.max_size.saturating_sub(inbound.inflated);
    let mut out = Vec::new();
    inflater
        .inflate(payload, fin, &mut out, limit)
        .map_err(|error| match error {
            InflateError::TooLarge { .. } => ProtocolError::MessageTooLarge {
                size: (inbound.inflated + out.len()) as u64,
                max: inbound.max_size,
            },
            InflateError::Corrupt(why) => ProtocolError::InvalidCompressedData(why),
        })?;
    inbound.inflated += out.len();
    hold(inbound)?;
    if inbound.kind == MessageKind::Text {
        inbound
            .validator
            .feed(&out)
            .map_err(|_| ProtocolError::InvalidUtf8)?;
    }
    Ok(Bytes::from(out))
}

/// Accounts for one more frame of `payload_len` bytes in `inbound`, enforcing
/// its size limit (`max_message_size`, or a streamed binary message's) and
/// `max_fragments` before the payload is read.
fn grow_message(
    inbound: &mut Inbound,
    payload_len: u64,
    config: &Config,
) -> Result<(), ProtocolError> {
    inbound.size += payload_len;
    inbound.fragments += 1;
    if inbound.size > inbound.max_size as u64 {
        return Err(ProtocolError::MessageTooLarge {
            size: inbound.size,
            max: inbound.max_size,
        });
    }
    if inbound.fragments > config.max_fragments {
        return Err(ProtocolError::TooManyFragments {
            max: config.max_fragments,
        });
    }
    hold(inbound)
}

/// Draws what the message may hold on the shared budget: the frames
/// announced (buffered as they arrive) and, when compressed, what they
/// inflated to.
fn hold(inbound: &mut Inbound) -> Result<(), ProtocolError> {
    if inbound.streaming {
        // Fragments are handed on as they come, not kept.
        return Ok(());
    }
    let size = inbound.size.saturating_add(inbound.inflated as u64);
    let total = usize::try_from(size).unwrap_or(usize::MAX);
    if inbound.held.grow_to(total) {
        Ok(())
    } else {
        Err(ProtocolError::OverBudget { size })
    }
}
