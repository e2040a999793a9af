//! What an authorization gives a connection: who it is, its name and
//! metadata, which rooms it may join and send to, and until when.
//!
//! An authorizer ([`Hub::set_grant_authorizer`](crate::Hub::set_grant_authorizer))
//! returns a [`Grant`] for an upgrade; a refresher
//! ([`Hub::set_refresher`](crate::Hub::set_refresher)) returns one for a
//! token sent over an open connection. The hub keeps the rights part of it
//! (its rights) with the connection and checks every join and send against it.

use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::rights::Rights;
pub use crate::rights::{Access, Paths};
use crate::socket::Meta;

/// What an accepted connection may do, as an authorizer decided it.
///
/// The default grants everything, for ever, to no one in particular: what
/// a hub without an authorizer gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// Who the connection acts for (a token's `sub`). A refresh must be for
    /// the same subject: a connection cannot become someone else.
    pub subject: Option<String>,
    /// The connection's initial name; it wins over `?name=`.
    pub name: Option<String>,
    /// Metadata for handlers ([`Socket::meta`](crate::Socket::meta)).
    pub meta: Meta,
    /// An object shown with the connection to other clients: as `meta` in
    /// its user-list entries and as `from_meta` on the events it sends
    /// ([`Socket::profile`](crate::Socket::profile)). `None` shows nothing.
    pub profile: Option<Map<String, Value>>,
    /// Rooms the connection is in from the start: joined before its
    /// `ready`, which lists them. Names that are not valid room names, and
    /// those past `max_rooms_per_connection`, are skipped.
    pub join: Vec<String>,
    /// The rooms it may join (and list with `users`).
    pub rooms: Access,
    /// The rooms it may send events to; a broadcast needs [`Access::allows_all`].
    pub publish: Access,
    /// The addresses it may publish `{path, values}` messages to.
    pub paths: Paths,
    /// When the connection is closed (4001 "token expired") unless a
    /// refresh moves it; `None` for never.
    pub expires: Option<SystemTime>,
}

impl Grant {
    /// Everything allowed, with this metadata: what an authorizer that
    /// returns only [`Meta`] gives.
    pub fn with_meta(meta: Meta) -> Grant {
        Grant {
            meta,
            ..Grant::default()
        }
    }

    /// Splits off what the hub keeps for checks, from what it hands to
    /// the socket once (name, metadata, profile) and the rooms to join.
    pub(crate) fn into_parts(self) -> (Identity, Vec<String>, Rights) {
        let rights = Rights {
            subject: self.subject,
            rooms: self.rooms,
            publish: self.publish,
            paths: self.paths,
            expires: self.expires,
        };
        let identity = Identity {
            name: self.name,
            meta: self.meta,
            profile: self.profile.map(Value::Object),
        };
        (identity, self.join, rights)
    }
}

/// What a grant hands to its socket once: name, metadata and profile.
pub(crate) struct Identity {
    pub name: Option<String>,
    pub meta: Meta,
    pub profile: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meta_only_grant_allows_everything() {
        let meta = Meta::from([("user".to_owned(), "ann".to_owned())]);
        let (identity, join, rights) = Grant::with_meta(meta.clone()).into_parts();
        assert_eq!((identity.name, identity.meta), (None, meta));
        assert!(identity.profile.is_none() && join.is_empty());
        assert_eq!(rights, Rights::default());
        assert!(rights.rooms.allows("x") && rights.publish.allows_all());
    }
}
