//! One segment of an address pattern (`sensor*`, `c?m*`), matched in time
//! linear in the segment's length.
//!
//! A glob is split at its `*`s into pieces. The first piece must match at
//! the start, the last at the end, and the ones between are found left to
//! right, each at its leftmost place after the one before: taking the
//! leftmost place never loses a match, so no backtracking is needed. A
//! literal piece is found with `memchr::memmem` (linear; the subscription
//! tree keeps a prepared searcher per piece), a piece with `?` (any one
//! byte) with the shift-and algorithm over a 64-bit state, which is why such
//! a piece may be at most 64 bytes long.
//!
//! The naive matcher this replaces backtracked on every `*`, and a
//! subscriber could make one publish cost the square of the address length
//! per pattern.

use memchr::memmem;

/// The longest piece (the text between two `*`s) that may contain `?`.
pub const MAX_WILDCARD_PIECE: usize = 64;

/// A compiled segment glob.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Glob {
    /// The pieces between `*`s, in order; `starred` tells whether there was
    /// at least one `*` (without one, the only piece is the whole segment).
    pieces: Vec<Piece>,
    starred: bool,
    /// The ASCII bytes a matching text must contain, and its least length:
    /// most texts are turned away by these two before any search.
    needs: ByteSet,
    min_len: usize,
}

/// Which ASCII bytes occur in a text, one bit each.
pub type ByteSet = u128;

