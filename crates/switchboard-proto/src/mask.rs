//! Payload masking (RFC 6455 §5.3), in place and a machine word at a time.
//!
//! Masking XORs each payload byte with one of the four key bytes, cycling. The
//! fast path XORs 32 bytes per step with four `u64` lanes, which the compiler
//! turns into vector instructions; [`apply_mask_scalar`] is the reference it is
//! tested against.

/// XORs `buf` with `key`, as if `buf` started `offset` bytes into the payload.
///
/// `offset` lets a payload be unmasked piece by piece as it arrives.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let mut key = key;
    key.rotate_left(offset % 4);
    if buf.len() < 16 {
        return apply_mask_scalar(buf, key, 0);
    }
    let lane = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut blocks = buf.chunks_exact_mut(32);
    for block in &mut blocks {
        for word in block.chunks_exact_mut(8) {
            xor_word(word, lane);
        }
    }
    let rest = blocks.into_remainder();
    let mut words = rest.chunks_exact_mut(8);
    for word in &mut words {
        xor_word(word, lane);
    }
    // Every block and word above is a multiple of 4 bytes long, so the tail
    // starts at the same key phase as the buffer.
    apply_mask_scalar(words.into_remainder(), key, 0);
}

#[inline(always)]
fn xor_word(word: &mut [u8], lane: u64) {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(word);
    let masked = u64::from_ne_bytes(bytes) ^ lane;
    word.copy_from_slice(&masked.to_ne_bytes());
}

/// The byte-at-a-time definition of masking, kept as the reference.
pub fn apply_mask_scalar(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(i + offset) % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_matches_scalar_at_every_alignment_length_and_offset() {
        let key = [0x12, 0x34, 0x56, 0x78];
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..8 {
            for len in 0..(data.len() - start) {
                for offset in 0..4 {
                    let mut fast = data[start..start + len].to_vec();
                    let mut slow = fast.clone();
                    apply_mask(&mut fast, key, offset);
                    apply_mask_scalar(&mut slow, key, offset);
                    assert_eq!(fast, slow, "start {start} len {len} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn piecewise_masking_equals_whole() {
        let key = [1, 2, 3, 4];
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        let mut pieces = data.clone();
        let (a, rest) = pieces.split_at_mut(7);
        let (b, c) = rest.split_at_mut(45);
        apply_mask(a, key, 0);
        apply_mask(b, key, 7);
        apply_mask(c, key, 52);
        assert_eq!(whole, pieces);
    }

    #[test]
    fn rfc_example_masked_hello() {
        // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
        let mut payload = *b"Hello";
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(payload, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }
}
