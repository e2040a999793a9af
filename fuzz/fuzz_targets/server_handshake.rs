//! An arbitrary request head through the server side of the handshake.
//!
//! Checks: no panic; whatever the request, the answer (101 or an error) is a
//! complete HTTP response with the right status; accepted extension offers
//! print and re-parse to themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_proto::handshake::extensions;
use switchboard_proto::handshake::{reject_response, Limits, Request};
use switchboard_proto::HandshakeError;

fuzz_target!(|data: &[u8]| {
    for limits in [
        Limits::default(),
        Limits::default().max_headers(4).max_handshake_bytes(256),
    ] {
        match Request::parse(data, &limits) {
            Ok(Some((request, len))) => {
                assert!(len <= data.len() && len <= limits.max_handshake_bytes);
                check_request(&request);
            }
            Ok(None) => assert!(data.len() <= limits.max_handshake_bytes),
            Err(error) => {
                assert!(matches!(error.status(), 400 | 431), "{error}");
                check_rejection(&error);
            }
        }
    }
});

fn check_request(request: &Request) {
    let _ = (request.path(), request.query(), request.header("host"));
    let upgrade = match request.validate_upgrade() {
        Ok(upgrade) => upgrade,
        Err(error) => {
            assert!(matches!(error.status(), 400 | 405 | 426), "{error}");
            check_rejection(&error);
            return;
        }
    };
    let offers: Vec<String> = upgrade
        .extensions()
        .iter()
        .map(ToString::to_string)
        .collect();
    let joined = offers.join(", ");
    let reparsed = extensions::parse([joined.as_str()]).expect("printed offers parse");
    assert_eq!(reparsed, upgrade.extensions());
    // Echo the client's first subprotocol, the harshest input for the writer.
    let protocol = upgrade.protocols().first().map(String::as_str);
    let extensions = (!joined.is_empty()).then_some(joined.as_str());
    let response = upgrade.accept_response(protocol, extensions, &[]);
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut parsed = httparse::Response::new(&mut headers);
    let status = parsed.parse(&response).expect("the 101 response parses");
    assert_eq!(status, httparse::Status::Complete(response.len()));
    assert_eq!(parsed.code, Some(101));
}

fn check_rejection(error: &HandshakeError) {
    let response = reject_response(error);
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut parsed = httparse::Response::new(&mut headers);
    let status = parsed.parse(&response).expect("the error response parses");
    let httparse::Status::Complete(head) = status else {
        panic!("incomplete error response");
    };
    assert_eq!(parsed.code, Some(error.status()));
    let length: usize = parsed
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
        .expect("Content-Length");
    assert_eq!(head + length, response.len());
}
