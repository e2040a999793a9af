//! Compressing and inflating messages (RFC 7692 §7.2).
//!
//! A message is compressed with a sync flush and the trailing
//! `00 00 ff ff` removed (§7.2.1); the receiver appends it back before
//! inflating (§7.2.2). Without context takeover the zlib state is borrowed
//! from a per-thread pool for the length of one message, so that a
//! connection holds none between messages.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The tail a sync flush leaves, removed on the wire.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// How many idle zlib states a thread keeps for reuse.
const POOL_SIZE: usize = 4;

/// zlib cannot compress with a 256-byte window (`windowBits` 8) and uses 9
/// instead; its longest match distance with 9 is 250 bytes, which a peer
/// inflating with a 256-byte window still accepts.
fn zlib_window(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

thread_local! {
    static COMPRESSORS: RefCell<Vec<(u32, u8, Compress)>> = const { RefCell::new(Vec::new()) };
    static INFLATERS: RefCell<Vec<Decompress>> = const { RefCell::new(Vec::new()) };
}

/// The compressing side of a connection.
#[derive(Debug)]
pub struct Deflater {
    level: u32,
    window_bits: u8,
    no_context_takeover: bool,
    /// The state kept between messages with context takeover; allocated on
    /// the first message.
    own: Option<Box<Compress>>,
}

impl Deflater {
    /// A deflater; nothing is allocated until the first message.
    pub fn new(level: u32, window_bits: u8, no_context_takeover: bool) -> Self {
        Deflater {
            level,
            window_bits: zlib_window(window_bits),
            no_context_takeover,
            own: None,
        }
    }

    /// Compresses a whole message into `out` (appended), without the tail.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.no_context_takeover {
            let (level, bits) = (self.level, self.window_bits);
            let mut compressor = take_compressor(level, bits);
            run_compress(&mut compressor, input, out);
            compressor.reset();
            give_compressor(level, bits, compressor);
        } else {
            let (level, bits) = (self.level, self.window_bits);
            let compressor = self
                .own
                .get_or_insert_with(|| Box::new(new_compressor(level, bits)));
            run_compress(compressor, input, out);
        }
    }

    /// Whether this deflater holds zlib state between messages.
    pub fn holds_state(&self) -> bool {
        self.own.is_some()
    }
}

fn new_compressor(level: u32, bits: u8) -> Compress {
    Compress::new_with_window_bits(Compression::new(level), false, bits)
}

fn take_compressor(level: u32, bits: u8) -> Compress {
    COMPRESSORS
        .with(|pool| {
            let mut pool = pool.borrow_mut();
            let index = pool
                .iter()
                .position(|(l, b, _)| *l == level && *b == bits)?;
            Some(pool.swap_remove(index).2)
        })
        .unwrap_or_else(|| new_compressor(level, bits))
}

fn give_compressor(level: u32, bits: u8, compressor: Compress) {
    COMPRESSORS.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOL_SIZE {
            pool.push((level, bits, compressor));
        }
    });
}

fn run_compress(compressor: &mut Compress, input: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    let mut consumed = 0;
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(input.len() / 2 + 64);
        }
        let before_in = compressor.total_in();
        let before_out = compressor.total_out();
        // An error here means a corrupted zlib state, which our own use
        // cannot produce; stop rather than loop.
        if compressor
            .compress_vec(&input[consumed..], out, FlushCompress::Sync)
            .is_err()
        {
            break;
        }
        consumed += (compressor.total_in() - before_in) as usize;
        let produced = (compressor.total_out() - before_out) as usize;
        let flushed = consumed == input.len() && out.len() - start >= 4 && out.ends_with(&TAIL);
        if flushed && out.capacity() > out.len() {
            break;
        }
        if produced == 0 && compressor.total_in() == before_in && out.capacity() > out.len() {
            break;
        }
    }
    if out.len() - start >= TAIL.len() && out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
    if out.len() == start {
        // Nothing to flush (an empty message after another, with context
        // takeover): zlib writes no block at all, and an empty payload would
        // leave the peer's inflater inside the tail it appends, breaking the
        // next message. Send an empty stored block instead, which without
        // its tail is the single byte 0x00 (RFC 7692 §7.2.3.6).
        out.push(0x00);
    }
}

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InflateError {
    /// The inflated message would exceed the limit (a decompression bomb, or
    /// just too large): close with 1009.
    TooLarge {
        /// The limit that was hit.
        limit: usize,
    },
    /// The data is not a valid deflate stream: close with 1007.
    Corrupt(String),
}

