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

mod args;
mod hub;
mod outcome;
mod output;
mod raw;

use std::io::IsTerminal;
use std::time::Duration;

pub use args::ConnectArgs;
use outcome::Outcome;
use output::Output;

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
}