/// The ASCII bytes of `text`, as a [`ByteSet`].
pub fn byte_set(text: &[u8]) -> ByteSet {
    text.iter()
        .filter(|b| b.is_ascii())
        .fold(0, |set, &b| set | 1 << b)
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Piece {
    bytes: Box<[u8]>,
    /// Whether the piece contains `?`.
    wild: bool,
    /// For a piece with `?`: the positions of each byte value it holds, as
    /// bits, sorted by byte, and the positions of its `?`s. Only the values
    /// present are kept: 256 masks per piece would cost more memory than
    /// the subscribed patterns themselves.
    masks: Box<[(u8, u64)]>,
    any: u64,
}

impl Glob {
    /// Compiles a segment; an error if a piece with `?` is too long.
    pub fn new(segment: &str) -> Result<Glob, String> {
        let pieces: Vec<Piece> = segment.split('*').map(Piece::new).collect();
        if let Some(long) = pieces
            .iter()
            .find(|p| p.wild && p.bytes.len() > MAX_WILDCARD_PIECE)
        {
            return Err(format!(
                "{:?}: a run with `?` between `*`s may be at most {MAX_WILDCARD_PIECE} bytes",
                String::from_utf8_lossy(&long.bytes)
            ));
        }
        let literal = segment.bytes().filter(|&b| b != b'*' && b != b'?');
        Ok(Glob {
            starred: pieces.len() > 1,
            needs: byte_set(&literal.collect::<Vec<u8>>()),
            min_len: pieces.iter().map(|p| p.bytes.len()).sum(),
            pieces,
        })
    }

    /// Whether the glob has a wildcard at all.
    pub fn is_literal(&self) -> bool {
        !self.starred && !self.pieces[0].wild
    }

    /// Whether `text` matches, in time linear in its length.
    pub fn matches(&self, text: &[u8]) -> bool {
        self.matches_with(text, byte_set(text))
    }

    /// Like [`Glob::matches`], given the bytes of `text` (computed once for
    /// the many globs tried against one address segment).
    pub fn matches_with(&self, text: &[u8], has: ByteSet) -> bool {
        self.matches_using(text, has, |_, piece, between| piece.find(between))
    }

    /// A form of the glob for the subscription tree, where one glob is tried
    /// against every publish: its literal pieces come with a prepared
    /// searcher, so that no search is set up per publish. (Patterns held
    /// per connection keep the lighter form: they are many, and rarely
    /// matched.)
    pub fn prepared(&self) -> PreparedGlob {
        let finders = self
            .pieces
            .iter()
            .map(|piece| (!piece.wild).then(|| memmem::Finder::new(&piece.bytes).into_owned()))
            .collect();
        PreparedGlob {
            glob: self.clone(),
            finders,
        }
    }

    /// The match, with `find` looking for middle piece `i` in a text.
    fn matches_using(
        &self,
        text: &[u8],
        has: ByteSet,
        find: impl Fn(usize, &Piece, &[u8]) -> Option<usize>,
    ) -> bool {
        if text.len() < self.min_len || self.needs & !has != 0 {
            return false;
        }
        let Some((first, rest)) = self.pieces.split_first() else {
            return text.is_empty();
        };
        if !self.starred {
            return text.len() == first.bytes.len() && first.matches_at(text);
        }
        // `split('*')` gives at least two pieces when there is a star.
        let (last, middle) = rest.split_last().expect("a starred glob has two pieces");
        let fixed = first.bytes.len() + last.bytes.len();
        if text.len() < fixed
            || !first.matches_at(text)
            || !last.matches_at(&text[text.len() - last.bytes.len()..])
        {
            return false;
        }
        let mut between = &text[first.bytes.len()..text.len() - last.bytes.len()];
        for (i, piece) in middle.iter().enumerate() {
            match find(i + 1, piece, between) {
                Some(end) => between = &between[end..],
                None => return false,
            }
        }
        true
    }
}

/// A [`Glob`] with a searcher ready for each literal piece.
#[derive(Clone, Debug)]
pub struct PreparedGlob {
    glob: Glob,
    finders: Vec<Option<memmem::Finder<'static>>>,
}

impl PreparedGlob {
    /// See [`Glob::matches_with`].
    pub fn matches_with(&self, text: &[u8], has: ByteSet) -> bool {
        self.glob
            .matches_using(text, has, |i, piece, between| match &self.finders[i] {
                Some(finder) => finder.find(between).map(|at| at + piece.bytes.len()),
                None => piece.find(between),
            })
    }
}

impl Piece {
    fn new(text: &str) -> Piece {
        let bytes: Box<[u8]> = text.as_bytes().into();
        let wild = text.contains('?');
        let (mut masks, mut any) = (Vec::new(), 0u64);
        if wild && bytes.len() <= MAX_WILDCARD_PIECE {
            for (i, &byte) in bytes.iter().enumerate() {
                if byte == b'?' {
                    any |= 1 << i;
                    continue;
                }
                match masks.binary_search_by_key(&byte, |&(b, _)| b) {
                    Ok(at) => masks[at].1 |= 1 << i,
                    Err(at) => masks.insert(at, (byte, 1 << i)),
                }
            }
        }
        Piece {
            bytes,
            wild,
            masks: masks.into(),
            any,
        }
    }

    /// Whether the piece matches the start of `text` (which is long enough).
    fn matches_at(&self, text: &[u8]) -> bool {
        if !self.wild {
            return text.starts_with(&self.bytes);
        }
        text.len() >= self.bytes.len()
            && self
                .bytes
                .iter()
                .zip(text)
                .all(|(&p, &t)| p == b'?' || p == t)
    }

    /// Where the leftmost occurrence of the piece in `text` ends.
    fn find(&self, text: &[u8]) -> Option<usize> {
        if self.bytes.is_empty() {
            return Some(0);
        }
        if !self.wild {
            return memmem::find(text, &self.bytes).map(|at| at + self.bytes.len());
        }
        self.shift_and(text)
    }

    /// The shift-and search: bit `i` of `state` says the piece's first
    /// `i + 1` bytes match the text ending here. One pass, no backtracking.
    fn shift_and(&self, text: &[u8]) -> Option<usize> {
        let last = 1u64 << (self.bytes.len() - 1);
        let mut state = 0u64;
        for (at, &byte) in text.iter().enumerate() {
            let here = match self.masks.binary_search_by_key(&byte, |&(b, _)| b) {
                Ok(i) => self.masks[i].1,
                Err(_) => 0,
            };
            state = ((state << 1) | 1) & (self.any | here);
            if state & last != 0 {
                return Some(at + 1);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(glob: &str, text: &str) -> bool {
        Glob::new(glob).unwrap().matches(text.as_bytes())
    }

    #[test]
    fn literal_star_and_question_mark() {
        assert!(m("abc", "abc"));
        assert!(!m("abc", "abcd"));
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("a*", "a"));
        assert!(m("*c", "abc"));
        assert!(!m("*c", "abd"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("a*b*c", "abc"));
        assert!(!m("ab*bc", "abc"), "the pieces may not overlap");
        assert!(m("s?nsors", "sensors"));
        assert!(m("*?x?*", "axb"));
        assert!(!m("*?x?*", "xb"));
        assert!(m("*a?c*", "zzabcz"));
        assert!(m("**", "a"));
    }

    #[test]
    fn agrees_with_a_backtracking_matcher() {
        fn reference(p: &[u8], t: &[u8]) -> bool {
            match (p.first(), t.first()) {
                (None, _) => t.is_empty(),
                (Some(b'*'), _) => {
                    reference(&p[1..], t) || (!t.is_empty() && reference(p, &t[1..]))
                }
                (Some(&c), Some(&d)) if c == b'?' || c == d => reference(&p[1..], &t[1..]),
                _ => false,
            }
        }
        let alphabet = [b'a', b'b', b'?', b'*'];
        let texts = ["", "a", "b", "ab", "ba", "aab", "abab", "bbba", "aabba"];
        // Every glob of up to 4 symbols over the alphabet.
        for len in 0..=4u32 {
            for n in 0..4usize.pow(len) {
                let glob: Vec<u8> = (0..len).map(|i| alphabet[n / 4usize.pow(i) % 4]).collect();
                let compiled = Glob::new(std::str::from_utf8(&glob).unwrap()).unwrap();
                let prepared = compiled.prepared();
                for text in texts {
                    let expected = reference(&glob, text.as_bytes());
                    let what = format!("{:?} against {text:?}", String::from_utf8_lossy(&glob));
                    assert_eq!(compiled.matches(text.as_bytes()), expected, "{what}");
                    let has = byte_set(text.as_bytes());
                    assert_eq!(
                        prepared.matches_with(text.as_bytes(), has),
                        expected,
                        "{what}"
                    );
                }
            }
        }
    }

    #[test]
    fn long_wildcard_pieces_are_refused() {
        assert!(Glob::new(&"?".repeat(MAX_WILDCARD_PIECE)).is_ok());
        assert!(Glob::new(&"?".repeat(MAX_WILDCARD_PIECE + 1)).is_err());
        assert!(Glob::new(&format!("*{}*", "a".repeat(200))).is_ok());
    }

    #[test]
    fn literalness() {
        assert!(Glob::new("abc").unwrap().is_literal());
        assert!(!Glob::new("a*").unwrap().is_literal());
        assert!(!Glob::new("a?").unwrap().is_literal());
    }
}
