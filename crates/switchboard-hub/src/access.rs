//! The checks of a connection's rights ([`Grant`](crate::Grant)), one per
//! kind of request: a refused request is answered `forbidden` and the
//! connection stays open.

use crate::envelope::{RequestError, Target};
use crate::socket::Socket;

/// A connection may join (or list) only the rooms its grant names.
pub(crate) fn check_join(socket: &Socket, room: &str) -> Result<(), RequestError> {
    allowed_or(socket.may_join(room), || {
        format!("not allowed to join \"{room}\"")
    })
}

/// A connection may publish address messages only to the addresses its
/// grant names.
pub(crate) fn check_path(socket: &Socket, path: &str) -> Result<(), RequestError> {
    allowed_or(socket.may_publish_path(path), || {
        format!("not allowed to publish to {path}")
    })
}

/// A connection may send events only to the rooms its grant names, and to
/// everyone only when it names every room. Direct messages and events for
/// the server's handlers are not limited: they reach one connection, or
/// the application, which checks for itself.
pub(crate) fn check_target(socket: &Socket, target: &Target) -> Result<(), RequestError> {
    match target {
        Target::Room(room) => allowed_or(socket.may_publish(room), || {
            format!("not allowed to send to \"{room}\"")
        }),
        Target::Everyone => allowed_or(socket.may_broadcast(), || {
            String::from("not allowed to broadcast")
        }),
        Target::Direct(_) | Target::Server => Ok(()),
    }
}

/// `Ok`, or `forbidden` with the message `why` makes.
fn allowed_or(allowed: bool, why: impl FnOnce() -> String) -> Result<(), RequestError> {
    if allowed {
        Ok(())
    } else {
        Err(RequestError::new("forbidden", why()))
    }
}
