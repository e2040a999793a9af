//! The connect proxy (`--connect-proxy URL`): before a `/ws` upgrade is
//! accepted, the backend is asked about it and its answer decides. The
//! wire format is in docs/PROXY.md.
//!
//! `{"result":{"name","meta","rooms"}}` accepts, with a [`Grant`] carrying
//! them; `{"error":{"status","message"}}` refuses with that status (401 or
//! 403) and message; a backend that cannot be reached, is slower than
//! `connect_proxy_timeout` or answers anything else refuses with 503: the
//! proxy fails closed.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Map, Value};
use switchboard_hub::{Grant, Meta};
use switchboard_proto::handshake::Request;
use switchboard_proto::HandshakeError;
use tokio::time::Instant;

use super::backend::{Answer, Backend, Failure};

/// The headers passed to the backend, when the request has them.
const HEADERS: [&str; 3] = ["cookie", "authorization", "origin"];

/// Asks the backend about upgrades.
pub struct ConnectProxy {
    pub backend: Backend,
}

impl ConnectProxy {
    pub fn new(url: &str, timeout: Duration, max_idle: usize) -> anyhow::Result<ConnectProxy> {
        Ok(ConnectProxy {
            backend: Backend::new(url, timeout, max_idle)?,
        })
    }

    /// The backend's decision on an upgrade: the grant to admit it with, or
    /// the refusal.
    pub async fn decide(
        &self,
        request: &Request,
        remote: Option<SocketAddr>,
    ) -> Result<Grant, HandshakeError> {
        self.decide_with_auth(request, remote, None).await
    }

    /// [`ConnectProxy::decide`] for a Socket.IO connection, whose CONNECT
    /// `auth` the backend is told as `auth`.
    pub async fn decide_with_auth(
        &self,
        request: &Request,
        remote: Option<SocketAddr>,
        auth: Option<&Value>,
    ) -> Result<Grant, HandshakeError> {
        let deadline = Instant::now() + self.backend.timeout();
        let mut description = describe(request, remote);
        if let (Some(auth), Value::Object(fields)) = (auth, &mut description) {
            fields.insert("auth".into(), auth.clone());
        }
        let answer = self.backend.post(&description, deadline).await;
        match answer {
            Ok(Answer::Result(result)) => grant(result).map_err(|why| {
                tracing::debug!(%why, "connect proxy: unusable result");
                HandshakeError::new(503, "connect proxy answered badly")
            }),
            Ok(Answer::Error(error)) => Err(refusal(&error)),
            Err(failure) => {
                // Counted in /metrics; a log line per refused upgrade would let a
                // dead backend and a crowd of clients flood the log.
                tracing::debug!(?failure, "connect proxy failed");
                let reason = match failure {
                    Failure::Unavailable(_) => "connect proxy unavailable",
                    Failure::Timeout => "connect proxy timed out",
                    Failure::BadResponse(_) => "connect proxy answered badly",
                };
                Err(HandshakeError::new(503, reason))
            }
        }
    }
}

/// What the backend is told about an upgrade request.
pub fn describe(request: &Request, remote: Option<SocketAddr>) -> Value {
    let query: Map<String, Value> = request
        .query_params()
        .into_iter()
        .rev() // the first occurrence of a key wins, as for `?name=`
        .map(|(key, value)| (key, Value::String(value)))
        .collect();
    let headers: Map<String, Value> = HEADERS
        .iter()
        .filter_map(|name| Some((name.to_string(), json!(request.header(name)?))))
        .collect();
    // Valid already (the upgrade is decided after the checks of RFC 6455).
    let protocols = request
        .validate_upgrade()
        .map(|upgrade| upgrade.protocols().to_vec())
        .unwrap_or_default();
    json!({
        "remote": remote.map(|addr| addr.to_string()),
        "path": request.path(),
        "query": query,
        "headers": headers,
        "protocols": protocols,
    })
}

/// The grant of a `result`: `name` (a string), `meta` (an object) and
/// `rooms` (names), each optional.
fn grant(result: Value) -> Result<Grant, String> {
    let Value::Object(mut result) = result else {
        return Err("\"result\" is not an object".into());
    };
    let mut grant = Grant::default();
    match result.remove("name") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) => grant.name = Some(name),
        Some(_) => return Err("\"name\" is not a string".into()),
    }
    match result.remove("meta") {
        None | Some(Value::Null) => {}
        Some(Value::Object(meta)) => {
            grant.meta = strings(&meta);
            grant.profile = Some(meta);
        }
        Some(_) => return Err("\"meta\" is not an object".into()),
    }
    match result.remove("rooms") {
        None | Some(Value::Null) => {}
        Some(Value::Array(rooms)) => {
            grant.join = rooms
                .into_iter()
                .map(|room| match room {
                    Value::String(room) => Ok(room),
                    _ => Err(String::from("\"rooms\" holds a value that is not a string")),
                })
                .collect::<Result<_, _>>()?;
        }
        Some(_) => return Err("\"rooms\" is not an array".into()),
    }
    Ok(grant)
}

/// Metadata for the server's handlers: strings as they are, other values
/// as JSON text (as with a token's `meta` claim).
fn strings(meta: &Map<String, Value>) -> Meta {
    meta.iter()
        .map(|(key, value)| {
            let text = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            (key.clone(), text)
        })
        .collect()
}

/// An `error` answer as the upgrade's refusal: 401 when it says so, 403
/// for any other status.
fn refusal(error: &Map<String, Value>) -> HandshakeError {
    let status = match error.get("status").and_then(Value::as_u64) {
        Some(401) => 401,
        _ => 403,
    };
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("refused by the connect proxy");
    HandshakeError::new(status, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_becomes_a_grant() {
        let grant =
            grant(json!({"name":"ann","meta":{"role":"admin","level":3},"rooms":["a","b"]}))
                .unwrap();
        assert_eq!(grant.name.as_deref(), Some("ann"));
        assert_eq!(grant.join, ["a", "b"]);
        assert_eq!(grant.meta.get("level").map(String::as_str), Some("3"));
        assert_eq!(grant.profile.unwrap()["role"], "admin");
        assert!(super::grant(json!({})).is_ok());
        for bad in [
            json!([]),
            json!({"name":1}),
            json!({"meta":"x"}),
            json!({"rooms":[1]}),
        ] {
            assert!(super::grant(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn refusals_are_401_or_403() {
        let error = |v: Value| refusal(v.as_object().unwrap());
        assert_eq!(error(json!({"status":401,"message":"who?"})).status(), 401);
        assert_eq!(error(json!({"status":403,"message":"no"})).status(), 403);
        assert_eq!(error(json!({"status":500})).status(), 403);
    }
}
