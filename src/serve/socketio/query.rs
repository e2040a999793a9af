//! What an Engine.IO request asks for (its query) and Engine.IO's refusals.

use serde_json::json;
use switchboard_net::HttpResponse;
use switchboard_proto::handshake::Request;

/// The transport a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Polling,
    WebSocket,
}

/// What an Engine.IO request asks for, from its query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineQuery {
    pub transport: Transport,
    /// The session, on every request after the handshake.
    pub sid: Option<String>,
}

impl EngineQuery {
    /// Reads `EIO`, `transport` and `sid`; the refusal otherwise, in
    /// Engine.IO's words (its error codes).
    pub fn parse(request: &Request) -> Result<EngineQuery, EngineError> {
        if request.query_param("EIO").as_deref() != Some("4") {
            return Err(EngineError::UnsupportedVersion);
        }
        let transport = match request.query_param("transport").as_deref() {
            Some("polling") => Transport::Polling,
            Some("websocket") => Transport::WebSocket,
            _ => return Err(EngineError::UnknownTransport),
        };
        Ok(EngineQuery {
            transport,
            sid: request.query_param("sid"),
        })
    }
}

/// A refused Engine.IO request, as engine.io answers it (HTTP 400 with
/// `{"code","message"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineError {
    UnknownTransport,
    UnknownSid,
    BadRequest,
    UnsupportedVersion,
}

impl EngineError {
    pub fn code_and_message(self) -> (u8, &'static str) {
        match self {
            EngineError::UnknownTransport => (0, "Transport unknown"),
            EngineError::UnknownSid => (1, "Session ID unknown"),
            EngineError::BadRequest => (3, "Bad request"),
            EngineError::UnsupportedVersion => (5, "Unsupported protocol version"),
        }
    }

    pub fn response(self) -> HttpResponse {
        let (code, message) = self.code_and_message();
        HttpResponse::new(
            400,
            "application/json",
            json!({ "code": code, "message": message }).to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(target: &str) -> Result<EngineQuery, EngineError> {
        EngineQuery::parse(&Request::from_parts("GET", target, 1, Vec::new()))
    }

    #[test]
    fn engine_queries() {
        let q = query("/socket.io/?EIO=4&transport=polling&t=x").unwrap();
        assert_eq!((q.transport, q.sid), (Transport::Polling, None));
        let q = query("/socket.io/?EIO=4&transport=websocket&sid=abc").unwrap();
        assert_eq!(
            (q.transport, q.sid.as_deref()),
            (Transport::WebSocket, Some("abc"))
        );
        assert_eq!(
            query("/socket.io/?EIO=3&transport=polling"),
            Err(EngineError::UnsupportedVersion)
        );
        assert_eq!(
            query("/socket.io/?EIO=4&transport=flash"),
            Err(EngineError::UnknownTransport)
        );
    }
}
