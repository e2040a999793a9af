//! Arbitrary `Sec-WebSocket-Extensions` values, one per line.
//!
//! Checks: no panic; what parses prints back to text that parses to the same
//! offers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_proto::handshake::extensions;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(offers) = extensions::parse(text.split('\n')) else {
        return;
    };
    let printed: Vec<String> = offers.iter().map(ToString::to_string).collect();
    let joined = printed.join(", ");
    let again = extensions::parse([joined.as_str()]).expect("printed offers parse");
    assert_eq!(again, offers, "{joined:?}");
    for offer in &offers {
        assert!(!offer.name.is_empty());
    }
});
