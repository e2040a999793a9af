//! Which path does what: WebSocket endpoints, the page, the client script,
//! health, metrics and the publish API.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};
use switchboard_hub::{envelope, pattern, Admission, Hub, RequestError};
use switchboard_net::{BodyStream, Decision, Handler, HttpResponse};
use switchboard_proto::handshake::Request;
use switchboard_proto::HandshakeError;
use tokio::sync::OwnedSemaphorePermit;

use super::answers::{error_response, json_response};
use super::app::App;
use super::credentials::{bearer, constant_time_eq};
use super::socketio::{self, EngineError, EngineQuery, Transport};
use crate::endpoints::{EndpointKind, EndpointSpec};

const CHAT_PAGE: &str = include_str!("../../web/index.html");
const CLIENT_SCRIPT: &str = include_str!("../../web/switchboard.js");
/// socket.io-client's browser build (its `dist/socket.io.min.js`, the
/// version tests/js/package.json pins), served at `/socket.io/socket.io.js`
/// as a Socket.IO server serves it, so that pages written for one load it
/// unchanged.
const SOCKET_IO_CLIENT: &str = include_str!("../../web/socket.io.min.js");
/// Live values of address messages (`/demo?pattern=/slider/**`).
const DEMO_PAGE: &str = include_str!("../../web/demo.html");

/// What an accepted upgrade is for, with its place under the endpoint's limit.
pub enum Endpoint {
    /// The hub (kinds `hub` and `is2`), admitted by it.
    Hub(Admission),
    /// The raw echo endpoint.
    Echo(OwnedSemaphorePermit),
    /// The rooms protocol, admitted by the hub (its checks and its
    /// `max_connections`) but served apart from it.
    Rooms(Admission),
    /// A Socket.IO WebSocket: admitted to the hub at its CONNECT, whose
    /// `auth` the decision needs ([`Router::admit_socket_io`]).
    SocketIo,
    /// The WebSocket a long-polling Socket.IO session upgrades to.
    SocketIoUpgrade(Arc<socketio::sessions::Session>),
}

/// Routes requests for `serve`.
pub struct Router {
    app: Arc<App>,
    /// The peer, in the router of one connection ([`Router::for_peer`]).
    remote: Option<SocketAddr>,
    /// The WebSocket endpoints by path (`/ws`, `/echo` and `[[endpoint]]`).
    endpoints: Arc<[EndpointSpec]>,
}

impl Router {
    pub fn new(app: Arc<App>) -> Router {
        let endpoints = app.settings.endpoints().into();
        Router {
            app,
            remote: None,
            endpoints,
        }
    }

    /// The router for one connection, which knows its peer's address.
    pub fn for_peer(&self, remote: SocketAddr) -> Router {
        Router {
            app: self.app.clone(),
            remote: Some(remote),
            endpoints: self.endpoints.clone(),
        }
    }

    /// The router for a task this connection starts (a polling session's).
    pub fn for_task(&self) -> Router {
        Router {
            app: self.app.clone(),
            remote: self.remote,
            endpoints: self.endpoints.clone(),
        }
    }

    /// `/socket.io/socket.io.js` (and `.min.js`): the client script.
    fn is_socket_io_client(&self, path: &str) -> bool {
        let Some(socket_io) = &self.app.socket_io else {
            return false;
        };
        path.strip_prefix(socket_io.path.as_str())
            .is_some_and(|file| matches!(file, "socket.io.js" | "socket.io.min.js"))
    }

    fn is_socket_io(&self, request: &Request) -> bool {
        self.app
            .socket_io
            .as_ref()
            .is_some_and(|socket_io| socket_io.is_path(request.path()))
    }

    /// A Socket.IO connection's admission, at its first CONNECT: the checks
    /// of `/ws` (origin of a cookie, `--ws-token`), then the connect proxy,
    /// told the CONNECT's `auth`, or the hub's authorizer, which finds it
    /// in the request (`socketio::connect::with_auth`).
    pub async fn admit_socket_io(
        &self,
        request: &Request,
        auth: Option<&Value>,
    ) -> Result<Admission, HandshakeError> {
        self.check_cookie_origin(request)
            .and_then(|()| self.check_token(request, self.app.settings.ws_token.as_deref()))?;
        let hub = &self.app.hub;
        match &self.app.connect_proxy {
            None => hub.admit(request),
            Some(_) if hub.is_closing() => Err(HandshakeError::new(503, "server shutting down")),
            Some(proxy) => {
                let grant = proxy.decide_with_auth(request, self.remote, auth).await?;
                hub.admit_with(grant)
            }
        }
    }

