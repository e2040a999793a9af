//! `switchboard connect URL`: an interactive and scriptable WebSocket client.
//!
//! - raw mode (any server): lines in become text messages; messages in become
//!   lines on stdout, binary shown as hex or base64;
//! - hub mode (`/ws` URLs, or `--hub`): `/join`, `/to`, `/name`, `/users`, …,
//!   plain lines go to the current room as `chat` events.
//!
//! When stdin is not a terminal it is read to its end (scripting mode);
//! `--wait N` then waits for N incoming messages and `--timeout` bounds the
//! whole run. Exit status: 0 when it got what it waited for, 1 when it could
//! not connect, 2 on timeout, 3 when the server closed first.

mod hub;
mod output;
mod raw;

use std::io::IsTerminal;
use std::time::Duration;

use clap::{Args, ValueEnum};

use output::Output;

/// Flags of `switchboard connect`.
#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// The server, e.g. ws://127.0.0.1:9080/ws.
    pub url: String,
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
}

/// How binary payloads are printed.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum BinaryFormat {
    /// Lowercase hexadecimal.
    Hex,
    /// Standard base64.
    Base64,
}

/// How a run ended, as the process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Got what it waited for (or stdin ended and the connection closed cleanly).
    Done = 0,
    /// Could not connect.
    ConnectFailed = 1,
    /// `--timeout` passed first.
    TimedOut = 2,
    /// The server closed the connection before the wait was over.
    ServerClosed = 3,
}

/// Runs the client.
pub async fn run(args: ConnectArgs) -> anyhow::Result<std::process::ExitCode> {
    let interactive = std::io::stdin().is_terminal();
    let output = Output::new(std::io::stdout().is_terminal(), args.json, args.binary);
    let hub_mode = args.hub || (!args.raw && url_path(&args.url).ends_with("/ws"));
    let session = async {
        if hub_mode {
            hub::run(&args, &output, interactive).await
        } else {
            raw::run(&args, &output, interactive).await
        }
    };
    let outcome = match args.timeout {
        Some(seconds) if seconds > 0.0 => {
            match tokio::time::timeout(Duration::from_secs_f64(seconds), session).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    output.note("timed out");
                    Outcome::TimedOut
                }
            }
        }
        _ => session.await,
    };
    Ok(std::process::ExitCode::from(outcome as u8))
}

fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    path.split('?').next().unwrap_or_default()
}

/// Splits `Name: value` header flags.
fn parse_headers(headers: &[String]) -> anyhow::Result<Vec<(String, String)>> {
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

/// Counts incoming messages against `--wait`.
pub(crate) struct WaitCounter {
    target: Option<u64>,
    seen: u64,
}

impl WaitCounter {
    pub fn new(target: Option<u64>) -> Self {
        WaitCounter { target, seen: 0 }
    }

    /// Counts one message; returns true when the wait is over.
    pub fn count(&mut self) -> bool {
        self.seen += 1;
        self.target.is_some_and(|target| self.seen >= target)
    }

    pub fn is_waiting(&self) -> bool {
        self.target.is_some_and(|target| self.seen < target)
    }

    pub fn done_immediately(&self) -> bool {
        self.target == Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_paths() {
        assert_eq!(url_path("ws://h:1/ws"), "/ws");
        assert_eq!(url_path("ws://h:1/ws?name=a"), "/ws");
        assert_eq!(url_path("ws://h:1"), "");
        assert_eq!(url_path("ws://h/echo"), "/echo");
    }

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

    #[test]
    fn wait_counter() {
        let mut counter = WaitCounter::new(Some(2));
        assert!(counter.is_waiting());
        assert!(!counter.count());
        assert!(counter.count());
        assert!(!counter.is_waiting());
        assert!(!WaitCounter::new(None).is_waiting());
    }
}
