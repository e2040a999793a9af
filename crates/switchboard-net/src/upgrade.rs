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
use crate::server::{Accepted, Decision, Handler};
use crate::socket::WebSocket;

/// A pending upgrade: await it after returning the 101 response to hyper.
///
/// It carries what the handler decided (see [`upgrade_with`]); for
/// [`upgrade`] that is `()`.
pub struct PendingUpgrade<A = ()> {
    upgrade: hyper::upgrade::OnUpgrade,
    config: Config,
    deflate: Option<Negotiated>,
    request: handshake::Request,
    protocol: Option<String>,
    admission: A,
}

impl<A> std::fmt::Debug for PendingUpgrade<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingUpgrade")
            .field("request", &self.request)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl<A> PendingUpgrade<A> {
    /// Waits for hyper to hand over the connection, and wraps it.
    pub async fn wait(self) -> Result<WebSocket, Error> {
        Ok(self.accepted().await?.socket)
    }

    /// Waits for hyper to hand over the connection: the same [`Accepted`]
    /// connection, with the request and the handler's admission, that
    /// [`accept`](crate::accept) gives on a plain TCP stream.
    pub async fn accepted(self) -> Result<Accepted<A>, Error> {
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
        let shared = match (&self.deflate, &self.config.deflate) {
            (Some(negotiated), Some(settings)) => {
                socket.enable_deflate(negotiated, settings);
                negotiated.shared(settings)
            }
            _ => None,
        };
        Ok(Accepted {
            socket,
            request: self.request,
            protocol: self.protocol,
            deflate: shared,
            admission: self.admission,
        })
    }
}

/// The refusal to hand back to hyper instead of a 101: the error's status
/// and its reason as the body.
pub type Refusal = Box<Response<String>>;

/// Checks a hyper request as a WebSocket upgrade (RFC 6455 §4.2.1) and
/// accepts it with the configuration's preferred subprotocol.
///
/// On success returns the `101 Switching Protocols` response to give back to
/// hyper, and the pending upgrade to await afterwards (typically in a spawned
/// task). On failure returns the error response (400, 405, 426) to send instead.
/// To authenticate or limit connections, use [`upgrade_with`] and a [`Handler`].
pub fn upgrade<B>(
    request: &mut Request<B>,
    config: &Config,
) -> Result<(Response<()>, PendingUpgrade), Refusal> {
    let parsed = to_handshake_request(request);
    let upgrade = check(&parsed, config)?;
    let protocol = upgrade
        .select_protocol(&config.protocols)
        .map(str::to_owned);
    Ok(switch(request, parsed, &upgrade, config, protocol, &[], ()))
}

/// Like [`upgrade`], with `handler` deciding, exactly as
/// [`accept`](crate::accept) does on a plain TCP stream: its refusal
/// (401, 403, 503, …) is the response, its admission reaches
/// [`PendingUpgrade::accepted`]. A decision that takes longer than the
/// handshake timeout is answered 408.
///
/// This is how a program with its own hyper (or axum) server hands
/// upgrades to the same handler — the same limits and checks — as one
/// that accepts TCP connections itself.
pub async fn upgrade_with<B, H>(
    request: &mut Request<B>,
    config: &Config,
    handler: &H,
) -> Result<(Response<()>, PendingUpgrade<H::Admission>), Refusal>
where
    H: Handler + ?Sized,
{
    let parsed = to_handshake_request(request);
    let upgrade = check(&parsed, config)?;
    let preferred = upgrade.select_protocol(&config.protocols);
    let deciding = handler.upgrade(&parsed, preferred);
    let decision = match tokio::time::timeout(config.handshake_timeout, deciding).await {
        Ok(decision) => decision,
        Err(_) => {
            let error = HandshakeError::new(408, "handshake timeout");
            return Err(Box::new(error_response(&error)));
        }
    };
    match decision {
        Decision::Accept {
            protocol,
            headers,
            admission,
        } => {
            if protocol
                .as_ref()
                .is_some_and(|chosen| !upgrade.protocols().contains(chosen))
            {
                let error = HandshakeError::new(
                    500,
                    "handler chose a subprotocol the client did not offer",
                );
                return Err(Box::new(error_response(&error)));
            }
            Ok(switch(
                request, parsed, &upgrade, config, protocol, &headers, admission,
            ))
        }
        Decision::Reject(error) => Err(Box::new(error_response(&error))),
    }
}

/// The request as an upgrade, under a configuration that is valid.
fn check(parsed: &handshake::Request, config: &Config) -> Result<handshake::Upgrade, Refusal> {
    let checked = parsed.validate_upgrade().and_then(|upgrade| {
        config
            .validate()
            .map_err(|error| HandshakeError::new(500, error.to_string()))?;
        Ok(upgrade)
    });
    checked.map_err(|error| Box::new(error_response(&error)))
}

/// The 101 response for an accepted upgrade, and the connection to come.
fn switch<B, A>(
    request: &mut Request<B>,
    parsed: handshake::Request,
    upgrade: &handshake::Upgrade,
    config: &Config,
    protocol: Option<String>,
    extra_headers: &[(String, String)],
    admission: A,
) -> (Response<()>, PendingUpgrade<A>) {
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
    if let Some(Ok(value)) = protocol.as_deref().map(HeaderValue::from_str) {
        headers.insert(http::header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    let (deflate, extensions) = match &config.deflate {
        Some(deflate) => deflate.negotiate_server(upgrade.extensions()).0.unzip(),
        None => (None, None),
    };
    if let Some(Ok(value)) = extensions.as_deref().map(HeaderValue::from_str) {
        headers.insert(http::header::SEC_WEBSOCKET_EXTENSIONS, value);
    }
    for (name, value) in extra_headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    let pending = PendingUpgrade {
        upgrade: hyper::upgrade::on(request),
        config: config.clone(),
        deflate,
        request: parsed,
        protocol,
        admission,
    };
    (response, pending)
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
