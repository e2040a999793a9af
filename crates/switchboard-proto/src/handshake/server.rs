//! The server side of the opening handshake (RFC 6455 §4.2).

use base64::Engine;

use super::extensions::{self, ExtensionOffer};
use super::{accept_key, has_token, header_values, own_headers, Header, Limits, VERSION};
use crate::error::HandshakeError;

/// A parsed HTTP request head: an upgrade attempt or a plain HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    target: String,
    minor_version: u8,
    headers: Vec<Header>,
}

impl Request {
    /// Parses a request head from the start of `buf`.
    ///
    /// Returns `Ok(None)` while the head is incomplete, or the request and the
    /// number of bytes it took. A head larger than `max_handshake_bytes` or with
    /// more than `max_headers` headers is refused with 431, bad syntax with 400.
    pub fn parse(buf: &[u8], limits: &Limits) -> Result<Option<(Request, usize)>, HandshakeError> {
        let mut raw = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let mut request = httparse::Request::new(&mut raw);
        let parsed = match request.parse(buf) {
            Ok(status) => status,
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HandshakeError::new(
                    431,
                    format!("more than {} header fields", limits.max_headers),
                ))
            }
            Err(error) => {
                return Err(HandshakeError::new(
                    400,
                    format!("malformed request: {error}"),
                ))
            }
        };
        let httparse::Status::Complete(len) = parsed else {
            if buf.len() > limits.max_handshake_bytes {
                return Err(too_large(limits));
            }
            return Ok(None);
        };
        if len > limits.max_handshake_bytes {
            return Err(too_large(limits));
        }
        let request = Request {
            method: request.method.unwrap_or_default().to_owned(),
            target: request.path.unwrap_or_default().to_owned(),
            minor_version: request.version.unwrap_or_default(),
            headers: own_headers(request.headers),
        };
        Ok(Some((request, len)))
    }

    /// A request from parts parsed elsewhere (e.g. by an HTTP server library).
    pub fn from_parts(
        method: &str,
        target: &str,
        minor_version: u8,
        headers: Vec<Header>,
    ) -> Request {
        Request {
            method: method.to_owned(),
            target: target.to_owned(),
            minor_version,
            headers,
        }
    }

    /// The method, e.g. `GET`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request target: path and query, e.g. `/ws?room=lobby`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The query string, without `?`, if there is one.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, query)| query)
    }

    /// The value of one query parameter (`?name=Al%C3%AFce+B` gives
    /// `Alïce B`), percent-decoded as HTML forms encode it (`+` is a space;
    /// invalid escapes are kept as they are, invalid UTF-8 is replaced).
    /// The first occurrence wins.
    pub fn query_param(&self, key: &str) -> Option<String> {
        query_param(self.query(), key)
    }

    /// Every query parameter, decoded as [`Request::query_param`] decodes
    /// one, in order (a key may come more than once).
    pub fn query_params(&self) -> Vec<(String, String)> {
        query_pairs(self.query()).collect()
    }

    /// All headers, in order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The first header called `name` (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        header_values(&self.headers, name).next()
    }

    /// Whether the client asks for a WebSocket (an `Upgrade: websocket`
    /// header). A request that does not is plain HTTP, for the application to
    /// answer; one that does is validated by [`Request::validate_upgrade`].
    pub fn is_websocket_upgrade(&self) -> bool {
        has_token(&self.headers, "upgrade", "websocket")
    }

    /// The subprotocols the client offers (`Sec-WebSocket-Protocol`, RFC 6455
    /// §4.2.1 item 8), in its order, over every header of that name. A
    /// handler that picks a subprotocol by endpoint reads them here.
    pub fn protocols(&self) -> Vec<String> {
        header_values(&self.headers, "sec-websocket-protocol")
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Checks the request against RFC 6455 §4.2.1.
    ///
    /// A request that is not GET is refused with 405, a version other than
    /// 13 with 426 (and `Sec-WebSocket-Version: 13` in the answer, per §4.4),
    /// everything else that is wrong with 400 and a reason.
    pub fn validate_upgrade(&self) -> Result<Upgrade, HandshakeError> {
        if self.method != "GET" {
            return Err(HandshakeError::new(
                405,
                "a WebSocket handshake must use GET",
            ));
        }
        if self.minor_version < 1 {
            return Err(HandshakeError::new(
                400,
                "a WebSocket handshake needs HTTP/1.1",
            ));
        }
        if self.header("host").is_none() {
            return Err(HandshakeError::new(400, "missing Host header"));
        }
        if !self.is_websocket_upgrade() {
            return Err(HandshakeError::new(
                400,
                "Upgrade header must include \"websocket\"",
            ));
        }
        if !has_token(&self.headers, "connection", "upgrade") {
            return Err(HandshakeError::new(
                400,
                "Connection header must include \"Upgrade\"",
            ));
        }
        let key = self.single_header("sec-websocket-key")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(key)
            .map_err(|_| HandshakeError::new(400, "Sec-WebSocket-Key is not base64"))?;
        if decoded.len() != 16 {
            return Err(HandshakeError::new(
                400,
                "Sec-WebSocket-Key must decode to 16 bytes",
            ));
        }
        match header_values(&self.headers, "sec-websocket-version").collect::<Vec<_>>()[..] {
            [VERSION] => {}
            [] => return Err(HandshakeError::new(426, "missing Sec-WebSocket-Version")),
            _ => {
                return Err(HandshakeError::new(
                    426,
                    "unsupported Sec-WebSocket-Version",
                ))
            }
        }
        let protocols = self.protocols();
        let extensions =
            extensions::parse(header_values(&self.headers, "sec-websocket-extensions")).map_err(
                |why| HandshakeError::new(400, format!("Sec-WebSocket-Extensions: {why}")),
            )?;
        Ok(Upgrade {
            key: key.to_owned(),
            protocols,
            extensions,
        })
    }

    fn single_header(&self, name: &str) -> Result<&str, HandshakeError> {
        let mut values = header_values(&self.headers, name);
        match (values.next(), values.next()) {
            (Some(value), None) => Ok(value),
            (None, _) => Err(HandshakeError::new(400, format!("missing {name} header"))),
            (Some(_), Some(_)) => Err(HandshakeError::new(400, format!("repeated {name} header"))),
        }
    }
}

