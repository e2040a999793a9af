//! permessage-deflate parameters (RFC 7692 §7.1) and their negotiation.

use crate::error::ConfigError;
use crate::handshake::extensions::{ExtensionOffer, ExtensionParam};

use super::EXTENSION;

/// The compression settings of one side, deciding what it offers (client)
/// or accepts (server).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    pub(crate) level: u32,
    pub(crate) threshold: usize,
    pub(crate) server_no_context_takeover: bool,
    pub(crate) client_no_context_takeover: bool,
    pub(crate) server_max_window_bits: u8,
    pub(crate) client_max_window_bits: u8,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            level: 6,
            threshold: 128,
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}

impl DeflateConfig {
    /// Settings for a client: offers `permessage-deflate;
    /// client_no_context_takeover; client_max_window_bits` — it compresses
    /// each message on its own (no compressor kept between messages) and
    /// leaves the server's context takeover to the server.
    pub fn client() -> Self {
        DeflateConfig {
            server_no_context_takeover: false,
            ..DeflateConfig::default()
        }
    }

    /// The zlib level, 0 (store) to 9 (smallest). Default 6, zlib's own
    /// balance of ratio and speed.
    pub fn level(&mut self, level: u32) -> &mut Self {
        self.level = level;
        self
    }

    /// Messages shorter than this are sent uncompressed: below it the
    /// deflate framing costs more than it saves. Default 128 bytes.
    pub fn threshold(&mut self, bytes: usize) -> &mut Self {
        self.threshold = bytes;
        self
    }

    /// The server compresses each message on its own (no state kept between
    /// messages). Default true: idle connections then hold no compressor.
    pub fn server_no_context_takeover(&mut self, on: bool) -> &mut Self {
        self.server_no_context_takeover = on;
        self
    }

    /// The client compresses each message on its own; a server asks for it
    /// even when not offered (RFC 7692 §7.1.1.2). Default true, so the
    /// server needs no inflater per connection.
    pub fn client_no_context_takeover(&mut self, on: bool) -> &mut Self {
        self.client_no_context_takeover = on;
        self
    }

    /// The largest LZ77 window (as a power of two, 8–15) the server uses.
    /// Default 15 (32 KiB). A smaller window costs less memory with context
    /// takeover, and compresses worse.
    pub fn server_max_window_bits(&mut self, bits: u8) -> &mut Self {
        self.server_max_window_bits = bits;
        self
    }

    /// The largest window the client may use, when the client allows the
    /// server to choose it. Default 15.
    pub fn client_max_window_bits(&mut self, bits: u8) -> &mut Self {
        self.client_max_window_bits = bits;
        self
    }

    /// The size threshold in force.
    pub fn get_threshold(&self) -> usize {
        self.threshold
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.level > 9 {
            return Err(ConfigError::new("deflate level must be 0..=9"));
        }
        for bits in [self.server_max_window_bits, self.client_max_window_bits] {
            if !(8..=15).contains(&bits) {
                return Err(ConfigError::new("deflate window bits must be 8..=15"));
            }
        }
        Ok(())
    }

