//! The application's say in a connection's rooms and name: what a client
//! does with `join`, `leave` and `rename`, done by the server (Socket.IO's
//! `socket.join(room)` in a connection handler, a name the backend knows).
//!
//! The names are checked as a client's are, and the per-connection room
//! limit holds; the connection's rights ([`Grant`](crate::Grant)) do not
//! apply, since the server is the one deciding.

use crate::envelope::{room_name, user_name, RequestError};
use crate::hub::Hub;
use crate::socket::Socket;

impl Hub {
    /// Puts `socket` in `room` (its user lists and room messages follow);
    /// returns the room's members, on every node. Joining a room twice is
    /// not an error.
    pub fn join_room(&self, socket: &Socket, room: &str) -> Result<u64, RequestError> {
        let room = room_name(Some(room))?;
        let joined = self.join(socket, &room)?;
        Ok(joined["members"].as_u64().unwrap_or_default())
    }

    /// Takes `socket` out of `room`; returns whether it was a member.
    pub fn leave_room(&self, socket: &Socket, room: &str) -> bool {
        self.leave(socket, room)
            .is_ok_and(|left| left["was_member"] == true)
    }

    /// Names `socket` (shown in user lists and relayed messages' `from`
    /// name), as its own `rename` would.
    pub fn set_name(&self, socket: &Socket, name: &str) -> Result<(), RequestError> {
        let name = user_name(name)?;
        self.rename(socket, name);
        Ok(())
    }
}