fn too_large(limits: &Limits) -> HandshakeError {
    HandshakeError::new(
        431,
        format!("request head exceeds {} bytes", limits.max_handshake_bytes),
    )
}

/// A valid upgrade request: what the server needs to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    key: String,
    protocols: Vec<String>,
    extensions: Vec<ExtensionOffer>,
}

impl Upgrade {
    /// The subprotocols the client offered, in its order.
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    /// The extensions the client offered, in its order of preference.
    pub fn extensions(&self) -> &[ExtensionOffer] {
        &self.extensions
    }

    /// Picks a subprotocol: the first of the server's `supported` list, in the
    /// server's order of preference, that the client offered.
    pub fn select_protocol<'a>(&self, supported: &'a [String]) -> Option<&'a str> {
        supported
            .iter()
            .find(|ours| self.protocols.iter().any(|theirs| theirs == *ours))
            .map(String::as_str)
    }

    /// The 101 response accepting this upgrade, with the chosen subprotocol,
    /// the accepted extensions (as a `Sec-WebSocket-Extensions` value) and any
    /// extra headers.
    pub fn accept_response(
        &self,
        protocol: Option<&str>,
        extensions: Option<&str>,
        extra_headers: &[(String, String)],
    ) -> Vec<u8> {
        let mut head = String::with_capacity(160);
        head.push_str("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
        head.push_str(&accept_key(&self.key));
        head.push_str("\r\n");
        if let Some(protocol) = protocol {
            push_header(&mut head, "Sec-WebSocket-Protocol", protocol);
        }
        if let Some(extensions) = extensions {
            push_header(&mut head, "Sec-WebSocket-Extensions", extensions);
        }
        for (name, value) in extra_headers {
            push_header(&mut head, name, value);
        }
        head.push_str("\r\n");
        head.into_bytes()
    }
}

fn push_header(head: &mut String, name: &str, value: &str) {
    head.push_str(name);
    head.push_str(": ");
    head.push_str(value);
    head.push_str("\r\n");
}

/// The HTTP response refusing a handshake: the error's status, its reason as
/// a plain-text body, and `Sec-WebSocket-Version: 13` on a 426 (RFC 6455 §4.4).
pub fn reject_response(error: &HandshakeError) -> Vec<u8> {
    let status = error.status();
    let mut head = format!("HTTP/1.1 {status} {}\r\n", status_text(status));
    if status == 426 {
        push_header(&mut head, "Sec-WebSocket-Version", VERSION);
        push_header(&mut head, "Upgrade", "websocket");
    }
    if status == 405 {
        push_header(&mut head, "Allow", "GET");
    }
    let body = format!("{}\n", error.reason());
    head.push_str("Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n");
    push_header(&mut head, "Content-Length", &body.len().to_string());
    head.push_str("\r\n");
    head.push_str(&body);
    head.into_bytes()
}

/// The reason phrase of the statuses a WebSocket server answers with.
pub fn status_text(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// The decoded value of `key` in a query string (see [`Request::query_param`]).
pub fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query_pairs(query).find_map(|(k, v)| (k == key).then_some(v))
}

