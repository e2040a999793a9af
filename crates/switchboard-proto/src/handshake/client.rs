//! The client side of the opening handshake (RFC 6455 §4.1).

use base64::Engine;

use super::extensions::{self, ExtensionOffer};
use super::{accept_key, has_token, header_values, own_headers, Header, Limits, VERSION};
use crate::error::HandshakeError;

/// Where a client connects: parsed from a `ws://` or `wss://` URL (RFC 6455 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Whether the URL asked for TLS (`wss://`).
    pub secure: bool,
    /// The host, without brackets for IPv6 literals.
    pub host: String,
    /// The port, 80 or 443 by default.
    pub port: u16,
    /// The path and query, `/` when the URL has none.
    pub resource: String,
}

impl Target {
    /// Parses a `ws://host[:port][/path][?query]` or `wss://…` URL. Fragments
    /// are not allowed (RFC 6455 §3).
    pub fn parse(url: &str) -> Result<Target, HandshakeError> {
        let bad = |why: &str| HandshakeError::new(0, format!("invalid URL {url:?}: {why}"));
        let (secure, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "ws://") {
            (false, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(url, "wss://") {
            (true, rest)
        } else {
            return Err(bad("the scheme must be ws:// or wss://"));
        };
        if rest.contains('#') {
            return Err(bad("a WebSocket URL has no fragment"));
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, resource) = rest.split_at(split);
        let resource = match resource {
            "" => "/".to_owned(),
            r if r.starts_with('?') => format!("/{r}"),
            r => r.to_owned(),
        };
        let default_port = if secure { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            let port = match after.strip_prefix(':') {
                Some(port) => port.parse().map_err(|_| bad("bad port"))?,
                None if after.is_empty() => default_port,
                None => return Err(bad("junk after ]")),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, port.parse().map_err(|_| bad("bad port"))?),
                None => (authority, default_port),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Target {
            secure,
            host: host.to_owned(),
            port,
            resource,
        })
    }

    /// The `Host` header value: the port is left out when it is the default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = if self.secure { 443 } else { 80 };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// What a client asks for beyond the bare handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Subprotocols to offer, in order of preference.
    pub protocols: Vec<String>,
    /// The `Sec-WebSocket-Extensions` value to offer, if any.
    pub extensions: Option<String>,
    /// Extra headers (e.g. `Origin`, `Authorization`).
    pub headers: Vec<(String, String)>,
    /// Size limits on the server's response.
    pub limits: Limits,
}

/// A client handshake in progress: the request was built, the response is awaited.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    key: String,
    options: ClientOptions,
}

/// The server's accepted response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The subprotocol the server chose, if any.
    pub protocol: Option<String>,
    /// The extensions the server accepted, with their parameters.
    pub extensions: Vec<ExtensionOffer>,
    /// Every header of the response.
    pub headers: Vec<Header>,
}

