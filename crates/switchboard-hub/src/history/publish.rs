//! Sending to a room with history: a client's event (answered once the
//! message is stored) and the application's [`RoomEmitter`].

use serde_json::{json, Value};
use switchboard_net::Cork;
use tokio::sync::oneshot;

use super::replay::unavailable;
use super::store::Appended;
use super::{HistoryRule, HistoryUnavailable, Stored, StoredCallback};
use crate::dispatch::Answer;
use crate::envelope::{Outgoing, RequestError};
use crate::hub::Hub;
use crate::routing::RoomEmitter;
use crate::socket::Socket;

/// A client's event for a room.
pub(crate) struct Relay<'a> {
    pub from: &'a Socket,
    pub event: &'a str,
    pub data: &'a Value,
    pub room: &'a str,
    pub echo: bool,
}

/// What a send to a room did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The connections it went to, on every node.
    pub delivered: usize,
    /// Its place in the room's history, if the room keeps one.
    pub stored: Option<Stored>,
}

impl Hub {
    /// Relays a client's event to a room with history. The ack (the
    /// handlers' `reply`, or `delivered` and the `offset`) is sent once the
    /// message is stored: now on one node, when Redis answers in a cluster.
    pub(crate) fn relay_history(
        &self,
        relay: Relay<'_>,
        rule: &HistoryRule,
        reply: Option<Value>,
        ack: Option<&Value>,
        cork: &mut Cork,
    ) -> Result<Answer, RequestError> {
        let name = relay.from.name();
        let mut message = Outgoing::new(relay.event, relay.data);
        message.from = Some(relay.from.id().as_str());
        message.from_name = name.as_deref();
        message.from_meta = relay.from.profile();
        message.room = Some(relay.room);
        let except = (!relay.echo).then(|| relay.from.id().as_str());
        let done = |delivered| -> StoredCallback {
            let (hub, socket, ack) = (self.clone(), relay.from.clone(), ack.cloned());
            let reply = reply.clone();
            Box::new(move |result| {
                let answer = result.map_err(unavailable).map(|stored| {
                    reply.unwrap_or_else(
                        || json!({ "delivered": delivered, "offset": stored.offset }),
                    )
                });
                hub.answer(&socket, ack.as_ref(), answer);
            })
        };
        match self.append_history(relay.room, rule, except, message, done, Some(cork)) {
            Appended::Now { delivered, stored } => Ok(Answer::Now(
                reply.unwrap_or_else(|| json!({ "delivered": delivered, "offset": stored.offset })),
            )),
            Appended::Later { .. } => Ok(Answer::Later),
            Appended::Failed(error) => Err(unavailable(error)),
        }
    }
}

impl RoomEmitter<'_> {
    /// Sends the event and waits until it is stored, when the room keeps
    /// history: an `Ok` message is in the history (in Redis, when
    /// clustered) and will reach a member that recovers. For a room
    /// without history it is [`RoomEmitter::emit`].
    pub async fn emit_stored(
        self,
        event: &str,
        data: &Value,
    ) -> Result<Published, HistoryUnavailable> {
        let hub = self.hub;
        let Some(rule) = hub.history_rule(&self.room) else {
            let delivered = self.emit(event, data);
            return Ok(Published {
                delivered,
                stored: None,
            });
        };
        let (tx, rx) = oneshot::channel();
        let done = |_| -> StoredCallback {
            Box::new(move |result| {
                let _ = tx.send(result);
            })
        };
        let appended = {
            let mut message = Outgoing::new(event, data);
            message.room = Some(&self.room);
            let except = self.except.as_ref().map(|id| id.as_str());
            hub.append_history(&self.room, rule, except, message, done, None)
        };
        match appended {
            Appended::Now { delivered, stored } => Ok(Published {
                delivered,
                stored: Some(stored),
            }),
            Appended::Later { delivered } => {
                let stored = rx
                    .await
                    .map_err(|_| HistoryUnavailable("the cluster dropped the message".into()))??;
                Ok(Published {
                    delivered,
                    stored: Some(stored),
                })
            }
            Appended::Failed(error) => Err(error),
        }
    }
}
