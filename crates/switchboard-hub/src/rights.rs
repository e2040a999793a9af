//! What a connection may do, as the hub checks it: which rooms ([`Access`])
//! and addresses ([`Paths`]), and the [`Rights`] a connection carries from
//! its grant for its life.

use std::time::SystemTime;

use crate::pattern::Pattern;

/// The part of a grant a connection carries for its life, replaced whole
/// by a refresh.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rights {
    pub subject: Option<String>,
    pub rooms: Access,
    pub publish: Access,
    pub paths: Paths,
    pub expires: Option<SystemTime>,
}

impl Rights {
    /// No limit, no subject, no deadline: what a connection without a
    /// grant of its own has (and [`Rights::default`]).
    pub const UNLIMITED: Rights = Rights {
        subject: None,
        rooms: Access::Any,
        publish: Access::Any,
        paths: Paths::Any,
        expires: None,
    };

    /// Boxed only when they say something: most connections carry none,
    /// and an idle connection's size is counted in bytes.
    pub fn boxed(self) -> Option<Box<Rights>> {
        (self != Rights::UNLIMITED).then(|| Box::new(self))
    }

    /// Whether any room is out of bounds: when not, the checks need not
    /// look (nor take the socket's lock).
    pub fn restricts(&self) -> bool {
        self.rooms != Access::Any || self.publish != Access::Any || self.paths != Paths::Any
    }
}

/// Which rooms: any, or those that match one of a list of rules.
///
/// A rule is a room name in which `*` stands for any run of characters
/// (none included): `lobby`, `team-*`, `*`. Rooms are matched whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Access {
    /// Every room.
    #[default]
    Any,
    /// Only rooms matching one of these rules (none: no room at all).
    Only(Vec<String>),
}

impl Access {
    /// Rooms matching one of `rules`.
    pub fn only<I, S>(rules: I) -> Access
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Access::Only(rules.into_iter().map(Into::into).collect())
    }

    /// Whether `room` is allowed.
    pub fn allows(&self, room: &str) -> bool {
        match self {
            Access::Any => true,
            Access::Only(rules) => rules.iter().any(|rule| glob(rule, room)),
        }
    }

    /// Whether every room is allowed (no list, or a `*` rule): what a
    /// broadcast to everyone needs.
    pub fn allows_all(&self) -> bool {
        match self {
            Access::Any => true,
            Access::Only(rules) => rules.iter().any(|rule| rule.chars().all(|c| c == '*')),
        }
    }
}

/// Which addresses a connection may publish `{path, values}` messages to:
/// any, or those matching one of a list of patterns (the syntax of
/// `subscribe`: `/sensors/*/motion`, `/lights/**`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Paths {
    /// Every address.
    #[default]
    Any,
    /// Only addresses matching one of these (none: no address at all).
    Only(Vec<Pattern>),
}

impl Paths {
    /// Whether `path` is allowed.
    pub fn allows(&self, path: &str) -> bool {
        match self {
            Paths::Any => true,
            Paths::Only(patterns) => patterns.iter().any(|pattern| pattern.matches(path)),
        }
    }
}

/// Whether `text` matches `rule`, where `*` matches any run of characters.
///
/// Iterative, with one remembered star: linear in practice and never
/// exponential, whatever a token holds.
pub(crate) fn glob(rule: &str, text: &str) -> bool {
    let (rule, text): (Vec<char>, Vec<char>) = (rule.chars().collect(), text.chars().collect());
    let (mut r, mut t) = (0, 0);
    // The last star seen and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if r < rule.len() && rule[r] == '*' {
            star = Some((r, t));
            r += 1;
        } else if r < rule.len() && rule[r] == text[t] {
            r += 1;
            t += 1;
        } else if let Some((star_r, star_t)) = star {
            // Let the star take one more character and retry after it.
            star = Some((star_r, star_t + 1));
            r = star_r + 1;
            t = star_t + 1;
        } else {
            return false;
        }
    }
    rule[r..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_whole_room_names() {
        let access = Access::only(["lobby", "team-*", "*-ops", "a*b*c"]);
        for room in [
            "lobby", "team-", "team-red", "db-ops", "abc", "aXbYc", "abbc",
        ] {
            assert!(access.allows(room), "{room}");
        }
        for room in ["lobby2", "xlobby", "team", "steam-red", "ops", "ab", "acb"] {
            assert!(!access.allows(room), "{room}");
        }
        assert!(!access.allows_all());
    }

    #[test]
    fn any_and_star_allow_everything_and_an_empty_list_nothing() {
        assert!(Access::Any.allows("anything") && Access::Any.allows_all());
        let star = Access::only(["*"]);
        assert!(star.allows("x") && star.allows_all());
        let none = Access::only(Vec::<String>::new());
        assert!(!none.allows("lobby") && !none.allows_all());
    }

    #[test]
    fn paths_match_as_subscriptions_do() {
        let paths = Paths::Only(vec![
            Pattern::parse("/sensors/*/motion").unwrap(),
            Pattern::parse("/lights/**").unwrap(),
        ]);
        for path in ["/sensors/hall/motion", "/lights", "/lights/a/b"] {
            assert!(paths.allows(path), "{path}");
        }
        for path in ["/sensors/hall/heat", "/door", "/lightsx"] {
            assert!(!paths.allows(path), "{path}");
        }
        assert!(Paths::Any.allows("/x") && !Paths::Only(Vec::new()).allows("/x"));
        let only_paths = Rights {
            paths: Paths::Only(Vec::new()),
            ..Rights::default()
        };
        assert!(only_paths.restricts() && !Rights::default().restricts());
        assert_eq!(Rights::default(), Rights::UNLIMITED);
        assert!(Rights::UNLIMITED.boxed().is_none() && only_paths.boxed().is_some());
    }

    #[test]
    fn glob_is_not_exponential() {
        let rule = "*a*a*a*a*a*a*a*a*a*a*a*b";
        let text = "a".repeat(64);
        assert!(!glob(rule, &text));
    }
}