impl ClientHandshake {
    /// Builds the request for `target` with a fresh random key; returns the
    /// handshake state and the bytes to send.
    pub fn new(target: &Target, options: ClientOptions) -> (ClientHandshake, Vec<u8>) {
        let key_bytes: [u8; 16] = rand::random();
        let key = base64::engine::general_purpose::STANDARD.encode(key_bytes);
        let mut head = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {VERSION}\r\n",
            target.resource,
            target.host_header()
        );
        if !options.protocols.is_empty() {
            head.push_str(&format!(
                "Sec-WebSocket-Protocol: {}\r\n",
                options.protocols.join(", ")
            ));
        }
        if let Some(extensions) = &options.extensions {
            head.push_str(&format!("Sec-WebSocket-Extensions: {extensions}\r\n"));
        }
        for (name, value) in &options.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        (ClientHandshake { key, options }, head.into_bytes())
    }

    /// The key this handshake sent.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Parses and checks the server's response (RFC 6455 §4.1, the client's
    /// checks 1–6). Returns `Ok(None)` while incomplete, or the response and
    /// the bytes it took; what follows belongs to the WebSocket connection.
    pub fn parse_response(&self, buf: &[u8]) -> Result<Option<(Response, usize)>, HandshakeError> {
        let limits = &self.options.limits;
        let mut raw = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let mut response = httparse::Response::new(&mut raw);
        let status = response
            .parse(buf)
            .map_err(|error| HandshakeError::new(0, format!("malformed response: {error}")))?;
        let httparse::Status::Complete(len) = status else {
            if buf.len() > limits.max_handshake_bytes {
                return Err(HandshakeError::new(0, "response head too large"));
            }
            return Ok(None);
        };
        if len > limits.max_handshake_bytes {
            return Err(HandshakeError::new(0, "response head too large"));
        }
        let code = response.code.unwrap_or_default();
        if code != 101 {
            let reason = response.reason.unwrap_or_default();
            return Err(HandshakeError::new(
                code,
                format!("server answered {code} {reason}"),
            ));
        }
        let headers = own_headers(response.headers);
        self.check_headers(&headers)?;
        let protocol = self.check_protocol(&headers)?;
        let extensions = self.check_extensions(&headers)?;
        Ok(Some((
            Response {
                protocol,
                extensions,
                headers,
            },
            len,
        )))
    }

    fn check_headers(&self, headers: &[Header]) -> Result<(), HandshakeError> {
        if !has_token(headers, "upgrade", "websocket") {
            return Err(HandshakeError::new(0, "response lacks Upgrade: websocket"));
        }
        if !has_token(headers, "connection", "upgrade") {
            return Err(HandshakeError::new(0, "response lacks Connection: Upgrade"));
        }
        let expected = accept_key(&self.key);
        let accept: Vec<&str> = header_values(headers, "sec-websocket-accept").collect();
        if accept != [expected.as_str()] {
            return Err(HandshakeError::new(
                0,
                "Sec-WebSocket-Accept does not match the key",
            ));
        }
        Ok(())
    }

    fn check_protocol(&self, headers: &[Header]) -> Result<Option<String>, HandshakeError> {
        let chosen: Vec<&str> = header_values(headers, "sec-websocket-protocol").collect();
        match chosen[..] {
            [] => Ok(None),
            [one] if self.options.protocols.iter().any(|p| p == one) => Ok(Some(one.to_owned())),
            _ => Err(HandshakeError::new(
                0,
                format!("server chose a subprotocol that was not offered: {chosen:?}"),
            )),
        }
    }

    fn check_extensions(&self, headers: &[Header]) -> Result<Vec<ExtensionOffer>, HandshakeError> {
        let accepted = extensions::parse(header_values(headers, "sec-websocket-extensions"))
            .map_err(|why| HandshakeError::new(0, format!("Sec-WebSocket-Extensions: {why}")))?;
        let offered = extensions::parse(self.options.extensions.as_deref())
            .map_err(|why| HandshakeError::new(0, format!("our extension offer: {why}")))?;
        for extension in &accepted {
            if !offered
                .iter()
                .any(|offer| offer.name.eq_ignore_ascii_case(&extension.name))
            {
                return Err(HandshakeError::new(
                    0,
                    format!(
                        "server accepted an extension that was not offered: {}",
                        extension.name
                    ),
                ));
            }
        }
        Ok(accepted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response_for(handshake: &ClientHandshake, extra: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{extra}\r\n",
            accept_key(handshake.key())
        )
    }

    #[test]
    fn targets_parse() {
        let t = Target::parse("ws://127.0.0.1:9080/ws?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.resource.as_str(), t.secure),
            ("127.0.0.1", 9080, "/ws?x=1", false)
        );
        let t = Target::parse("WSS://example.com").unwrap();
        assert_eq!((t.port, t.resource.as_str(), t.secure), (443, "/", true));
        assert_eq!(t.host_header(), "example.com");
        let t = Target::parse("ws://[::1]:8080?q").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.resource.as_str()),
            ("::1", 8080, "/?q")
        );
        assert_eq!(t.host_header(), "[::1]:8080");
        for bad in [
            "http://x",
            "ws://",
            "ws://x:99999",
            "ws://x/#frag",
            "ws://[::1",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn request_carries_options_and_accepts_valid_response() {
        let target = Target::parse("ws://localhost:9/chat").unwrap();
        let options = ClientOptions {
            protocols: vec!["a".into(), "b".into()],
            headers: vec![("Origin".into(), "http://x".into())],
            ..Default::default()
        };
        let (handshake, request) = ClientHandshake::new(&target, options);
        let request = String::from_utf8(request).unwrap();
        assert!(request.starts_with("GET /chat HTTP/1.1\r\nHost: localhost:9\r\n"));
        assert!(request.contains("Sec-WebSocket-Protocol: a, b\r\n"));
        assert!(request.contains("Origin: http://x\r\n"));
        let response = response_for(&handshake, "Sec-WebSocket-Protocol: b\r\n");
        let full = format!("{response}\u{81}");
        let (parsed, len) = handshake.parse_response(full.as_bytes()).unwrap().unwrap();
        assert_eq!(len, response.len());
        assert_eq!(parsed.protocol.as_deref(), Some("b"));
    }

    #[test]
    fn invalid_responses_are_refused() {
        let target = Target::parse("ws://h/").unwrap();
        let (handshake, _) = ClientHandshake::new(&target, ClientOptions::default());
        let good = response_for(&handshake, "");
        assert!(handshake.parse_response(good.as_bytes()).unwrap().is_some());
        let cases = [
            good.replace("101 Switching Protocols", "200 OK"),
            good.replace("Upgrade: websocket", "Upgrade: h2c"),
            good.replace("Connection: Upgrade", "Connection: close"),
            good.replace(&accept_key(handshake.key()), "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            response_for(&handshake, "Sec-WebSocket-Protocol: chat\r\n"),
            response_for(
                &handshake,
                "Sec-WebSocket-Extensions: permessage-deflate\r\n",
            ),
        ];
        for case in cases {
            assert!(handshake.parse_response(case.as_bytes()).is_err(), "{case}");
        }
        let refused = handshake
            .parse_response(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
            .unwrap_err();
        assert_eq!(refused.status(), 503);
    }
}
