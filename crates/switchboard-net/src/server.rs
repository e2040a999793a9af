//! Accepting connections: read the request head, answer plain HTTP through
//! the application's handler, or upgrade to a WebSocket.

use bytes::{Bytes, BytesMut};
use switchboard_proto::deflate::{Negotiated, SharedDeflate};
use switchboard_proto::handshake::server::status_text;
use switchboard_proto::handshake::{reject_response, Request, Upgrade};
use switchboard_proto::{HandshakeError, Role};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::body::BodyStream;
use crate::config::Config;
use crate::error::Error;
use crate::session::Session;
use crate::socket::WebSocket;

/// A plain HTTP response, for requests that are not upgrades.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Headers besides `Content-Length` and `Connection`, which are added.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// A response with a content type and a body.
    pub fn new(status: u16, content_type: &str, body: impl Into<Bytes>) -> Self {
        HttpResponse {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    /// A plain-text response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body.into())
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The response as bytes on the wire; the connection closes after it.
    pub fn encode(&self, head_only: bool) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, status_text(self.status));
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        ));
        let mut bytes = out.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

/// What to do with a valid upgrade request.
///
/// An accepted upgrade carries an `admission`: whatever the handler decided
/// with (the user it authenticated, a connection permit it took) reaches the
/// [`Accepted`] connection unchanged, so the decision is made once, at the
/// point where the 101 is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<A = ()> {
    /// Accept, with the chosen subprotocol and extra response headers.
    Accept {
        /// The subprotocol to answer with; must be one the client offered.
        protocol: Option<String>,
        /// Extra headers for the 101 response.
        headers: Vec<(String, String)>,
        /// Handed to the accepted connection.
        admission: A,
    },
    /// Refuse with an HTTP status (401, 403, 503, …) and a reason.
    Reject(HandshakeError),
}

impl<A> Decision<A> {
    /// Accepts with `protocol` (usually the `preferred` one handed to
    /// [`Handler::upgrade`]) and no extra headers.
    pub fn accept(protocol: Option<&str>, admission: A) -> Self {
        Decision::Accept {
            protocol: protocol.map(str::to_owned),
            headers: Vec::new(),
            admission,
        }
    }
}

/// The application's say in accepting connections.
pub trait Handler: Send + Sync {
    /// What an accepted upgrade carries to its connection (`()` for nothing).
    type Admission: Send + 'static;

    /// Decides on a valid upgrade request: authentication, origin checks,
    /// connection limits. `preferred` is the subprotocol the configuration
    /// would pick.
    ///
    /// The decision may wait (ask an authentication backend, say): it is an
    /// `async fn` in an implementation. The whole handshake, this wait
    /// included, is still bounded by [`Config::handshake_timeout`], after
    /// which the client is answered 408.
    fn upgrade(
        &self,
        request: &Request,
        preferred: Option<&str>,
    ) -> impl std::future::Future<Output = Decision<Self::Admission>> + Send;

    /// Whether `request`'s body goes to [`Handler::http_stream`] as it
    /// arrives, of any length and chunked too, rather than read whole (up
    /// to `max_http_body`) for [`Handler::http`]. Default: never.
    fn streams_body(&self, request: &Request) -> bool {
        let _ = request;
        false
    }

    /// Answers a request whose body streams ([`Handler::streams_body`]):
    /// `body` hands it out piece by piece. Default: 501.
    fn http_stream(
        &self,
        request: &Request,
        body: &mut BodyStream<'_>,
    ) -> impl std::future::Future<Output = HttpResponse> + Send {
        let _ = (request, body);
        std::future::ready(HttpResponse::text(
            501,
            "streamed bodies are not handled here\n",
        ))
    }

    /// Answers a request that is not a WebSocket upgrade (an `async fn`
    /// in an implementation: it may wait on other work). Default: 426.
    fn http(
        &self,
        request: &Request,
        body: Bytes,
    ) -> impl std::future::Future<Output = HttpResponse> + Send {
        let _ = (request, body);
        std::future::ready(
            HttpResponse::text(426, "this endpoint speaks WebSocket only\n")
                .with_header("Upgrade", "websocket")
                .with_header("Sec-WebSocket-Version", "13"),
        )
    }
}

/// The default handler: accepts every upgrade with the preferred
/// subprotocol, answers HTTP with 426.
#[derive(Debug, Default, Clone, Copy)]
pub struct AcceptAll;

