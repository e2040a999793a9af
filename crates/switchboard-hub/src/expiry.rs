//! A connection's deadline, from its grant: the timer in its task, the
//! close when it passes, and `refresh`, which replaces the grant and so
//! moves the deadline.

use std::future::pending;
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use switchboard_net::CloseCode;
use tokio::time::{Instant, Sleep};

use crate::envelope::RequestError;
use crate::hub::Hub;
use crate::socket::Socket;

/// The close code of a connection whose grant expired. RFC 6455 §7.4.2
/// leaves 4000–4999 to applications; 4001 tells a client apart from a
/// policy close (1008), so that it knows to get a new token.
pub const TOKEN_EXPIRED: CloseCode = CloseCode(4001);

/// When a connection's grant runs out, as a timer in its task; none for a
/// grant without expiry (an idle connection pays a pointer for it).
pub(crate) struct Deadline(Option<Pin<Box<Sleep>>>);

impl Deadline {
    /// The deadline of the socket's grant as it is now.
    pub fn of(socket: &Socket) -> Deadline {
        Deadline(
            socket
                .expires()
                .map(|at| Box::pin(tokio::time::sleep_until(instant(at)))),
        )
    }

    /// No deadline (once the first one has been acted on).
    pub fn none() -> Deadline {
        Deadline(None)
    }

    /// Whether there is a deadline to wait for.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// Completes when the deadline passes; never without one.
    pub async fn passed(&mut self) {
        match &mut self.0 {
            Some(sleep) => sleep.as_mut().await,
            None => pending().await,
        }
    }
}

/// A wall-clock time (a token's `exp`) on the timer's clock.
fn instant(at: SystemTime) -> Instant {
    let left = at.duration_since(SystemTime::now()).unwrap_or_default();
    Instant::now() + left
}

/// Seconds since the Unix epoch, as tokens count them.
fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

impl Hub {
    /// The grant ran out: an `error` (`token_expired`) that says so, then a
    /// 4001 close after what is already queued.
    pub(crate) fn expire(&self, socket: &Socket) {
        tracing::debug!(id = %socket.id(), "token expired");
        let _ = socket.emit(
            "error",
            &json!({ "code": "token_expired", "message": "the token expired; reconnect with a new one" }),
        );
        socket.close(TOKEN_EXPIRED, "token expired");
    }

    /// `refresh`: the refresher checks the token; a grant for the same
    /// subject replaces the connection's rights and deadline (name and
    /// metadata stay), and rooms it no longer allows are left.
    pub(crate) fn refresh(&self, socket: &Socket, token: &str) -> Result<Value, RequestError> {
        let refresher = self.refresher().ok_or_else(|| {
            RequestError::new("refresh_unavailable", "this server takes no refresh tokens")
        })?;
        let (_, _, rights) = refresher(token)?.into_parts();
        if rights.subject != socket.subject() {
            return Err(RequestError::new(
                "subject_mismatch",
                "the token is for another subject than the connection's",
            ));
        }
        let expires = rights.expires.map(unix_seconds);
        let left: Vec<String> = socket
            .rooms()
            .into_iter()
            .filter(|room| !rights.rooms.allows(room))
            .collect();
        socket.set_rights(rights);
        for room in &left {
            self.leave(socket, room)?;
        }
        Ok(json!({ "expires": expires, "left": left }))
    }
}