    /// The decision on a Socket.IO WebSocket: a new connection (decided at
    /// its CONNECT) or the upgrade of a polling session.
    fn upgrade_socket_io(&self, request: &Request) -> Decision<Endpoint> {
        let refuse = |error: EngineError| {
            let (_, message) = error.code_and_message();
            Decision::Reject(HandshakeError::new(400, message))
        };
        let query = match EngineQuery::parse(request) {
            Ok(query) if query.transport == Transport::WebSocket => query,
            Ok(_) => return refuse(EngineError::BadRequest),
            Err(error) => return refuse(error),
        };
        if let Err(error) = self.check_origin(request) {
            return Decision::Reject(error);
        }
        if self.app.hub.is_closing() {
            return Decision::Reject(HandshakeError::new(503, "server shutting down"));
        }
        let sessions = self.app.socket_io.as_ref().map(|s| &s.polling);
        match (query.sid, sessions) {
            (None, _) => Decision::accept(None, Endpoint::SocketIo),
            (Some(sid), Some(sessions)) => match sessions.get(&sid) {
                Some(session) => Decision::accept(None, Endpoint::SocketIoUpgrade(session)),
                None => refuse(EngineError::UnknownSid),
            },
            (Some(_), None) => refuse(EngineError::UnknownSid),
        }
    }

    /// A long-polling request: a new session, or a GET of a session's.
    async fn poll_socket_io(&self, request: &Request) -> HttpResponse {
        let query = match EngineQuery::parse(request) {
            Ok(query) if query.transport == Transport::Polling => query,
            Ok(_) => return EngineError::BadRequest.response(),
            Err(error) => return error.response(),
        };
        if let Err(error) = self.check_origin(request) {
            return error_response(403, "forbidden", error.reason());
        }
        match (request.method(), query.sid) {
            ("GET", None) if self.app.hub.is_closing() => {
                HttpResponse::text(503, "server shutting down\n")
            }
            ("GET", None) => {
                socketio::polling::open(&self.app, self.for_task(), request, self.remote).await
            }
            ("GET", Some(sid)) => socketio::polling::get(&self.app, &sid).await,
            _ => EngineError::BadRequest.response(),
        }
    }

    fn endpoint(&self, path: &str) -> Option<&EndpointSpec> {
        self.endpoints.iter().find(|spec| spec.path == path)
    }

    /// The checks of a hub-admitted endpoint (hub, is2, rooms), then the
    /// connect proxy's decision, if there is one (asked only once the
    /// router's own checks passed), then the hub's own, which takes the
    /// connection's place.
    async fn admit_to_hub(&self, request: &Request) -> Result<Admission, HandshakeError> {
        self.check_origin(request)
            .and_then(|()| self.check_cookie_origin(request))
            .and_then(|()| self.check_token(request, self.app.settings.ws_token.as_deref()))?;
        let hub = &self.app.hub;
        match &self.app.connect_proxy {
            None => hub.admit(request),
            // Not worth asking the backend about a server that is closing.
            Some(_) if hub.is_closing() => Err(HandshakeError::new(503, "server shutting down")),
            Some(proxy) => hub.admit_with(proxy.decide(request, self.remote).await?),
        }
    }

    /// What an endpoint of `kind` admits, after its checks.
    async fn admit(
        &self,
        kind: EndpointKind,
        request: &Request,
    ) -> Result<Endpoint, HandshakeError> {
        match kind {
            EndpointKind::Hub => self.admit_to_hub(request).await.map(Endpoint::Hub),
            EndpointKind::Is2 => self.admit_to_hub(request).await.map(|mut admission| {
                // IS2 sends every message to every client, and answers each
                // of a client's messages with {"handshake":true}.
                if let Ok(everything) = pattern::Pattern::parse("/**") {
                    admission.subscribe(everything);
                }
                admission.answer_each_message(json!({ "handshake": true }));
                Endpoint::Hub(admission)
            }),
            EndpointKind::Echo => self
                .check_origin(request)
                .and_then(|()| self.check_cookie_origin(request))
                .and_then(|()| self.check_echo_credentials(request))
                .and_then(|()| self.echo_permit())
                .map(Endpoint::Echo),
            EndpointKind::Rooms => self.admit_to_hub(request).await.map(Endpoint::Rooms),
        }
    }

    fn check_origin(&self, request: &Request) -> Result<(), HandshakeError> {
        let allowed = &self.app.settings.allowed_origins;
        match request.header("origin") {
            Some(origin) if !allowed.is_empty() && !allowed.iter().any(|a| a == origin) => Err(
                HandshakeError::new(403, format!("origin {origin} is not allowed")),
            ),
            _ => Ok(()),
        }
    }