    /// The `Sec-WebSocket-Extensions` value a client offers.
    pub fn client_offer(&self) -> String {
        let mut offer = String::from(EXTENSION);
        if self.server_no_context_takeover {
            offer.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            offer.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits < 15 {
            offer.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        offer.push_str("; client_max_window_bits");
        if self.client_max_window_bits < 15 {
            offer.push_str(&format!("={}", self.client_max_window_bits));
        }
        offer
    }

    /// The server's choice among the client's offers (RFC 7692 §5, §7.1):
    /// the first acceptable `permessage-deflate` offer, and the response
    /// header value. Offers that are malformed (unknown, repeated or invalid
    /// parameters) are declined, as the RFC requires; the reasons are
    /// returned for logging.
    pub fn negotiate_server(
        &self,
        offers: &[ExtensionOffer],
    ) -> (Option<(Negotiated, String)>, Vec<String>) {
        let mut declined = Vec::new();
        for offer in offers
            .iter()
            .filter(|o| o.name.eq_ignore_ascii_case(EXTENSION))
        {
            match Params::parse(&offer.params, Side::Offer) {
                Ok(params) => {
                    if let Some(negotiated) = self.accept(&params) {
                        let header = negotiated.response_header();
                        return (Some((negotiated, header)), declined);
                    }
                    declined.push(format!("{offer}: configuration not supported"));
                }
                Err(why) => declined.push(format!("{offer}: {why}")),
            }
        }
        (None, declined)
    }

    fn accept(&self, offer: &Params) -> Option<Negotiated> {
        // server_max_window_bits: the client's limit binds us; ours applies too.
        let server_bits = offer
            .server_max_window_bits
            .unwrap_or(15)
            .min(self.server_max_window_bits);
        // client_max_window_bits: only if the client said it can take a limit.
        let client_bits = match offer.client_max_window_bits {
            None => 15,
            Some(None) => self.client_max_window_bits,
            Some(Some(bits)) => bits.min(self.client_max_window_bits),
        };
        Some(Negotiated {
            server_no_context_takeover: offer.server_no_context_takeover
                || self.server_no_context_takeover,
            client_no_context_takeover: offer.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
            announce_server_bits: offer.server_max_window_bits.is_some() || server_bits < 15,
            announce_client_bits: offer.client_max_window_bits.is_some() && client_bits < 15,
        })
    }

    /// Checks a server's response to our offer (RFC 7692 §5.1, client side):
    /// anything not allowed by what we offered fails the handshake.
    pub fn accept_response(
        &self,
        accepted: &[ExtensionOffer],
    ) -> Result<Option<Negotiated>, String> {
        let mut ours = accepted
            .iter()
            .filter(|e| e.name.eq_ignore_ascii_case(EXTENSION));
        let Some(response) = ours.next() else {
            return Ok(None);
        };
        if ours.next().is_some() {
            return Err("permessage-deflate accepted twice".into());
        }
        let params = Params::parse(&response.params, Side::Response)?;
        let client_bits = match params.client_max_window_bits {
            None => 15,
            Some(Some(bits)) => bits,
            Some(None) => return Err("client_max_window_bits needs a value in a response".into()),
        };
        if client_bits > self.client_max_window_bits {
            return Err("server asked for a larger client window than offered".into());
        }
        let server_bits = params.server_max_window_bits.unwrap_or(15);
        if server_bits > self.server_max_window_bits {
            return Err("server_max_window_bits exceeds what was offered".into());
        }
        if self.server_no_context_takeover && !params.server_no_context_takeover {
            return Err("server_no_context_takeover was requested but not accepted".into());
        }
        Ok(Some(Negotiated {
            server_no_context_takeover: params.server_no_context_takeover,
            client_no_context_takeover: params.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
            announce_server_bits: false,
            announce_client_bits: false,
        }))
    }
}

/// What both sides agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The server compresses each message independently.
    pub server_no_context_takeover: bool,
    /// The client compresses each message independently.
    pub client_no_context_takeover: bool,
    /// The server's LZ77 window, as a power of two.
    pub server_max_window_bits: u8,
    /// The client's LZ77 window, as a power of two.
    pub client_max_window_bits: u8,
    announce_server_bits: bool,
    announce_client_bits: bool,
}

impl Negotiated {
    /// The server's `Sec-WebSocket-Extensions` response value.
    pub fn response_header(&self) -> String {
        let mut header = String::from(EXTENSION);
        if self.server_no_context_takeover {
            header.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            header.push_str("; client_no_context_takeover");
        }
        if self.announce_server_bits {
            header.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        if self.announce_client_bits {
            header.push_str(&format!(
                "; client_max_window_bits={}",
                self.client_max_window_bits
            ));
        }
        header
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Offer,
    Response,
}

/// The parameters of one offer or response, checked for RFC 7692 §7.1 rules.
#[derive(Default)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (allowed in an offer only).
    client_max_window_bits: Option<Option<u8>>,
}

impl Params {
    fn parse(params: &[ExtensionParam], side: Side) -> Result<Params, String> {
        let mut parsed = Params::default();
        let mut seen: Vec<&str> = Vec::new();
        for param in params {
            let name = param.name.as_str();
            if seen.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                return Err(format!("repeated parameter {name}"));
            }
            seen.push(name);
            match name.to_ascii_lowercase().as_str() {
                "server_no_context_takeover" => {
                    no_value(param)?;
                    parsed.server_no_context_takeover = true;
                }
                "client_no_context_takeover" => {
                    no_value(param)?;
                    parsed.client_no_context_takeover = true;
                }
                "server_max_window_bits" => {
                    parsed.server_max_window_bits = Some(window_bits(param.value.as_deref())?);
                }
                "client_max_window_bits" => {
                    parsed.client_max_window_bits = Some(match &param.value {
                        None if side == Side::Offer => None,
                        value => Some(window_bits(value.as_deref())?),
                    });
                }
                _ => return Err(format!("unknown parameter {name}")),
            }
        }
        Ok(parsed)
    }
}

fn no_value(param: &ExtensionParam) -> Result<(), String> {
    match &param.value {
        None => Ok(()),
        Some(_) => Err(format!("{} takes no value", param.name)),
    }
}

fn window_bits(value: Option<&str>) -> Result<u8, String> {
    let value = value.ok_or("window bits need a value")?;
    // RFC 7692 §7.1.2.1: 1*DIGIT, no leading zero, 8 to 15.
    match value.parse::<u8>() {
        Ok(bits @ 8..=15) if !value.starts_with('0') => Ok(bits),
        _ => Err(format!("invalid window bits {value:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::extensions;

    fn server(header: &str) -> Option<String> {
        let offers = extensions::parse([header]).unwrap();
        DeflateConfig::default()
            .negotiate_server(&offers)
            .0
            .map(|(_, header)| header)
    }

    #[test]
    fn server_accepts_common_offers_and_asks_for_no_context_takeover() {
        assert_eq!(
            server("permessage-deflate; client_max_window_bits").as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
        assert_eq!(
            server("permessage-deflate; server_max_window_bits=10").as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10")
        );
        assert_eq!(
            server("permessage-deflate; client_max_window_bits=9").as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=9")
        );
    }

    #[test]
    fn server_declines_malformed_offers_and_takes_the_next() {
        for bad in [
            "permessage-deflate; foo",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; client_no_context_takeover=1",
        ] {
            assert_eq!(server(bad), None, "{bad}");
            let (_, declined) =
                DeflateConfig::default().negotiate_server(&extensions::parse([bad]).unwrap());
            assert_eq!(declined.len(), 1, "{bad}");
            let fallback = format!("{bad}, permessage-deflate");
            assert!(server(&fallback).is_some(), "{fallback}");
        }
    }

    #[test]
    fn client_checks_the_response() {
        let config = DeflateConfig::default();
        let check = |header: &str| config.accept_response(&extensions::parse([header]).unwrap());
        assert!(check("permessage-deflate; server_no_context_takeover")
            .unwrap()
            .is_some());
        assert!(
            check("permessage-deflate").is_err(),
            "server context takeover not accepted"
        );
        assert!(
            check("permessage-deflate; server_no_context_takeover; client_max_window_bits")
                .is_err()
        );
        assert!(check("permessage-deflate; server_no_context_takeover; bogus").is_err());
        let negotiated =
            check("permessage-deflate; server_no_context_takeover; client_max_window_bits=10")
                .unwrap()
                .unwrap();
        assert_eq!(negotiated.client_max_window_bits, 10);
        assert!(config
            .client_offer()
            .starts_with("permessage-deflate; server_no_context_takeover"));
    }
}

/// A connection's compression when its frames can be compressed once and
/// shared: the server compresses without context takeover, so a message's
/// compressed form depends only on the level and the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SharedDeflate {
    /// The zlib level.
    pub level: u32,
    /// The server's window, as a power of two.
    pub window_bits: u8,
    /// Messages shorter than this go uncompressed.
    pub threshold: usize,
}

impl Negotiated {
    /// The shared form of this server-side agreement, if the server
    /// compresses without context takeover.
    pub fn shared(&self, config: &DeflateConfig) -> Option<SharedDeflate> {
        self.server_no_context_takeover.then_some(SharedDeflate {
            level: config.level,
            window_bits: self.server_max_window_bits,
            threshold: config.threshold,
        })
    }
}

impl SharedDeflate {
    /// A whole server frame for `payload`, compressed (RSV1 set) when it
    /// reaches the threshold; valid on every connection with this agreement.
    pub fn encode_frame(&self, opcode: crate::frame::OpCode, payload: &[u8]) -> bytes::Bytes {
        if payload.len() < self.threshold {
            return crate::frame::encode_server_frame(opcode, false, payload);
        }
        let mut compressed = Vec::with_capacity(payload.len() / 2 + 16);
        super::Deflater::new(self.level, self.window_bits, true).compress(payload, &mut compressed);
        crate::frame::encode_server_frame(opcode, true, &compressed)
    }
}
