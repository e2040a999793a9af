//! UTF-8 validation, whole and incremental.
//!
//! A fragmented text message is validated as its fragments (and the pieces of a
//! frame) arrive, so that a connection sending invalid text is failed at the
//! first bad byte, not after the whole message (RFC 6455 §8.1 and the
//! "fail fast" cases of the Autobahn TestSuite).

/// Validates a complete text.
pub fn validate(bytes: &[u8]) -> Result<&str, InvalidUtf8> {
    simdutf8::basic::from_utf8(bytes).map_err(|_| InvalidUtf8)
}

/// The input was not UTF-8, and no continuation could make it so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Validates a text that arrives in pieces.
///
/// Holds at most three bytes: the start of a code point cut by a piece boundary.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    partial: [u8; 4],
    partial_len: u8,
}

impl Utf8Validator {
    /// Feeds the next piece; fails as soon as the text so far cannot be the
    /// start of valid UTF-8.
    pub fn feed(&mut self, mut piece: &[u8]) -> Result<(), InvalidUtf8> {
        if self.partial_len > 0 {
            piece = self.complete_partial(piece)?;
            if self.partial_len > 0 {
                return Ok(());
            }
        }
        match simdutf8::compat::from_utf8(piece) {
            Ok(_) => Ok(()),
            Err(error) if error.error_len().is_some() => Err(InvalidUtf8),
            Err(error) => {
                let tail = &piece[error.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// Declares the text complete; fails if it ended inside a code point.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let incomplete = self.partial_len > 0;
        self.partial_len = 0;
        if incomplete {
            Err(InvalidUtf8)
        } else {
            Ok(())
        }
    }

    /// Tops up the held partial code point from `piece`; returns what is left
    /// of `piece` afterwards.
    fn complete_partial<'a>(&mut self, piece: &'a [u8]) -> Result<&'a [u8], InvalidUtf8> {
        let have = self.partial_len as usize;
        let need = match self.partial[0] {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            _ => 4,
        };
        let take = (need - have).min(piece.len());
        self.partial[have..have + take].copy_from_slice(&piece[..take]);
        let filled = have + take;
        match simdutf8::compat::from_utf8(&self.partial[..filled]) {
            Ok(_) => {
                self.partial_len = 0;
                Ok(&piece[take..])
            }
            Err(error) if error.error_len().is_some() => Err(InvalidUtf8),
            Err(_) => {
                self.partial_len = filled as u8;
                Ok(&piece[take..])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(pieces: &[&[u8]]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::default();
        for piece in pieces {
            v.feed(piece)?;
        }
        v.finish()
    }

    #[test]
    fn multibyte_split_at_every_position_is_valid() {
        let text = "κόσμε 𝄞 €uro".as_bytes();
        for i in 0..=text.len() {
            for j in i..=text.len() {
                assert_eq!(
                    feed_all(&[&text[..i], &text[i..j], &text[j..]]),
                    Ok(()),
                    "{i} {j}"
                );
            }
        }
    }

    #[test]
    fn byte_at_a_time_matches_std() {
        let samples: [&[u8]; 6] = [
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"\xc0\xaf",
            b"abc\xe2\x82",
            b"\xf0\x9f\x98\x80",
        ];
        for sample in samples {
            let pieces: Vec<&[u8]> = sample.chunks(1).collect();
            assert_eq!(
                feed_all(&pieces).is_ok(),
                std::str::from_utf8(sample).is_ok(),
                "{sample:?}"
            );
        }
    }

    #[test]
    fn fails_at_first_bad_byte_before_the_end() {
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(b"\xce\xba\xe1"), Ok(()));
        // 0xF4 0x90 can never start a valid code point: reject now.
        assert_eq!(v.feed(b"\xbd\xb9\xf4\x90"), Err(InvalidUtf8));
    }
}
