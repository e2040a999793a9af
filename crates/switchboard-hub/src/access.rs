//! The checks of a connection's rights ([`Grant`](crate::Grant)), one per
//! kind of request: a refused request is answered `forbidden` and the
//! connection stays open.

use crate::envelope::{RequestError, Target};
use crate::socket::Socket;

/// A connection may join (or list) only the rooms its grant names.
pub(crate) fn check_join(socket: &Socket, room: &str) -> Result<(), RequestError> {
    if socket.may_join(room) {
        Ok(())
    } else {
        Err(RequestError::new(
            "forbidden",
            format!("not allowed to join \"{room}\""),
        ))
    }
}

/// A connection may publish address messages only to the addresses its
/// grant names.
pub(crate) fn check_path(socket: &Socket, path: &str) -> Result<(), RequestError> {
    if socket.may_publish_path(path) {
        Ok(())
    } else {
        Err(RequestError::new(
            "forbidden",
            format!("not allowed to publish to {path}"),
        ))
    }
}

/// A connection may send events only to the rooms its grant names, and to
/// everyone only when it names every room. Direct messages and events for
/// the server's handlers are not limited: they reach one connection, or
/// the application, which checks for itself.
pub(crate) fn check_target(socket: &Socket, target: &Target) -> Result<(), RequestError> {
    let allowed = match target {
        Target::Room(room) => socket.may_publish(room),
        Target::Everyone => socket.may_broadcast(),
        Target::Direct(_) | Target::Server => true,
    };
    if allowed {
        return Ok(());
    }
    let message = match target {
        Target::Room(room) => format!("not allowed to send to \"{room}\""),
        _ => String::from("not allowed to broadcast"),
    };
    Err(RequestError::new("forbidden", message))
}
