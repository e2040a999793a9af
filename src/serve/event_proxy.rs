//! The event proxy (`--event-proxy URL`): the hub's forwarder
//! ([`Hub::set_forwarder`]), POSTing each event nothing else handles, and
//! each connection's `connect` and `disconnect`, to the backend. The wire
//! format is in docs/PROXY.md.
//!
//! The hub keeps each connection's events in order and bounded
//! (`event_proxy_max_queued`); here at most `proxy_max_in_flight`
//! requests are at the backend at once, over all connections, and each
//! gets `event_proxy_timeout` (the wait for a place included). A failure
//! becomes an error with a `proxy_*` code.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use switchboard_hub::forward::{Emit, EmitTarget, Forward, ForwardError, ForwardReply};
use switchboard_hub::{Hub, Metrics, Target};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::backend::{Answer, Backend, Failure};

/// The backend could not be reached.
pub const PROXY_UNAVAILABLE: &str = "proxy_unavailable";
/// The backend did not answer within the timeout.
pub const PROXY_TIMEOUT: &str = "proxy_timeout";
/// The backend answered something else than HTTP 200 with `result` or `error`.
pub const PROXY_BAD_RESPONSE: &str = "proxy_bad_response";
/// The code of a backend `error` that gives none.
pub const PROXY_ERROR: &str = "proxy_error";

/// Forwards events to the backend.
pub struct EventProxy {
    pub backend: Backend,
    /// Places for requests at the backend (`proxy_max_in_flight`).
    in_flight: Arc<Semaphore>,
}

impl EventProxy {
    pub fn new(url: &str, timeout: Duration, max_in_flight: usize) -> anyhow::Result<EventProxy> {
        Ok(EventProxy {
            backend: Backend::new(url, timeout, max_in_flight)?,
            in_flight: Arc::new(Semaphore::new(max_in_flight.min(Semaphore::MAX_PERMITS))),
        })
    }

    /// Makes this the hub's forwarder, with the events that always go to it.
    pub fn install(self: &Arc<Self>, hub: &Hub, always: &[String]) {
        let proxy = Arc::clone(self);
        let skipped = hub.clone();
        hub.set_forwarder(move |forward| {
            let (proxy, hub) = (Arc::clone(&proxy), skipped.clone());
            Box::pin(async move { proxy.forward(&hub, forward).await })
        });
        hub.forward_events(always.iter().cloned());
    }

    /// Requests in flight at the backend now.
    pub fn in_flight(&self, max: usize) -> usize {
        max.min(Semaphore::MAX_PERMITS) - self.in_flight.available_permits()
    }

    async fn forward(&self, hub: &Hub, forward: Forward) -> Result<ForwardReply, ForwardError> {
        let started = Instant::now();
        let deadline = started + self.backend.timeout();
        let place = tokio::time::timeout_at(deadline, self.in_flight.acquire()).await;
        let answer = match place {
            Ok(Ok(_place)) => self.backend.post(&body(&forward), deadline).await,
            // Out of time while every place was taken (or closed, never).
            _ => {
                let outcome = Err(Failure::Timeout);
                self.backend.count(&outcome, started.elapsed());
                outcome
            }
        };
        match answer {
            Ok(Answer::Result(result)) => reply(result, hub.metrics()).map_err(|why| {
                tracing::debug!(%why, event = %forward.event, "event proxy: unusable result");
                ForwardError::new(
                    PROXY_BAD_RESPONSE,
                    format!("the event proxy answered badly: {why}"),
                )
            }),
            Ok(Answer::Error(error)) => Err(backend_error(&error)),
            Err(failure) => {
                tracing::debug!(?failure, event = %forward.event, "event proxy failed");
                Err(match failure {
                    Failure::Unavailable(_) => {
                        ForwardError::new(PROXY_UNAVAILABLE, "the event proxy is unavailable")
                    }
                    Failure::Timeout => ForwardError::new(
                        PROXY_TIMEOUT,
                        format!(
                            "the event proxy did not answer within {:?}",
                            self.backend.timeout()
                        ),
                    ),
                    Failure::BadResponse(why) => ForwardError::new(
                        PROXY_BAD_RESPONSE,
                        format!("the event proxy answered badly: {why}"),
                    ),
                })
            }
        }
    }
}