impl Handler for AcceptAll {
    type Admission = ();

    async fn upgrade(&self, _: &Request, preferred: Option<&str>) -> Decision {
        Decision::accept(preferred, ())
    }
}

/// An upgraded connection with the request that opened it.
#[derive(Debug)]
pub struct Accepted<A = ()> {
    /// The WebSocket.
    pub socket: WebSocket,
    /// The upgrade request (path, query, headers).
    pub request: Request,
    /// The subprotocol agreed on.
    pub protocol: Option<String>,
    /// How frames for this connection may be compressed once and shared
    /// with others (set when permessage-deflate was agreed without server
    /// context takeover); frames encoded plainly are always valid too.
    pub deflate: Option<SharedDeflate>,
    /// What the handler accepted the upgrade with.
    pub admission: A,
}

impl<A> Accepted<A> {
    /// Swaps the admission for another value: for a handler whose admission
    /// says which of several services takes the connection.
    pub fn replace_admission<B>(self, admission: B) -> (Accepted<B>, A) {
        let accepted = Accepted {
            socket: self.socket,
            request: self.request,
            protocol: self.protocol,
            deflate: self.deflate,
            admission,
        };
        (accepted, self.admission)
    }

    /// Turns the connection into a [`Session`] for one task to drive, with
    /// an [`Outbox`](crate::Outbox) of at most `max_frames` frames and `max_bytes` bytes
    /// (see [`crate::Config::max_pending_send_bytes`]) that other tasks send on.
    pub fn into_session(self, max_frames: usize, max_bytes: usize) -> (Session, Parts<A>) {
        let session = self.socket.into_session(max_frames, max_bytes);
        let parts = Parts {
            request: self.request,
            protocol: self.protocol,
            deflate: self.deflate,
            admission: self.admission,
        };
        (session, parts)
    }
}

/// What comes with an [`Accepted`] connection besides its socket.
#[derive(Debug)]
pub struct Parts<A = ()> {
    /// The upgrade request (path, query, headers).
    pub request: Request,
    /// The subprotocol agreed on.
    pub protocol: Option<String>,
    /// See [`Accepted::deflate`].
    pub deflate: Option<SharedDeflate>,
    /// What the handler accepted the upgrade with.
    pub admission: A,
}

/// Serves one TCP connection: upgrades it, or answers it as HTTP.
///
/// Returns `Ok(None)` when the request was answered as plain HTTP or
/// refused (the response has been written). The whole head must arrive within
/// `handshake_timeout`.
pub async fn accept<H: Handler + ?Sized>(
    stream: TcpStream,
    config: &Config,
    handler: &H,
) -> Result<Option<Accepted<H::Admission>>, Error> {
    let _ = stream.set_nodelay(true);
    let mut stream = stream;
    let Some(mut upgraded) = Box::pin(respond(&mut stream, config, handler)).await? else {
        return Ok(None);
    };
    let leftover = std::mem::take(&mut upgraded.rest);
    let socket = WebSocket::from_tcp(stream, Role::Server, config, leftover);
    Ok(Some(finish(socket, upgraded, config)))
}

/// Like [`accept`], over any stream (TLS, a Unix socket, an in-memory pipe).
pub async fn accept_stream<S, H>(
    mut stream: S,
    config: &Config,
    handler: &H,
) -> Result<Option<Accepted<H::Admission>>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Handler + ?Sized,
{
    let Some(mut upgraded) = Box::pin(respond(&mut stream, config, handler)).await? else {
        return Ok(None);
    };
    let leftover = std::mem::take(&mut upgraded.rest);
    let socket = WebSocket::from_stream(stream, Role::Server, config, leftover);
    Ok(Some(finish(socket, upgraded, config)))
}

/// Turns on the compression that was negotiated and describes the result.
fn finish<A>(socket: WebSocket, upgraded: Upgraded<A>, config: &Config) -> Accepted<A> {
    let shared = match (&upgraded.deflate, &config.deflate) {
        (Some(negotiated), Some(settings)) => {
            socket.enable_deflate(negotiated, settings);
            negotiated.shared(settings)
        }
        _ => None,
    };
    Accepted {
        socket,
        request: upgraded.request,
        protocol: upgraded.protocol,
        deflate: shared,
        admission: upgraded.admission,
    }
}

