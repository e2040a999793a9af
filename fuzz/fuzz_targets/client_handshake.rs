//! An arbitrary response head through the client side of the handshake.
//!
//! Every `@ACCEPT@` in the input is replaced by the `Sec-WebSocket-Accept`
//! value of this run's random key, so that the fuzzer can reach the checks
//! that come after the key check.
//!
//! Checks: no panic; an accepted response only names the subprotocol and
//! extension that were offered, and its length lies within the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_proto::handshake::{accept_key, ClientHandshake, ClientOptions, Target};

const PLACEHOLDER: &[u8] = b"@ACCEPT@";

fuzz_target!(|data: &[u8]| {
    let target = Target::parse("ws://example.com:9080/chat?room=1").expect("valid URL");
    let mut options = ClientOptions::default();
    options.protocols = vec!["chat".to_owned(), "superchat".to_owned()];
    options.extensions = Some("permessage-deflate; client_max_window_bits".to_owned());
    let (handshake, request) = ClientHandshake::new(&target, options);
    assert!(request.ends_with(b"\r\n\r\n"));
    let input = substitute(data, accept_key(handshake.key()).as_bytes());
    if let Ok(Some((response, len))) = handshake.parse_response(&input) {
        assert!(len <= input.len());
        if let Some(protocol) = &response.protocol {
            assert!(protocol == "chat" || protocol == "superchat");
        }
        for extension in &response.extensions {
            // Extension tokens compare case-insensitively (RFC 7230 §3.2.6).
            assert!(extension.name.eq_ignore_ascii_case("permessage-deflate"));
        }
    }
});

fn substitute(data: &[u8], accept: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 32);
    let mut rest = data;
    while !rest.is_empty() {
        if rest.starts_with(PLACEHOLDER) {
            out.extend_from_slice(accept);
            rest = &rest[PLACEHOLDER.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}