/// What the backend is told: the connection, the event and its data, and
/// where the client addressed it, if anywhere.
pub fn body(forward: &Forward) -> Value {
    let connection = &forward.connection;
    let mut body = json!({
        "connection": {
            "id": connection.id,
            "name": connection.name,
            "meta": connection.meta,
            "rooms": connection.rooms,
        },
        "event": forward.event,
        "data": forward.data,
    });
    match &forward.target {
        Target::Server => {}
        Target::Room(room) => body["room"] = json!(room),
        Target::Direct(id) => body["to"] = json!(id.as_str()),
        Target::Everyone => body["broadcast"] = json!(true),
    }
    body
}

/// A `result`: `data` for the ack and `emit` entries; an entry that is not
/// an object with `event` and exactly one target is skipped and counted.
fn reply(result: Value, metrics: &Metrics) -> Result<ForwardReply, String> {
    let Value::Object(mut result) = result else {
        return Err("\"result\" is not an object".into());
    };
    let data = result.remove("data").unwrap_or(Value::Null);
    let entries = match result.remove("emit") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err("\"emit\" is not an array".into()),
    };
    let mut emit = Vec::with_capacity(entries.len());
    for entry in entries {
        match emit_entry(entry) {
            Ok(entry) => emit.push(entry),
            Err(why) => {
                metrics
                    .forward_emits_skipped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(%why, "event proxy: emit entry skipped");
            }
        }
    }
    Ok(ForwardReply { data, emit })
}

fn emit_entry(entry: Value) -> Result<Emit, String> {
    let Value::Object(mut entry) = entry else {
        return Err("not an object".into());
    };
    let Some(Value::String(event)) = entry.remove("event") else {
        return Err("no \"event\" string".into());
    };
    let data = entry.remove("data").unwrap_or(Value::Null);
    let flag = |entry: &Map<String, Value>, key| entry.get(key) == Some(&Value::Bool(true));
    let targets = [
        entry
            .get("to")
            .and_then(Value::as_str)
            .map(|id| EmitTarget::Connection(id.into())),
        entry
            .get("room")
            .and_then(Value::as_str)
            .map(|room| EmitTarget::Room(room.into())),
        flag(&entry, "broadcast").then_some(EmitTarget::Everyone),
        flag(&entry, "reply").then_some(EmitTarget::Sender),
    ];
    let ask = match entry.get("ack") {
        None | Some(Value::Null) => None,
        Some(id) => Some(id.as_u64().ok_or("\"ack\" is a whole number")?),
    };
    let mut targets = targets.into_iter().flatten();
    match (targets.next(), targets.next()) {
        (Some(target), None) => Ok(Emit {
            event,
            data,
            target,
            ask,
        }),
        (None, _) => Err("no target (\"to\", \"room\", \"broadcast\" or \"reply\")".into()),
        _ => Err("more than one target".into()),
    }
}

/// The backend's `{"error":{"code","message"}}`, passed on.
fn backend_error(error: &Map<String, Value>) -> ForwardError {
    let code = error
        .get("code")
        .and_then(Value::as_str)
        .unwrap_or(PROXY_ERROR);
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("refused by the event proxy");
    ForwardError::new(code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_gives_data_and_valid_emits() {
        let metrics = Metrics::default();
        let result = json!({"data": 7, "emit": [
            {"event": "a", "to": "x"},
            {"event": "b", "room": "r", "data": 1},
            {"event": "c", "broadcast": true},
            {"event": "d", "reply": true},
            {"event": "e"},
            {"event": "f", "room": "r", "broadcast": true},
            "g",
        ]});
        let reply = reply(result, &metrics).unwrap();
        assert_eq!(reply.data, json!(7));
        let targets: Vec<_> = reply.emit.iter().map(|e| e.target.clone()).collect();
        assert_eq!(
            targets,
            [
                EmitTarget::Connection("x".into()),
                EmitTarget::Room("r".into()),
                EmitTarget::Everyone,
                EmitTarget::Sender
            ]
        );
        assert_eq!(Metrics::get(&metrics.forward_emits_skipped), 3);
        assert!(super::reply(json!({"emit": {}}), &metrics).is_err());
    }

    #[test]
    fn backend_errors_keep_their_code() {
        let error = json!({"code": "not_allowed", "message": "no"});
        let error = backend_error(error.as_object().unwrap());
        assert_eq!(
            (error.code.as_str(), error.message.as_str()),
            ("not_allowed", "no")
        );
        assert_eq!(backend_error(&Map::new()).code, PROXY_ERROR);
    }
}