/// The inflating side of a connection.
#[derive(Debug)]
pub struct Inflater {
    window_bits: u8,
    no_context_takeover: bool,
    /// With context takeover, the state kept between messages; without, the
    /// state borrowed for the message being received.
    state: Option<Box<Decompress>>,
}

impl Inflater {
    /// An inflater; nothing is allocated until the first compressed message.
    pub fn new(window_bits: u8, no_context_takeover: bool) -> Self {
        Inflater {
            window_bits: zlib_window(window_bits),
            no_context_takeover,
            state: None,
        }
    }

    /// Inflates one frame's payload of a compressed message, appending to
    /// `out`; `fin` marks the message's last frame. Fails as soon as `out`
    /// would grow past `limit`, before the excess is produced.
    pub fn inflate(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        let no_context_takeover = self.no_context_takeover;
        let bits = self.window_bits;
        let state = self.state.get_or_insert_with(|| {
            Box::new(if no_context_takeover {
                take_inflater()
            } else {
                Decompress::new_with_window_bits(false, bits)
            })
        });
        let mut result = run_inflate(state, input, out, limit);
        if result.is_ok() && fin {
            result = run_inflate(state, &TAIL, out, limit);
        }
        if fin || result.is_err() {
            self.end_message();
        }
        result
    }

    /// Releases a borrowed state at the end of a message (or of the connection).
    fn end_message(&mut self) {
        if self.no_context_takeover {
            if let Some(mut state) = self.state.take() {
                state.reset(false);
                give_inflater(*state);
            }
        }
    }

    /// Whether this inflater holds zlib state right now.
    pub fn holds_state(&self) -> bool {
        self.state.is_some()
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        self.end_message();
    }
}

fn take_inflater() -> Decompress {
    INFLATERS
        .with(|pool| pool.borrow_mut().pop())
        // Inflating with the largest window accepts a stream made with any
        // smaller one, so one pooled kind serves every connection.
        .unwrap_or_else(|| Decompress::new_with_window_bits(false, 15))
}

fn give_inflater(state: Decompress) {
    INFLATERS.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOL_SIZE {
            pool.push(state);
        }
    });
}

fn run_inflate(
    state: &mut Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), InflateError> {
    let mut consumed = 0;
    loop {
        let room = limit.saturating_sub(out.len());
        // Always offer at least one byte more than the limit allows, so that
        // output past the limit is detected rather than mistaken for a stall.
        let chunk = (input.len() - consumed)
            .saturating_mul(4)
            .clamp(1024, 256 * 1024)
            .min(room.saturating_add(1));
        let spare_end = out.len() + chunk;
        let before_in = state.total_in();
        let before_out = state.total_out();
        let status = inflate_into(state, &input[consumed..], out, spare_end);
        let status = status.map_err(|e| InflateError::Corrupt(e.to_string()))?;
        consumed += (state.total_in() - before_in) as usize;
        let produced = (state.total_out() - before_out) as usize;
        if out.len() > limit {
            return Err(InflateError::TooLarge { limit });
        }
        let input_done = consumed == input.len();
        if matches!(status, Status::StreamEnd) {
            return Ok(());
        }
        if input_done && out.len() < spare_end {
            return Ok(());
        }
        if produced == 0 && state.total_in() == before_in {
            if input_done {
                return Ok(());
            }
            return Err(InflateError::Corrupt("inflate made no progress".into()));
        }
    }
}

