//! Deciding on an upgrade, once: the hub refuses while shutting down, runs
//! the authorizer and takes a connection permit at the point where the 101
//! is written, and hands the result to [`Hub::serve`] as an [`Admission`].

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;
use switchboard_net::{Decision, Handler};
use switchboard_proto::handshake::Request;
use switchboard_proto::HandshakeError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::grant::Grant;
use crate::hub::Hub;
use crate::pattern::Pattern;
use crate::socket::Meta;
use crate::socketio::{SocketIoOptions, SocketIoProfile};

/// An upgrade the hub accepted: what its authorizer granted and the
/// connection's place under `max_connections`, held until it leaves.
#[derive(Debug)]
pub struct Admission {
    /// Boxed: a grant is a few hundred bytes, carried through the handshake.
    grant: Box<Grant>,
    permit: OwnedSemaphorePermit,
    profile: Profile,
}

/// What the endpoint that admitted a connection adds to the protocol for
/// it (set with [`Admission::subscribe`] and
/// [`Admission::answer_each_message`]); nothing by default.
#[derive(Debug, Default)]
pub(crate) struct Profile {
    /// Subscribed to as the connection joins.
    pub subscriptions: Vec<Pattern>,
    /// Sent after each message of the connection is handled.
    pub answer: Option<Value>,
    /// The connection speaks Socket.IO (boxed: most connections do not).
    pub socket_io: Option<Box<SocketIoProfile>>,
}

impl Admission {
    /// The metadata the authorizer gave the connection.
    pub fn meta(&self) -> &Meta {
        &self.grant.meta
    }

    /// Everything the authorizer gave the connection.
    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    /// Subscribes the connection to `pattern` as it joins the hub, before
    /// any of its messages is read, as if it had sent a `subscribe` first
    /// (it may `unsubscribe` later). An endpoint whose clients all receive
    /// every address message, as IS2's do, subscribes them to `/**`.
    pub fn subscribe(&mut self, pattern: Pattern) -> &mut Self {
        self.profile.subscriptions.push(pattern);
        self
    }

    /// Sends `answer` to the connection, as it is (not as an event), after
    /// each message it sends has been handled and after the hub's own
    /// reply to it, if any: IS2 answers every message with
    /// `{"handshake":true}`. Default: no such answer.
    pub fn answer_each_message(&mut self, answer: Value) -> &mut Self {
        self.profile.answer = Some(answer);
        self
    }

    /// Makes the connection a Socket.IO one: its frames are Socket.IO
    /// packets, the hub's `ready` is preceded by the CONNECT answer for
    /// `namespace` (the namespace whose CONNECT the server admitted it
    /// with, after sending the Engine.IO `open` itself), and its task
    /// sends Engine.IO pings. Default: the hub's own protocol.
    pub fn socket_io(&mut self, options: SocketIoOptions, namespace: &str) -> &mut Self {
        self.profile.socket_io = Some(Box::new(SocketIoProfile {
            options,
            namespace: namespace.to_owned(),
        }));
        self
    }

    /// The grant, the place under `max_connections` to hold while the
    /// connection lives, and what its endpoint adds.
    pub(crate) fn into_parts(self) -> (Grant, OwnedSemaphorePermit, Profile) {
        (*self.grant, self.permit, self.profile)
    }
}

impl Hub {
    /// Decides on an upgrade request: 503 while shutting down, the
    /// authorizer's status (401, 403, …) if it refuses, 403 if its grant
    /// has expired already, 503 when
    /// `max_connections` are in the hub. An [`Admission`] otherwise.
    ///
    /// Hand it, with the connection, to [`Hub::serve`]; dropping it gives
    /// the place back. [`accept`](switchboard_net::accept) with the hub as
    /// its [`Handler`] does both.
    pub fn admit(&self, request: &Request) -> Result<Admission, HandshakeError> {
        if self.is_closing() {
            return Err(HandshakeError::new(503, "server shutting down"));
        }
        let grant = self
            .authorize_grant(request)
            .map_err(|(status, reason)| HandshakeError::new(status, reason))?;
        self.admit_with(grant)
    }

    /// Admits an upgrade that was authorized elsewhere (an asynchronous
    /// check, such as the server's connect proxy) with its grant, in place
    /// of the authorizer: 503 while shutting down, 403 if the grant has
    /// expired already, 503 when `max_connections` are in the hub.
    pub fn admit_with(&self, grant: Grant) -> Result<Admission, HandshakeError> {
        if self.is_closing() {
            return Err(HandshakeError::new(503, "server shutting down"));
        }
        // A grant that is over already would be admitted only to be closed.
        if grant.expires.is_some_and(|at| at <= SystemTime::now()) {
            return Err(HandshakeError::new(403, "authorization expired"));
        }
        let permit = Arc::clone(&self.inner.permits)
            .try_acquire_owned()
            .map_err(|_| {
                HandshakeError::new(
                    503,
                    format!(
                        "connection limit of {} reached",
                        self.inner.config.max_connections
                    ),
                )
            })?;
        Ok(Admission {
            grant: Box::new(grant),
            permit,
            profile: Profile::default(),
        })
    }

    /// Connections admitted and not yet gone (including those between their
    /// 101 and joining the hub).
    pub fn admitted(&self) -> usize {
        let max = self
            .inner
            .config
            .max_connections
            .min(Semaphore::MAX_PERMITS);
        max - self.inner.permits.available_permits()
    }
}

/// The hub decides on upgrades itself: `accept(stream, &config, &hub)`
/// then `hub.serve(accepted, remote)`.
impl Handler for Hub {
    type Admission = Admission;

    async fn upgrade(&self, request: &Request, preferred: Option<&str>) -> Decision<Admission> {
        match self.admit(request) {
            Ok(admission) => Decision::accept(preferred, admission),
            Err(error) => Decision::Reject(error),
        }
    }
}