    /// A browser sends `Origin` with every POST, and a page on another
    /// site may POST a form or `text/plain` to us without asking first (no
    /// CORS preflight). So a POST with an `Origin` must come from an
    /// allowed origin, or, with none configured, from this server's own
    /// host. Programs (curl, backends) send no `Origin` and are not affected.
    fn check_post_origin(&self, request: &Request) -> Result<(), HandshakeError> {
        self.check_same_origin(request, "publish here")
    }

    /// A browser sends its cookies with a WebSocket that any page opens, on
    /// any site (cross-site WebSocket hijacking): a token that came in the
    /// cookie counts only from an allowed origin or, with none configured,
    /// from this server's own host. A token in a header or the query was put
    /// there by the page itself and is not affected.
    fn check_cookie_origin(&self, request: &Request) -> Result<(), HandshakeError> {
        let settings = &self.app.settings;
        let signed_tokens = settings.jwt_secret.is_some() || settings.jwt_public_key.is_some();
        let from_cookie = super::credentials::bearer(request).is_none()
            && super::credentials::cookie(request, &settings.jwt_cookie).is_some();
        if signed_tokens && from_cookie {
            self.check_same_origin(request, "use its cookie here")
        } else {
            Ok(())
        }
    }

    /// A request with an `Origin` is from an allowed one or, with none
    /// configured, from this server's own host.
    fn check_same_origin(&self, request: &Request, to_do: &str) -> Result<(), HandshakeError> {
        let Some(origin) = request.header("origin") else {
            return Ok(());
        };
        let allowed = &self.app.settings.allowed_origins;
        let ok = if allowed.is_empty() {
            let host = origin.split_once("://").map_or(origin, |(_, host)| host);
            request.header("host") == Some(host)
        } else {
            allowed.iter().any(|a| a == origin)
        };
        if ok {
            Ok(())
        } else {
            Err(HandshakeError::new(
                403,
                format!("origin {origin} may not {to_do}"),
            ))
        }
    }

    fn echo_permit(&self) -> Result<OwnedSemaphorePermit, HandshakeError> {
        if self.app.hub.is_closing() {
            return Err(HandshakeError::new(503, "server shutting down"));
        }
        Arc::clone(&self.app.echo_permits)
            .try_acquire_owned()
            .map_err(|_| {
                let max = self.app.settings.max_echo_connections;
                HandshakeError::new(503, format!("echo connection limit of {max} reached"))
            })
    }

    /// `/echo` asks for its own token, else the hub's: the `--ws-token`, or
    /// with signed tokens, a valid one (an echo connection has no use for
    /// the grant, but an anonymous peer must not take the places).
    fn check_echo_credentials(&self, request: &Request) -> Result<(), HandshakeError> {
        let settings = &self.app.settings;
        match settings.echo_token() {
            Some(token) => self.check_token(request, Some(token)),
            None if settings.jwt_secret.is_some() || settings.jwt_public_key.is_some() => self
                .app
                .hub
                .authorize_grant(request)
                .map(drop)
                .map_err(|(status, reason)| HandshakeError::new(status, reason)),
            None => Ok(()),
        }
    }

    fn check_token(&self, request: &Request, expected: Option<&str>) -> Result<(), HandshakeError> {
        let Some(expected) = expected else {
            return Ok(());
        };
        let given = super::credentials::token(request, None);
        match given {
            Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => Ok(()),
            Some(_) => Err(HandshakeError::new(403, "invalid token")),
            None => Err(HandshakeError::new(
                401,
                "a token is required (?token= or Authorization: Bearer)",
            )),
        }
    }
}

impl Handler for Router {
    type Admission = Endpoint;

    /// The one decision on an upgrade: the endpoint of the path, the
    /// router's own checks, the connect proxy's if there is one, then the
    /// hub's (shutdown, authorizer, `max_connections`), which takes the
    /// connection's place. The subprotocol is the endpoint's choice
    /// (`EndpointSpec::select_protocol`), not the transport's `preferred` one.
    async fn upgrade(&self, request: &Request, _preferred: Option<&str>) -> Decision<Endpoint> {
        if self.is_socket_io(request) {
            return self.upgrade_socket_io(request);
        }
        let Some(spec) = self.endpoint(request.path()) else {
            let path = request.path();
            return Decision::Reject(HandshakeError::new(
                404,
                format!("no WebSocket endpoint at {path}"),
            ));
        };
        match self.admit(spec.kind, request).await {
            Ok(endpoint) => {
                let offered = request.protocols();
                Decision::accept(spec.select_protocol(&offered), endpoint)
            }
            Err(error) => Decision::Reject(error),
        }
    }

