//! Our client, driven by an Autobahn TestSuite fuzzing server.
//!
//! ```text
//! cargo run --release --example autobahn_client -- ws://127.0.0.1:9001
//! ```
//!
//! Asks `/getCaseCount`, runs every case by echoing on
//! `/runCase?case=N&agent=switchboard`, then asks for `/updateReports`.
//! `AUTOBAHN_PARALLEL=N` runs N cases at a time (default 1).

use switchboard_net::{connect, connect_with, Config, ConnectOptions, Error, Message};
use switchboard_proto::deflate::DeflateConfig;

const AGENT: &str = "switchboard";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let base = base.trim_end_matches('/');
    let count = case_count(base).await?;
    let parallel: usize = std::env::var("AUTOBAHN_PARALLEL")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
        .max(1);
    eprintln!("running {count} cases against {base}, {parallel} at a time");
    let mut running = tokio::task::JoinSet::new();
    for case in 1..=count {
        if running.len() >= parallel {
            running.join_next().await;
        }
        let url = format!("{base}/runCase?case={case}&agent={AGENT}");
        running.spawn(async move {
            if let Err(error) = echo_until_closed(&url).await {
                eprintln!("case {case}: {error}");
            }
        });
    }
    while running.join_next().await.is_some() {}
    let (mut socket, _) = connect(&format!("{base}/updateReports?agent={AGENT}")).await?;
    while socket.recv().await.is_some() {}
    eprintln!("reports updated");
    Ok(())
}

async fn case_count(base: &str) -> Result<u32, Box<dyn std::error::Error>> {
    let (mut socket, _) = connect(&format!("{base}/getCaseCount")).await?;
    let Some(Ok(Message::Text(text))) = socket.recv().await else {
        return Err("no case count received".into());
    };
    while socket.recv().await.is_some() {}
    Ok(text.trim().parse()?)
}

/// Echoes every message of one case, offering permessage-deflate.
async fn echo_until_closed(url: &str) -> Result<(), Error> {
    let mut config = Config::default();
    // Compress every message (threshold 0), as the runner expects.
    let mut deflate = DeflateConfig::client();
    deflate.threshold(0);
    config.deflate(Some(deflate));
    let (mut socket, _) = connect_with(url, ConnectOptions::default().config(config)).await?;
    while let Some(message) = socket.recv().await {
        socket.feed(message?).await?;
    }
    Ok(())
}
