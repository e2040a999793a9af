//! `bench scale`: N hub connections that join one room and wait for
//! messages stamped with their send time, for scale runs over many nodes
//! (`scripts/bench_scale`).
//!
//! Two JSON lines on stdout: the first as soon as every connection is open
//! and in the room (or has failed), so that a script can read the servers'
//! memory and then publish; the second once every connection has received
//! `--expect` stamped messages (or `--wait` has passed), with each stamped
//! event's receive count and every latency in microseconds (publish to
//! receipt, by the wall clock: every process runs on this one machine).
//! The connections then stay open until the process is ended (closing them
//! while other processes still receive would slow the servers down).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use serde_json::{json, Value};
use switchboard_net::Message;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::endpoint::{client_config, Endpoint};
use super::flags::{seconds, TargetArgs};
use super::stats::{self, Errors};

/// Flags of `switchboard bench scale`.
#[derive(Args, Debug)]
pub struct ScaleArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Connections to open.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// The room every connection joins.
    #[arg(long, default_value = "scale")]
    room: String,
    /// Stamped messages each connection waits for.
    #[arg(long, default_value_t = 2)]
    expect: usize,
    /// Seconds to wait for them once every connection is open.
    #[arg(long, value_parser = seconds, default_value = "120")]
    wait: Duration,
    /// Handshakes in progress at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

/// Latencies in µs of each stamped event, by event name.
type Received = Arc<Mutex<BTreeMap<String, Vec<u64>>>>;

pub async fn run(args: ScaleArgs) -> anyhow::Result<Value> {
    let endpoint = Endpoint::resolve(&args.target, client_config(0)).await?;
    let errors = Arc::new(Errors::default());
    let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let received: Received = Arc::default();
    let (joined_tx, mut joined_rx) = mpsc::channel::<bool>(args.connections.max(1));
    let (done_tx, mut done_rx) = mpsc::channel::<()>(args.connections.max(1));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..args.connections {
        let (endpoint, errors, permits) = (endpoint.clone(), errors.clone(), permits.clone());
        let (joined_tx, received, room) = (joined_tx.clone(), received.clone(), args.room.clone());
        let done_tx = done_tx.clone();
        let expect = args.expect;
        tasks.spawn(async move {
            let permit = permits.acquire_owned().await;
            let joined = join(&endpoint, &room).await;
            drop(permit);
            let mut socket = match joined {
                Ok(socket) => socket,
                Err(error) => {
                    errors.add(format!("{error:#}"));
                    let _ = joined_tx.send(false).await;
                    return;
                }
            };
            let _ = joined_tx.send(true).await;
            drop(joined_tx);
            let mut stamped = 0;
            while let Some(Ok(message)) = socket.recv().await {
                if let Some((event, latency)) = stamp(&message) {
                    received
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(event)
                        .or_default()
                        .push(latency);
                    stamped += 1;
                    if stamped == expect {
                        // Held open after: connections closing while others
                        // still receive would slow the servers down.
                        let _ = done_tx.send(()).await;
                    }
                }
            }
        });
    }
    drop((joined_tx, done_tx));
    let mut connected = 0usize;
    while let Some(ok) = joined_rx.recv().await {
        connected += usize::from(ok);
    }
    let connect_s = started.elapsed().as_secs_f64();
    let line = json!({
        "scenario": "scale",
        "url": args.target.url,
        "connections": args.connections,
        "connected": connected,
        "connect_s": stats::round3(connect_s),
    });
    stats::emit(&stats::merge(line, errors.json()));

    let waited = Instant::now();
    let mut done = 0usize;
    let _ = tokio::time::timeout(args.wait, async {
        while done < connected && done_rx.recv().await.is_some() {
            done += 1;
        }
    })
    .await;
    let complete = done == connected;
    let received = std::mem::take(&mut *received.lock().unwrap_or_else(|p| p.into_inner()));
    let line = json!({
        "scenario": "scale",
        "connected": connected,
        "complete": complete,
        "waited_s": stats::round3(waited.elapsed().as_secs_f64()),
        "latencies_us": received,
    });
    stats::emit(&line);
    // The connections stay open until the process is ended.
    std::future::pending::<()>().await;
    Ok(Value::Null)
}

/// Connects, reads `ready`, joins the room and waits for the join's ack.
async fn join(endpoint: &Endpoint, room: &str) -> anyhow::Result<switchboard_net::WebSocket> {
    let mut socket = endpoint.connect().await?;
    let join = json!({ "event": "join", "room": room, "ack": 1 }).to_string();
    socket.send(Message::text(join)).await?;
    loop {
        let message = socket
            .recv()
            .await
            .ok_or_else(|| anyhow::anyhow!("closed before the join was acknowledged"))??;
        let value: Value = serde_json::from_slice(message.payload())?;
        if value["event"] == "ack" {
            anyhow::ensure!(value.get("error").is_none(), "join refused: {value}");
            return Ok(socket);
        }
    }
}

/// The event name and latency of a message whose data carries `t`, its
/// send time in µs since the Unix epoch.
fn stamp(message: &Message) -> Option<(String, u64)> {
    let value: Value = serde_json::from_slice(message.payload()).ok()?;
    let sent = value["data"]["t"].as_u64()?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_micros() as u64;
    let event = value["event"].as_str()?.to_owned();
    Some((event, now.saturating_sub(sent)))
}