/// The decoded `key=value` pairs of a query string, in order.
fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (String, String)> + '_ {
    query
        .into_iter()
        .flat_map(|query| query.split('&'))
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match bytes.get(i + 1..i + 3).and_then(hex_byte) {
                Some(byte) => {
                    out.push(byte);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "GET /chat?x=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

    fn parse(text: &str) -> Result<Upgrade, HandshakeError> {
        let (request, _) = Request::parse(text.as_bytes(), &Limits::default())?.unwrap();
        request.validate_upgrade()
    }

    #[test]
    fn rfc_example_is_accepted() {
        let (request, len) = Request::parse(GOOD.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(len, GOOD.len());
        assert_eq!(request.path(), "/chat");
        assert_eq!(request.query(), Some("x=1"));
        let upgrade = request.validate_upgrade().unwrap();
        let response = String::from_utf8(upgrade.accept_response(Some("chat"), None, &[])).unwrap();
        assert!(response.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(response.contains("Sec-WebSocket-Protocol: chat\r\n"));
        assert!(response.ends_with("\r\n\r\n"));
    }

    #[test]
    fn incomplete_until_blank_line() {
        for cut in 0..GOOD.len() {
            assert_eq!(
                Request::parse(&GOOD.as_bytes()[..cut], &Limits::default()),
                Ok(None),
                "{cut}"
            );
        }
    }

    #[test]
    fn tokens_are_case_insensitive_and_in_lists() {
        let text = GOOD
            .replace("Upgrade: websocket", "upgrade: WebSocket")
            .replace("Connection: Upgrade", "Connection: keep-alive, upgrade");
        assert!(parse(&text).is_ok());
    }

    #[test]
    fn server_chooses_protocol_by_its_own_preference() {
        let upgrade = parse(GOOD).unwrap();
        let ours = vec!["superchat".to_owned(), "chat".to_owned()];
        assert_eq!(upgrade.select_protocol(&ours), Some("superchat"));
        assert_eq!(upgrade.select_protocol(&["mqtt".to_owned()]), None);
    }

    #[test]
    fn malformed_requests_get_their_status() {
        let cases: &[(&str, &str, u16)] = &[
            ("GET /chat", "POST /chat", 405),
            ("HTTP/1.1\r\n", "HTTP/1.0\r\n", 400),
            ("Host: server.example.com\r\n", "", 400),
            ("Upgrade: websocket", "Upgrade: h2c", 400),
            ("Connection: Upgrade", "Connection: keep-alive", 400),
            ("dGhlIHNhbXBsZSBub25jZQ==", "not base64!", 400),
            ("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=", 400),
            ("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8", 426),
            ("Sec-WebSocket-Version: 13\r\n", "", 426),
        ];
        for (from, to, status) in cases {
            let text = GOOD.replacen(from, to, 1);
            let error = parse(&text).expect_err(to);
            assert_eq!(error.status(), *status, "{from} -> {to}: {error}");
        }
    }

    #[test]
    fn limits_give_431() {
        let many: String = (0..100).map(|i| format!("X-{i}: v\r\n")).collect();
        let text = GOOD.replace("\r\n\r\n", &format!("\r\n{many}\r\n"));
        let error = Request::parse(text.as_bytes(), &Limits::default()).unwrap_err();
        assert_eq!(error.status(), 431);
        let big = GOOD.replace(
            "\r\n\r\n",
            &format!("\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000)),
        );
        let error = Request::parse(big.as_bytes(), &Limits::default()).unwrap_err();
        assert_eq!(error.status(), 431);
        let endless = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(20_000));
        let error = Request::parse(endless.as_bytes(), &Limits::default()).unwrap_err();
        assert_eq!(error.status(), 431);
    }

    #[test]
    fn reject_426_names_the_version() {
        let text =
            String::from_utf8(reject_response(&HandshakeError::new(426, "unsupported"))).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
        assert!(text.ends_with("unsupported\n"));
    }

    #[test]
    fn query_params_are_percent_decoded() {
        let decode = |q: &str, k: &str| query_param(Some(q), k);
        assert_eq!(
            decode("a=1&name=Al%C3%AFce+B", "name").as_deref(),
            Some("Alïce B")
        );
        assert_eq!(decode("name=%zz%4", "name").as_deref(), Some("%zz%4"));
        assert_eq!(decode("tok%65n=a%2Bb", "token").as_deref(), Some("a+b"));
        assert_eq!(decode("x=1&flag", "flag").as_deref(), Some(""));
        assert_eq!(decode("x=1", "name"), None);
        assert_eq!(query_param(None, "name"), None);
    }
}