    /// `POST /api/publish?room=…` streams its body to the room.
    /// and a Socket.IO POST is read up to `maxPayload` as it comes.
    fn streams_body(&self, request: &Request) -> bool {
        super::publish_stream::is_streamed(request)
            || (request.method() == "POST" && self.is_socket_io(request))
    }

    /// The checks of `POST /api/publish` (key, origin), then the stream.
    async fn http_stream(&self, request: &Request, body: &mut BodyStream<'_>) -> HttpResponse {
        if self.is_socket_io(request) {
            if let Err(error) = self.check_origin(request) {
                return error_response(403, "forbidden", error.reason());
            }
            return match EngineQuery::parse(request) {
                Ok(EngineQuery {
                    transport: Transport::Polling,
                    sid: Some(sid),
                }) => socketio::polling::post(&self.app, &sid, body).await,
                Ok(_) => EngineError::BadRequest.response(),
                Err(error) => error.response(),
            };
        }
        if let Err(refusal) = check_key(request, &self.app.settings.api_key) {
            return refusal;
        }
        if let Err(error) = self.check_post_origin(request) {
            return error_response(403, "forbidden", error.reason());
        }
        super::publish_stream::publish(&self.app, request, body).await
    }

    async fn http(&self, request: &Request, body: Bytes) -> HttpResponse {
        let method = request.method();
        match (method, request.path()) {
            ("GET" | "HEAD", "/") => HttpResponse::new(200, "text/html; charset=utf-8", CHAT_PAGE),
            ("GET" | "HEAD", "/demo") => {
                HttpResponse::new(200, "text/html; charset=utf-8", DEMO_PAGE)
            }
            ("GET" | "HEAD", "/switchboard.js") => {
                HttpResponse::new(200, "text/javascript; charset=utf-8", CLIENT_SCRIPT)
            }
            ("GET" | "HEAD", "/healthz") => self.health(),
            ("GET" | "HEAD", path) if self.is_socket_io_client(path) => HttpResponse::new(
                200,
                "application/javascript; charset=utf-8",
                SOCKET_IO_CLIENT,
            ),
            (_, _) if self.is_socket_io(request) => self.poll_socket_io(request).await,
            ("GET" | "HEAD", "/metrics") => {
                match check_key(request, &self.app.settings.metrics_key) {
                    Ok(()) => HttpResponse::new(
                        200,
                        "text/plain; version=0.0.4; charset=utf-8",
                        super::metrics::render(&self.app),
                    ),
                    Err(refusal) => refusal,
                }
            }
            ("POST", "/api/publish") => self.publish(request, &body).await,
            (_, "/api/publish") => {
                HttpResponse::text(405, "use POST\n").with_header("Allow", "POST")
            }
            (_, path) if path.starts_with(super::bridge_api::PATH) => {
                self.bridges(request, &body).await
            }
            (_, path) if self.endpoint(path).is_some() => {
                HttpResponse::text(426, "this endpoint speaks WebSocket\n")
                    .with_header("Upgrade", "websocket")
                    .with_header("Sec-WebSocket-Version", "13")
            }
            _ => HttpResponse::text(404, format!("nothing at {}\n", request.path())),
        }
    }
}

impl Router {
    fn health(&self) -> HttpResponse {
        let stats = self.app.hub.stats();
        let mut body = json!({
            "status": if self.app.hub.is_closing() { "shutting_down" } else { "ok" },
            "connections": stats.connections,
            "rooms": stats.rooms,
            "uptime_seconds": self.app.started.elapsed().as_secs(),
        });
        // A node cut off from Redis still serves its own clients: it says
        // "degraded" but stays 200, so a load balancer keeps it.
        if let (Some(cluster), Value::Object(fields)) = (&self.app.cluster, &mut body) {
            if let Value::Object(extra) = cluster.health(&self.app.hub) {
                fields.extend(extra);
            }
        }
        let status = if self.app.hub.is_closing() { 503 } else { 200 };
        json_response(status, &body)
    }

    /// `POST /api/publish`: pushes an event to a room, a connection or
    /// everyone, or an address-style message to its subscribers.
    async fn publish(&self, request: &Request, body: &[u8]) -> HttpResponse {
        if let Err(refusal) = check_key(request, &self.app.settings.api_key) {
            return refusal;
        }
        if let Err(error) = self.check_post_origin(request) {
            return error_response(403, "forbidden", error.reason());
        }
        let value: Value = match serde_json::from_slice(body) {
            Ok(value) => value,
            Err(error) => return error_response(400, "invalid_json", &error.to_string()),
        };
        match publish(&self.app.hub, &value).await {
            Ok(answer) => json_response(200, &answer),
            Err(error) if error.code == "history_unavailable" => {
                error_response(503, error.code, &error.message)
            }
            Err(error) => error_response(400, error.code, &error.message),
        }
    }
}