/// Inflates into `out`, writing at most up to length `end`.
fn inflate_into(
    state: &mut Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
    end: usize,
) -> Result<Status, flate2::DecompressError> {
    let len = out.len();
    out.resize(end, 0);
    let before = state.total_out();
    let status = state.decompress(input, &mut out[len..end], FlushDecompress::Sync);
    let produced = (state.total_out() - before) as usize;
    out.truncate(len + produced);
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(deflater: &mut Deflater, inflater: &mut Inflater, message: &[u8]) -> Vec<u8> {
        let mut compressed = Vec::new();
        deflater.compress(message, &mut compressed);
        let mut out = Vec::new();
        inflater
            .inflate(&compressed, true, &mut out, usize::MAX)
            .unwrap();
        out
    }

    #[test]
    fn rfc_7692_hello_example() {
        // RFC 7692 §7.2.3.1: "Hello" compressed without context takeover.
        let mut deflater = Deflater::new(6, 15, true);
        let mut out = Vec::new();
        deflater.compress(b"Hello", &mut out);
        assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        let mut inflater = Inflater::new(15, true);
        let mut plain = Vec::new();
        inflater.inflate(&out, true, &mut plain, 100).unwrap();
        assert_eq!(plain, b"Hello");
        // §7.2.3.2: the same message again with context takeover shrinks.
        let mut deflater = Deflater::new(6, 15, false);
        let mut first = Vec::new();
        deflater.compress(b"Hello", &mut first);
        let mut second = Vec::new();
        deflater.compress(b"Hello", &mut second);
        assert!(second.len() < first.len());
    }

    #[test]
    fn context_takeover_and_not_roundtrip() {
        for (takeover, bits) in [(false, 15), (true, 15), (false, 9), (true, 8)] {
            let mut deflater = Deflater::new(6, bits, !takeover);
            let mut inflater = Inflater::new(bits, !takeover);
            for i in 0..20 {
                let message =
                    format!("{{\"event\":\"chat\",\"data\":{{\"text\":\"message number {i}\"}}}}")
                        .repeat(i + 1);
                assert_eq!(
                    roundtrip(&mut deflater, &mut inflater, message.as_bytes()),
                    message.as_bytes()
                );
            }
            assert_eq!(inflater.holds_state(), takeover);
            assert_eq!(deflater.holds_state(), takeover);
        }
    }

    #[test]
    fn an_empty_message_between_others_keeps_the_context_intact() {
        for takeover in [false, true] {
            let mut deflater = Deflater::new(6, 15, !takeover);
            let mut inflater = Inflater::new(15, !takeover);
            for message in [&b"hello hello"[..], b"", b"", b"hello again"] {
                let mut compressed = Vec::new();
                deflater.compress(message, &mut compressed);
                assert!(!compressed.is_empty(), "takeover {takeover}: {message:?}");
                let mut out = Vec::new();
                inflater
                    .inflate(&compressed, true, &mut out, usize::MAX)
                    .unwrap();
                assert_eq!(out, message, "takeover {takeover}");
            }
        }
    }

    #[test]
    fn empty_and_incompressible_messages() {
        let mut deflater = Deflater::new(6, 15, true);
        let mut inflater = Inflater::new(15, true);
        assert_eq!(roundtrip(&mut deflater, &mut inflater, b""), b"");
        let noise: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert_eq!(roundtrip(&mut deflater, &mut inflater, &noise), noise);
    }

    #[test]
    fn bomb_is_stopped_at_the_limit() {
        let mut deflater = Deflater::new(9, 15, true);
        let zeros = vec![0u8; 10 << 20];
        let mut compressed = Vec::new();
        deflater.compress(&zeros, &mut compressed);
        assert!(compressed.len() < 20_000, "{}", compressed.len());
        let mut inflater = Inflater::new(15, true);
        let mut out = Vec::new();
        let error = inflater
            .inflate(&compressed, true, &mut out, 1 << 20)
            .unwrap_err();
        assert_eq!(error, InflateError::TooLarge { limit: 1 << 20 });
        assert!(out.len() <= (1 << 20) + 1);
        assert!(!inflater.holds_state(), "state returned after the failure");
    }

    #[test]
    fn fragmented_input_inflates_across_frames() {
        let mut deflater = Deflater::new(6, 15, true);
        let message = b"fragmented compressed message, fragmented compressed message".repeat(50);
        let mut compressed = Vec::new();
        deflater.compress(&message, &mut compressed);
        let mut inflater = Inflater::new(15, true);
        let mut out = Vec::new();
        let pieces: Vec<&[u8]> = compressed.chunks(7).collect();
        for (i, piece) in pieces.iter().enumerate() {
            inflater
                .inflate(piece, i + 1 == pieces.len(), &mut out, usize::MAX)
                .unwrap();
        }
        assert_eq!(out, message);
    }

    #[test]
    fn garbage_is_corrupt() {
        let mut inflater = Inflater::new(15, true);
        let mut out = Vec::new();
        let error = inflater
            .inflate(&[0xff; 32], true, &mut out, 1000)
            .unwrap_err();
        assert!(matches!(error, InflateError::Corrupt(_)), "{error:?}");
    }
}
