//! Upgrading a request that arrived through a `hyper` 1.x server, for
//! programs that already run their own HTTP server (as Socket.IO's `attach(httpServer)`).

use bytes::BytesMut;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use switchboard_proto::deflate::Negotiated;
use switchboard_proto::handshake::{self, Header};
use switchboard_proto::{HandshakeError, Role};

use crate::config::Config;
use crate::error::Error;
use crate::socket::WebSocket;

/// A pending upgrade: await it after returning the 101 response to hyper.
pub struct PendingUpgrade {
    upgrade: hyper::upgrade::OnUpgrade,
    config: Config,
    deflate: Option<Negotiated>,
}

impl std::fmt::Debug for PendingUpgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingUpgrade").finish_non_exhaustive()
    }
}

impl PendingUpgrade {
    /// Waits for hyper to hand over the connection, and wraps it.
    pub async fn wait(self) -> Result<WebSocket, Error> {
        let upgraded = self
            .upgrade
            .await
            .map_err(|error| std::io::Error::other(error.to_string()))?;
        let socket = WebSocket::from_stream(
            TokioIo::new(upgraded),
            Role::Server,
            &self.config,
            BytesMut::new(),
        );
        if let (Some(negotiated), Some(deflate)) = (&self.deflate, &self.config.deflate) {
            socket.enable_deflate(negotiated, deflate);
        }
        Ok(socket)
    }
}

/// Checks a hyper request as a WebSocket upgrade (RFC 6455 §4.2.1).
///
/// On success returns the `101 Switching Protocols` response to give back to
/// hyper, and the pending upgrade to await afterwards (typically in a spawned
/// task). On failure returns the error response (400, 405, 426) to send instead.
pub fn upgrade<B>(
    request: &mut Request<B>,
    config: &Config,
) -> Result<(Response<()>, PendingUpgrade), Box<Response<String>>> {
    let parsed = to_handshake_request(request);
    let checked = parsed.validate_upgrade().and_then(|upgrade| {
        config
            .validate()
            .map_err(|error| HandshakeError::new(500, error.to_string()))?;
        Ok(upgrade)
    });
    let upgrade = match checked {
        Ok(upgrade) => upgrade,
        Err(error) => return Err(Box::new(error_response(&error))),
    };
    let protocol = upgrade.select_protocol(&config.protocols);
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    let accept = handshake::accept_key(request_key(request));
    headers.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    if let Ok(value) = HeaderValue::from_str(&accept) {
        headers.insert(http::header::SEC_WEBSOCKET_ACCEPT, value);
    }
    if let Some(Ok(value)) = protocol.map(HeaderValue::from_str) {
        headers.insert(http::header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    let (deflate, extensions) = match &config.deflate {
        Some(deflate) => deflate.negotiate_server(upgrade.extensions()).0.unzip(),
        None => (None, None),
    };
    if let Some(Ok(value)) = extensions.as_deref().map(HeaderValue::from_str) {
        headers.insert(http::header::SEC_WEBSOCKET_EXTENSIONS, value);
    }
    let pending = PendingUpgrade {
        upgrade: hyper::upgrade::on(request),
        config: config.clone(),
        deflate,
    };
    Ok((response, pending))
}

fn request_key<B>(request: &Request<B>) -> &str {
    request
        .headers()
        .get(http::header::SEC_WEBSOCKET_KEY)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .unwrap_or_default()
}

fn to_handshake_request<B>(request: &Request<B>) -> handshake::Request {
    let mut headers: Vec<Header> = request
        .headers()
        .iter()
        .map(|(name, value)| Header {
            name: name.as_str().to_owned(),
            value: value.as_bytes().to_vec(),
        })
        .collect();
    // HTTP/2-style URIs carry the host in the authority rather than a header.
    if !request.headers().contains_key(http::header::HOST) {
        if let Some(authority) = request.uri().authority() {
            headers.push(Header {
                name: "host".into(),
                value: authority.as_str().as_bytes().to_vec(),
            });
        }
    }
    let minor_version = if request.version() == http::Version::HTTP_10 {
        0
    } else {
        1
    };
    let target = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    handshake::Request::from_parts(request.method().as_str(), &target, minor_version, headers)
}

fn error_response(error: &HandshakeError) -> Response<String> {
    let mut response = Response::new(format!("{}\n", error.reason()));
    *response.status_mut() =
        StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    if error.status() == 426 {
        response.headers_mut().insert(
            http::header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
    }
    response
}