impl Router {
    /// `/api/bridges`: only with an API key configured and given (opening
    /// sockets on the server is not for anyone who can reach it), and a
    /// change only from a program or this site (as `POST /api/publish`).
    async fn bridges(&self, request: &Request, body: &[u8]) -> HttpResponse {
        let Some(id) = super::bridge_api::id_in(request.path()) else {
            return HttpResponse::text(404, format!("nothing at {}\n", request.path()));
        };
        if self.app.settings.api_key.is_none() {
            let why = "bridges are managed only on a server with an API key (--api-key)";
            return error_response(403, "forbidden", why);
        }
        if let Err(refusal) = check_key(request, &self.app.settings.api_key) {
            return refusal;
        }
        if !matches!(request.method(), "GET" | "HEAD") {
            if let Err(error) = self.check_same_origin(request, "manage bridges here") {
                return error_response(403, "forbidden", error.reason());
            }
        }
        let answer =
            super::bridge_api::handle(&self.app.bridges, request.method(), id.as_deref(), body)
                .await;
        match answer {
            Ok((status, body)) => json_response(status, &body),
            Err((405, code, message)) => {
                error_response(405, code, &message).with_header("Allow", "GET, POST, DELETE")
            }
            Err((status, code, message)) => error_response(status, code, &message),
        }
    }
}

/// Routes one published message; answers how many connections queued it
/// (and, in a room with history, its offset and epoch, once stored). Its
/// fields are checked as the hub checks a client's (docs/PROTOCOL.md).
async fn publish(hub: &Hub, value: &Value) -> Result<Value, RequestError> {
    if let Some(path) = value.get("path").and_then(Value::as_str) {
        pattern::check_published_address(path)
            .map_err(|why| RequestError::new("invalid_address", why))?;
        let values =
            envelope::address_values(value.get("values").cloned(), value.get("value").cloned())?;
        return Ok(json!({ "delivered": hub.publish(path, &values) }));
    }
    let event = value.get("event").and_then(Value::as_str).ok_or_else(|| {
        RequestError::new(
            "invalid_message",
            "give \"event\" (with \"room\", \"to\" or \"broadcast\") or \"path\"",
        )
    })?;
    envelope::check_event_name(event)?;
    let data = value.get("data").cloned().unwrap_or(Value::Null);
    let room = value.get("room").and_then(Value::as_str);
    let to = value.get("to").and_then(Value::as_str);
    let broadcast = value.get("broadcast").and_then(Value::as_bool) == Some(true);
    let delivered = match (room, to, broadcast) {
        (Some(room), None, false) => {
            let room = envelope::room_name(Some(room))?;
            let published = hub.to(&room).emit_stored(event, &data).await;
            let published =
                published.map_err(|error| RequestError::new("history_unavailable", error.0))?;
            return Ok(match published.stored {
                Some(stored) => json!({
                    "delivered": published.delivered,
                    "offset": stored.offset,
                    "epoch": stored.epoch,
                }),
                None => json!({ "delivered": published.delivered }),
            });
        }
        (None, Some(to), false) => usize::from(hub.emit_to(to, event, &data).is_ok()),
        (None, None, true) => hub.emit_all(event, &data),
        (None, None, false) => {
            return Err(RequestError::new(
                "invalid_target",
                "give \"room\", \"to\" or \"broadcast\": true",
            ))
        }
        _ => {
            return Err(RequestError::new(
                "invalid_target",
                "use at most one of \"room\", \"to\" and \"broadcast\"",
            ))
        }
    };
    Ok(json!({ "delivered": delivered }))
}

/// Checks a key given as `Authorization: Bearer KEY` or `X-Api-Key`, when
/// one is configured; the refusal (401 or 403) otherwise.
fn check_key(request: &Request, key: &Option<String>) -> Result<(), HttpResponse> {
    let Some(key) = key else {
        return Ok(());
    };
    let given = bearer(request).or_else(|| request.header("x-api-key").map(str::to_owned));
    match given {
        Some(given) if constant_time_eq(given.as_bytes(), key.as_bytes()) => Ok(()),
        Some(_) => Err(error_response(403, "forbidden", "invalid key")),
        None => Err(error_response(
            401,
            "unauthorized",
            "a key is required (Authorization: Bearer KEY)",
        )),
    }
}
