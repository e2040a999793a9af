//! Address patterns for `{path, values}` messages.
//!
//! An address is a `/`-separated path such as `/sensors/hall/motion`. A
//! pattern matches addresses segment by segment:
//!
//! - a plain segment matches itself;
//! - `*` inside a segment matches any run of characters within that segment
//!   (`/sensors/*/motion`, `/sensor*/x`), `?` any one character;
//! - a final `**` segment matches any number of remaining segments, none
//!   included (`/sensors/**` matches `/sensors` and `/sensors/a/b`).
//!
//! This is the part of OSC address matching that subscriptions need, with
//! `**` added for "everything below". Matching is linear in the address's
//! length (see `glob`).

use std::fmt;

use crate::glob::Glob;

/// A parsed, validated address pattern.
#[derive(Clone)]
pub struct Pattern {
    text: String,
    /// Each segment as written and compiled (without a final `**`).
    segments: Vec<(Box<str>, Glob)>,
    deep: bool,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.text == other.text
    }
}

impl Eq for Pattern {}

impl std::hash::Hash for Pattern {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

/// The most bytes an address or pattern may have.
pub const MAX_ADDRESS_LEN: usize = 256;

impl Pattern {
    /// Parses a pattern; it must start with `/`, and `**` may only be last.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        check_address_syntax(text)?;
        let mut texts: Vec<&str> = split(text).collect();
        let deep = texts.last().is_some_and(|last| *last == "**");
        if deep {
            texts.pop();
        }
        if texts.iter().any(|s| s.contains("**")) {
            return Err(format!(
                "{text:?}: `**` is only allowed as the last segment"
            ));
        }
        let segments = texts
            .into_iter()
            .map(|segment| Ok((segment.into(), Glob::new(segment)?)))
            .collect::<Result<_, String>>()?;
        Ok(Pattern {
            text: text.to_owned(),
            segments,
            deep,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern has no wildcard (an exact address).
    pub fn is_exact(&self) -> bool {
        !self.deep && self.segments.iter().all(|(_, glob)| glob.is_literal())
    }

    /// The segments (without a final `**`), as written and compiled.
    pub(crate) fn segments(&self) -> impl Iterator<Item = (&str, &Glob)> {
        self.segments.iter().map(|(text, glob)| (&**text, glob))
    }

    /// Whether the pattern ends in `**` (it matches everything below).
    pub(crate) fn is_deep(&self) -> bool {
        self.deep
    }

    /// Whether `address` matches.
    pub fn matches(&self, address: &str) -> bool {
        let mut parts = split(address);
        for (_, glob) in &self.segments {
            match parts.next() {
                Some(part) if glob.matches(part.as_bytes()) => {}
                _ => return false,
            }
        }
        self.deep || parts.next().is_none()
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({})", self.text)
    }
}

/// Checks that an address (or pattern) starts with `/`, is not too long and
/// has no empty segment.
pub fn check_address_syntax(text: &str) -> Result<(), String> {
    if !text.starts_with('/') {
        return Err(format!("{text:?}: an address starts with `/`"));
    }
    if text.len() > MAX_ADDRESS_LEN {
        return Err(format!("address longer than {MAX_ADDRESS_LEN} bytes"));
    }
    if text.len() > 1 && split(text).any(str::is_empty) {
        return Err(format!("{text:?}: empty segment"));
    }
    if text.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!(
            "{text:?}: spaces and control characters are not allowed"
        ));
    }
    Ok(())
}

/// Addresses under this prefix are the server's own (its bridges' events,
/// `/switchboard/bridges/opened`, ...): clients, `POST /api/publish` and
/// bridge inputs may not publish there, so what arrives there is genuine.
pub const RESERVED_PREFIX: &str = "/switchboard";

/// Checks an address that is published (not a pattern): the syntax of
/// [`check_address_syntax`], no wildcards, and not under [`RESERVED_PREFIX`].
pub fn check_published_address(text: &str) -> Result<(), String> {
    check_address_syntax(text)?;
    if text.contains(['*', '?']) {
        return Err(format!("{text:?}: a published address has no wildcards"));
    }
    let reserved = text
        .strip_prefix(RESERVED_PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if reserved {
        return Err(format!(
            "{text:?}: addresses under {RESERVED_PREFIX}/ are the server's own"
        ));
    }
    Ok(())
}

pub(crate) fn split(address: &str) -> impl Iterator<Item = &str> {
    let trimmed = address.strip_prefix('/').unwrap_or(address);
    trimmed.split('/').filter(move |_| !trimmed.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, address: &str) -> bool {
        Pattern::parse(pattern).unwrap().matches(address)
    }

    #[test]
    fn exact_and_wildcards() {
        assert!(m("/sensors/motion", "/sensors/motion"));
        assert!(!m("/sensors/motion", "/sensors/motion/x"));
        assert!(!m("/sensors/motion", "/sensors"));
        assert!(m("/sensors/*", "/sensors/motion"));
        assert!(!m("/sensors/*", "/sensors/a/b"));
        assert!(m("/sensors/*/level", "/sensors/hall/level"));
        assert!(m("/sensor*/x", "/sensors/x"));
        assert!(m("/s?nsors", "/sensors"));
        assert!(m("/a*b*c", "/axxbyyc"));
        assert!(!m("/a*b*c", "/axxbyy"));
        assert!(m("/sensors/**", "/sensors"));
        assert!(m("/sensors/**", "/sensors/a/b/c"));
        assert!(!m("/sensors/**", "/other"));
        assert!(m("/**", "/anything/at/all"));
        assert!(m("/", "/"));
    }

    #[test]
    fn invalid_patterns() {
        for bad in ["sensors", "/a//b", "/a/**/b", "/a b", ""] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
        assert!(Pattern::parse(&format!("/{}", "a".repeat(300))).is_err());
    }

    #[test]
    fn exactness() {
        assert!(Pattern::parse("/a/b").unwrap().is_exact());
        assert!(!Pattern::parse("/a/*").unwrap().is_exact());
        assert!(!Pattern::parse("/a/**").unwrap().is_exact());
    }

    #[test]
    fn the_servers_own_addresses_are_not_published_by_others() {
        for reserved in ["/switchboard", "/switchboard/bridges/opened"] {
            let error = check_published_address(reserved).unwrap_err();
            assert!(error.contains("server's own"), "{error}");
        }
        for open in ["/switchboardx", "/a/switchboard", "/sensors/1"] {
            check_published_address(open).unwrap();
        }
        // Subscribing to them is fine.
        assert!(Pattern::parse("/switchboard/bridges/**").is_ok());
    }
}
