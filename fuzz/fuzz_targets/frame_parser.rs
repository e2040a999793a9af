//! Arbitrary bytes into a server and a client connection, whole and in pieces.
//!
//! Input: one control byte, then the byte stream.
//! - bit 0: streaming mode (fragments instead of assembled messages);
//! - bit 1: small limits, so that frame, message and fragment limits are hit;
//! - bit 2: the transport ends right after the last read, before the events
//!   of that read are polled (the two replays may then legitimately differ,
//!   so only the other checks apply);
//! - bits 6–7: the largest read size (1, 3, 17 or 300 bytes); the sizes
//!   themselves follow from the whole control byte.
//!
//! Checks: no panic; the same events whether the stream arrives whole or in
//! pieces; at most one `Closed` event and none after it; everything the
//! connection sends parses as well-formed frames with the role's masking.
#![no_main]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchboard_proto::frame::{FrameHeader, OpCode};
use switchboard_proto::{CloseCode, Config, Connection, Event, Role};

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    for role in [Role::Server, Role::Client] {
        let whole = run(role, control, stream, false);
        let pieces = run(role, control, stream, true);
        if control & 4 == 0 {
            assert_eq!(
                whole, pieces,
                "{role:?}: whole and piecewise replays differ"
            );
        }
    }
});

/// What a run produced: events, and the frames sent back (opcode, FIN, payload).
type Outcome = (Vec<Event>, Vec<(OpCode, bool, Vec<u8>)>, bool);

fn config(control: u8) -> Config {
    let mut config = Config::default();
    if control & 2 != 0 {
        config
            .max_frame_size(4096)
            .max_message_size(8192)
            .max_fragments(16);
    }
    config
}

/// Read sizes from 1 to a limit picked by the control byte.
fn read_sizes(control: u8) -> impl Iterator<Item = usize> {
    let limit = [1u32, 3, 17, 300][usize::from(control >> 6)];
    let mut state = u32::from(control) | 0x9E37_0000;
    std::iter::repeat_with(move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state % limit + 1) as usize
    })
}

fn run(role: Role, control: u8, stream: &[u8], piecewise: bool) -> Outcome {
    let start = Instant::now();
    let mut conn = Connection::new(role, config(control), start);
    conn.set_streaming(control & 1 != 0);
    let mut events = Vec::new();
    let mut sent = Vec::new();
    let mut buf = BytesMut::new();
    let mut rest = stream;
    let mut sizes = read_sizes(control);
    while !rest.is_empty() {
        let take = if piecewise {
            sizes.next().unwrap_or(1).min(rest.len())
        } else {
            rest.len()
        };
        buf.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        conn.handle_bytes(&mut buf, start);
        if rest.is_empty() && control & 4 != 0 {
            conn.handle_eof();
        }
        drain(&mut conn, &mut events, &mut sent);
    }
    // Whatever state it is in, the connection must take commands, a timeout
    // and EOF without panicking, and still end with a single `Closed`.
    let _ = conn.send_text("reply");
    let _ = conn.ping(b"p");
    let _ = conn.close(
        start,
        switchboard_proto::CloseFrame::new(CloseCode::NORMAL, "end"),
    );
    drain(&mut conn, &mut events, &mut sent);
    conn.handle_timeout(start + Duration::from_secs(3600));
    conn.handle_eof();
    drain(&mut conn, &mut events, &mut sent);
    assert!(conn.is_finished());
    assert_eq!(conn.pending_send_bytes(), 0);

    let closed: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, event)| matches!(event, Event::Closed(_)))
        .map(|(i, _)| i)
        .collect();
    assert!(
        closed.len() == 1 && closed[0] + 1 == events.len(),
        "exactly one Closed, and last: {events:?}"
    );
    let frames = decode(role, &sent);
    (events, frames, conn.is_finished())
}

fn drain(conn: &mut Connection, events: &mut Vec<Event>, sent: &mut Vec<u8>) {
    while let Some(event) = conn.poll_event() {
        events.push(event);
    }
    while let Some(chunk) = conn.poll_transmit() {
        sent.extend_from_slice(&chunk);
    }
}

/// Parses what the connection sent; it must be whole, well-formed frames.
fn decode(role: Role, mut bytes: &[u8]) -> Vec<(OpCode, bool, Vec<u8>)> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (header, len) = FrameHeader::parse(bytes)
            .expect("sent a malformed header")
            .expect("sent a truncated header");
        assert_eq!(header.mask.is_some(), role == Role::Client, "masking");
        assert!(!header.rsv1 && !header.rsv2 && !header.rsv3);
        let end = len + header.payload_len as usize;
        assert!(end <= bytes.len(), "sent a truncated payload");
        let mut payload = bytes[len..end].to_vec();
        if let Some(key) = header.mask {
            switchboard_proto::mask::apply_mask_scalar(&mut payload, key, 0);
        }
        if header.opcode == OpCode::Close {
            switchboard_proto::CloseFrame::parse(&payload).expect("sent a bad close frame");
        }
        frames.push((header.opcode, header.fin, payload));
        bytes = &bytes[end..];
    }
    frames
}
