//! The flags of `switchboard connect`, and the parsing of `--header` and
//! `--ca`.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use switchboard_net::tls::rustls::ClientConfig;

/// Flags of `switchboard connect`.
#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// The server, e.g. ws://127.0.0.1:9080/ws or wss://example.org/ws.
    pub url: String,
    /// PEM file of the CA certificates to trust for a wss:// URL, instead of
    /// the Mozilla roots built in (e.g. a private CA's certificate).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Hub mode (commands like /join); the default for URLs ending in /ws.
    #[arg(long, conflicts_with = "raw")]
    pub hub: bool,
    /// Raw mode (lines are messages); the default for other URLs.
    #[arg(long)]
    pub raw: bool,
    /// Extra request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Subprotocol to offer (repeatable; raw mode only, hub mode speaks JSON).
    #[arg(short = 's', long = "subprotocol")]
    pub protocols: Vec<String>,
    /// Exit after this many incoming messages (in hub mode, `ready` and
    /// `userlist` do not count).
    #[arg(short = 'w', long)]
    pub wait: Option<u64>,
    /// Give up after this many seconds (exit status 2).
    #[arg(short = 't', long)]
    pub timeout: Option<f64>,
    /// How binary messages are shown.
    #[arg(long, value_enum, default_value_t = BinaryFormat::Hex)]
    pub binary: BinaryFormat,
    /// Send each input line as a binary message (raw mode).
    #[arg(long)]
    pub send_binary: bool,
    /// Print every incoming message as JSON / as received, without formatting.
    #[arg(long)]
    pub json: bool,
    /// Your name (hub mode).
    #[arg(long)]
    pub name: Option<String>,
    /// The room plain lines go to (hub mode); joined on connect.
    #[arg(long)]
    pub room: Option<String>,
    /// Another node of the same hub to reconnect to (hub mode; repeatable):
    /// each reconnection attempt takes the next URL, round the list.
    #[arg(long = "fallback", value_name = "URL")]
    pub fallback: Vec<String>,
    /// Reconnection attempts after the connection is lost (hub mode)
    /// [default: 3 at a terminal, 0 in a script].
    #[arg(long, value_name = "ATTEMPTS")]
    pub reconnect: Option<u32>,
    /// Acknowledge the room messages shown (`?acks=1`, hub mode): after a
    /// reconnect the server sends again what was not acknowledged.
    #[arg(long)]
    pub acks: bool,
}

/// How binary payloads are printed.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum BinaryFormat {
    /// Lowercase hexadecimal.
    Hex,
    /// Standard base64.
    Base64,
}

/// Splits `Name: value` header flags.
pub fn parse_headers(headers: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    headers
        .iter()
        .map(|header| {
            let (name, value) = header
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("header {header:?} is not `Name: value`"))?;
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// The TLS config `--ca` asks for; `None` leaves the built-in roots.
pub fn tls_config(ca: Option<&PathBuf>) -> anyhow::Result<Option<Arc<ClientConfig>>> {
    let Some(path) = ca else {
        return Ok(None);
    };
    let config = switchboard_net::tls::client_config_from_ca_file(path)
        .map_err(|error| anyhow::anyhow!("--ca: {error}"))?;
    Ok(Some(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse() {
        let parsed = parse_headers(&["Origin: http://x".into(), "A:b".into()]).unwrap();
        assert_eq!(
            parsed,
            vec![
                ("Origin".into(), "http://x".into()),
                ("A".into(), "b".into())
            ]
        );
        assert!(parse_headers(&["nocolon".into()]).is_err());
    }
}