// `respond` is boxed by its callers: the handshake's state is large and
// short-lived, and would otherwise size every connection's task for its
// whole life.

/// An upgrade that was answered with 101.
struct Upgraded<A> {
    request: Request,
    protocol: Option<String>,
    deflate: Option<Negotiated>,
    /// Bytes read past the head; they belong to the WebSocket.
    rest: BytesMut,
    admission: A,
}

async fn respond<S, H>(
    stream: &mut S,
    config: &Config,
    handler: &H,
) -> Result<Option<Upgraded<H::Admission>>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: Handler + ?Sized,
{
    let deadline = tokio::time::Instant::now() + config.handshake_timeout;
    let head = tokio::time::timeout_at(deadline, read_head(stream, config)).await;
    let (request, mut rest) = match head {
        Err(_) => {
            let error = HandshakeError::new(408, "handshake timeout");
            refuse(stream, &error, config).await;
            return Err(Error::timeout("opening handshake"));
        }
        Ok(Err(error)) => {
            if let Some(handshake) = error.handshake_error() {
                refuse(stream, handshake, config).await;
            }
            return Err(error);
        }
        Ok(Ok(parsed)) => parsed,
    };
    if !request.is_websocket_upgrade() && handler.streams_body(&request) {
        let response = match body_framing(&request) {
            Ok((length, chunked)) => {
                let rest = std::mem::take(&mut rest);
                let idle = config.handshake_timeout;
                let mut body = BodyStream::new(stream, rest, length, chunked, idle);
                handler.http_stream(&request, &mut body).await
            }
            Err(error) => HttpResponse::text(error.status(), format!("{}\n", error.reason())),
        };
        let response = response.encode(request.method() == "HEAD");
        write_within(stream, &response, config).await?;
        linger(stream).await;
        return Ok(None);
    }
    if !request.is_websocket_upgrade() {
        let body = read_body(stream, &request, &mut rest, config).await;
        let response = match body {
            Ok(body) => handler.http(&request, body).await,
            Err(error) => HttpResponse::text(error.status(), format!("{}\n", error.reason())),
        };
        let response = response.encode(request.method() == "HEAD");
        write_within(stream, &response, config).await?;
        linger(stream).await;
        return Ok(None);
    }
    let decision = match request.validate_upgrade() {
        Ok(upgrade) => {
            let preferred = upgrade.select_protocol(&config.protocols);
            let deciding = handler.upgrade(&request, preferred);
            match tokio::time::timeout_at(deadline, deciding).await {
                Ok(decision) => Ok((upgrade, decision)),
                Err(_) => Err(HandshakeError::new(408, "handshake timeout")),
            }
        }
        Err(error) => Err(error),
    };
    match decision {
        Ok((
            upgrade,
            Decision::Accept {
                protocol,
                headers,
                admission,
            },
        )) => {
            if let Some(chosen) = &protocol {
                if !upgrade.protocols().iter().any(|offered| offered == chosen) {
                    let error = HandshakeError::new(
                        500,
                        "handler chose a subprotocol the client did not offer",
                    );
                    refuse(stream, &error, config).await;
                    return Err(error.into());
                }
            }
            let (deflate, extensions) = negotiate_deflate(&upgrade, config);
            let response =
                upgrade.accept_response(protocol.as_deref(), extensions.as_deref(), &headers);
            write_within(stream, &response, config).await?;
            Ok(Some(Upgraded {
                request,
                protocol,
                deflate,
                rest,
                admission,
            }))
        }
        Ok((_, Decision::Reject(error))) | Err(error) => {
            refuse(stream, &error, config).await;
            Err(error.into())
        }
    }
}

/// How long a refused or answered connection is drained before it is
/// dropped (see [`linger`]).
const LINGER: std::time::Duration = std::time::Duration::from_millis(500);

/// Answers with an error status and closes gracefully.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    error: &HandshakeError,
    config: &Config,
) {
    let _ = write_within(stream, &reject_response(error), config).await;
    linger(stream).await;
}

/// Writes a response within `handshake_timeout`: a client that asks for a
/// page and never reads it must not hold its connection (and its place
/// among the handshakes) for as long as TCP keeps it open.
async fn write_within<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    config: &Config,
) -> Result<(), Error> {
    match tokio::time::timeout(config.handshake_timeout, stream.write_all(bytes)).await {
        Ok(written) => Ok(written?),
        Err(_) => Err(Error::timeout("writing the handshake response")),
    }
}

