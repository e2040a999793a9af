//! Connection ids: short, random, unique across nodes without coordination.

use std::fmt;
use std::sync::Arc;

use rand::Rng;

/// The alphabet of ids: URL-safe and unambiguous in logs.
const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
/// 12 characters of base 36 are 62 bits: collisions are negligible even
/// across a cluster with millions of connections.
const LEN: usize = 12;

/// The unique id of a connection (Socket.IO's `socket.id`). Cheap to
/// clone: the registry's indexes share the one copy of the text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(Arc<str>);

impl ConnId {
    /// A fresh random id.
    pub fn random() -> Self {
        let mut rng = rand::thread_rng();
        let id: String = (0..LEN)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
            .collect();
        ConnId(Arc::from(id))
    }

    /// An id received from elsewhere (a client's `to`, another node).
    pub fn from_string(id: impl Into<String>) -> Self {
        ConnId(Arc::from(id.into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_well_formed() {
        let ids: std::collections::HashSet<ConnId> =
            (0..10_000).map(|_| ConnId::random()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10) {
            assert_eq!(id.as_str().len(), LEN);
            assert!(id.as_str().bytes().all(|b| ALPHABET.contains(&b)));
        }
    }
}