/// Sends FIN and reads what the peer still sends, for a short while: closing
/// a socket with unread bytes makes the kernel send a reset, which can
/// destroy the response before the peer reads it.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 1024];
    let drain = async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Picks the client's first acceptable permessage-deflate offer, if
/// compression is on; declined offers are logged (RFC 7692 §5: a server
/// declines malformed offers rather than failing the handshake).
fn negotiate_deflate(upgrade: &Upgrade, config: &Config) -> (Option<Negotiated>, Option<String>) {
    let Some(deflate) = &config.deflate else {
        return (None, None);
    };
    let (chosen, declined) = deflate.negotiate_server(upgrade.extensions());
    for reason in declined {
        tracing::debug!(%reason, "declined permessage-deflate offer");
    }
    match chosen {
        Some((negotiated, header)) => (Some(negotiated), Some(header)),
        None => (None, None),
    }
}

/// Reads until a complete request head; returns it with the bytes after it.
async fn read_head<S>(stream: &mut S, config: &Config) -> Result<(Request, BytesMut), Error>
where
    S: AsyncRead + Unpin,
{
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        if let Some((request, len)) = Request::parse(&buf, &config.limits)? {
            let rest = buf.split_off(len);
            return Ok((request, rest));
        }
        if buf.capacity() == buf.len() {
            buf.reserve(buf.len());
        }
    }
}

/// The body length a request announces. Several `Content-Length` headers
/// that differ, or one that is not all digits, are refused (RFC 9112
/// §6.3): a proxy in front might read another length than we do, and the
/// difference would smuggle a request past it.
fn content_length(request: &Request) -> Result<Option<usize>, HandshakeError> {
    let mut lengths = request
        .headers()
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            let value = std::str::from_utf8(&h.value).unwrap_or("").trim();
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HandshakeError::new(400, "invalid Content-Length"));
            }
            value
                .parse::<usize>()
                .map_err(|_| HandshakeError::new(400, "invalid Content-Length"))
        });
    let Some(first) = lengths.next().transpose()? else {
        return Ok(None);
    };
    for other in lengths {
        if other? != first {
            return Err(HandshakeError::new(
                400,
                "conflicting Content-Length headers",
            ));
        }
    }
    Ok(Some(first))
}

/// How a streamed body ends: its length, or chunked. A transfer coding
/// other than `chunked` is 501; both headers at once are refused (RFC
/// 9112 §6.1: a proxy in front might frame the body otherwise).
fn body_framing(request: &Request) -> Result<(Option<u64>, bool), HandshakeError> {
    let length = content_length(request)?.map(|length| length as u64);
    match request.header("transfer-encoding") {
        None => Ok((length, false)),
        Some(_) if length.is_some() => Err(HandshakeError::new(
            400,
            "Content-Length and Transfer-Encoding together",
        )),
        Some(coding) if coding.trim().eq_ignore_ascii_case("chunked") => Ok((None, true)),
        Some(coding) => Err(HandshakeError::new(
            501,
            format!("transfer coding {coding:?} is not supported; send chunked"),
        )),
    }
}

/// Reads a request body announced by `Content-Length`, up to `max_http_body`.
async fn read_body<S>(
    stream: &mut S,
    request: &Request,
    rest: &mut BytesMut,
    config: &Config,
) -> Result<Bytes, HandshakeError>
where
    S: AsyncRead + Unpin,
{
    if request.header("transfer-encoding").is_some() {
        return Err(HandshakeError::new(
            411,
            "chunked bodies are not accepted; send Content-Length",
        ));
    }
    let length = match content_length(request)? {
        None => return Ok(Bytes::new()),
        Some(length) => length,
    };
    if length > config.max_http_body {
        return Err(HandshakeError::new(
            413,
            format!(
                "body of {length} bytes exceeds max_http_body {}",
                config.max_http_body
            ),
        ));
    }
    let read = async {
        while rest.len() < length {
            if stream.read_buf(rest).await? == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
            }
        }
        Ok(())
    };
    match tokio::time::timeout(config.handshake_timeout, read).await {
        Ok(Ok(())) => Ok(rest.split_to(length).freeze()),
        Ok(Err(_)) => Err(HandshakeError::new(400, "body ended early")),
        Err(_) => Err(HandshakeError::new(408, "body not received in time")),
    }
}
