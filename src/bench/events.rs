//! `bench events`: C hub connections, each keeping K acknowledged events
//! in flight; events per second and ack round-trip percentiles.
//!
//! An event without a target is answered by whatever handles it on the
//! server: an event proxy's backend, say. With `--relay` each event goes to
//! the sender itself (`"to"`: its own id), so the hub relays it and acks
//! it without leaving the process: the baseline to set a handled event
//! against. Acks come back in order on a connection, so the send times
//! wait in a FIFO; frames that are not acks (the relayed event itself) are
//! skipped.

use std::collections::VecDeque;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};
use switchboard_net::{Message, Reader, WebSocket, Writer};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::echo::close;
use super::endpoint::{client_config, Endpoint};
use super::flags::{seconds, TargetArgs};
use super::stats::{self, Errors, Latencies, Recorder};

/// Flags of `switchboard bench events`.
#[derive(Args, Debug)]
pub struct EventsArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Connections, all open before the clock starts.
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// Events in flight per connection.
    #[arg(long, default_value_t = 4)]
    pipeline: usize,
    /// Bytes of filler in each event's data.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// The event name.
    #[arg(long, default_value = "bench")]
    event: String,
    /// Send each event to the sender itself (a relay inside the hub)
    /// instead of to the server's handlers.
    #[arg(long)]
    relay: bool,
    /// Measured seconds, after the warm-up.
    #[arg(long, value_parser = seconds, default_value = "5")]
    duration: Duration,
    /// Seconds of traffic before measuring.
    #[arg(long, value_parser = seconds, default_value = "1")]
    warmup: Duration,
}

/// The measurement window and what every connection shares.
#[derive(Clone)]
struct Plan {
    event: String,
    filler: String,
    relay: bool,
    pipeline: usize,
    measure_from: Instant,
    measure_until: Instant,
    /// Acks still outstanding after this are given up on.
    give_up: Instant,
    latencies: Latencies,
    errors: std::sync::Arc<Errors>,
}

pub async fn run(args: EventsArgs) -> anyhow::Result<Value> {
    anyhow::ensure!(
        args.connections > 0 && args.pipeline > 0,
        "--connections and --pipeline must be > 0"
    );
    let endpoint = Endpoint::resolve(&args.target, client_config(args.size)).await?;
    let mut sockets = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let mut socket = endpoint.connect().await?;
        let id = ready(&mut socket).await?;
        sockets.push((socket, id));
    }
    let start = Instant::now();
    let plan = Plan {
        event: args.event.clone(),
        filler: "x".repeat(args.size),
        relay: args.relay,
        pipeline: args.pipeline,
        measure_from: start + args.warmup,
        measure_until: start + args.warmup + args.duration,
        give_up: start + args.warmup + args.duration + Duration::from_secs(5),
        latencies: Latencies::new(),
        errors: Default::default(),
    };
    let mut tasks = JoinSet::new();
    for (socket, id) in sockets {
        let plan = plan.clone();
        tasks.spawn(async move { connection(socket, id, plan).await });
    }
    tokio::time::sleep_until(plan.measure_from).await;
    let cpu_before = stats::CpuSnapshot::take();
    tokio::time::sleep_until(plan.measure_until).await;
    let cpu_after = stats::CpuSnapshot::take();
    let mut acked = 0u64;
    let joined = tokio::time::timeout_at(plan.give_up + Duration::from_secs(4), async {
        while let Some(done) = tasks.join_next().await {
            acked += done.unwrap_or_default();
        }
    })
    .await;
    if joined.is_err() {
        let hung = tasks.len();
        plan.errors
            .add(format!("{hung} connections hung; their counts are lost"));
        tasks.abort_all();
    }
    let secs = args.duration.as_secs_f64();
    let line = json!({
        "scenario": "events",
        "url": args.target.url,
        "relay": args.relay,
        "connections": args.connections,
        "pipeline": args.pipeline,
        "size": args.size,
        "duration_s": secs,
        "events": acked,
        "events_per_s": stats::round1(acked as f64 / secs),
        "rtt_us": plan.latencies.summary(),
    });
    let line = stats::merge(line, plan.errors.json());
    Ok(stats::merge(
        line,
        stats::cpu_json(cpu_before, cpu_after, args.duration),
    ))
}

/// Waits for the hub's `ready` and returns the connection's id.
async fn ready(socket: &mut WebSocket) -> anyhow::Result<String> {
    let wait = async {
        while let Some(message) = socket.recv().await {
            if let Message::Text(text) = message? {
                let value: Value = serde_json::from_str(&text)?;
                if value["event"] == "ready" {
                    let id = value["data"]["id"].as_str().unwrap_or_default();
                    return Ok(id.to_owned());
                }
            }
        }
        anyhow::bail!("the server closed before `ready`: is it a hub endpoint?")
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .map_err(|_| anyhow::anyhow!("no `ready` within 10 s: is it a hub endpoint?"))?
}

/// Runs one connection; returns the acks counted inside the window.
async fn connection(socket: WebSocket, id: String, plan: Plan) -> u64 {
    let (mut reader, writer) = socket.split();
    let mut recorder = plan.latencies.recorder();
    let mut acked = 0;
    let exchanged = exchange(&mut reader, &writer, &id, &plan, &mut recorder, &mut acked).await;
    if let Err(error) = exchanged {
        plan.errors.add(error);
    }
    close(&mut reader, &writer).await;
    acked
}

/// The event with ack number `n`.
fn event(plan: &Plan, id: &str, n: u64) -> Message {
    let mut event = json!({ "event": plan.event, "data": plan.filler, "ack": n });
    if plan.relay {
        event["to"] = json!(id);
    }
    Message::text(event.to_string())
}

/// Keeps `pipeline` events in flight until the window ends, then waits for
/// the outstanding acks.
async fn exchange(
    reader: &mut Reader,
    writer: &Writer,
    id: &str,
    plan: &Plan,
    recorder: &mut Recorder,
    acked: &mut u64,
) -> anyhow::Result<()> {
    let mut sent = VecDeque::with_capacity(plan.pipeline);
    let mut next = 0u64;
    for _ in 0..plan.pipeline {
        sent.push_back(Instant::now());
        writer.feed(event(plan, id, next)).await?;
        next += 1;
    }
    writer.flush().await?;
    while let Some(sent_at) = sent.pop_front() {
        let reply = loop {
            let received = if Instant::now() < plan.measure_until {
                reader.recv().await
            } else {
                tokio::time::timeout_at(plan.give_up, reader.recv())
                    .await
                    .map_err(|_| {
                        anyhow::anyhow!("{} acks still missing after the run", sent.len() + 1)
                    })?
            };
            let Some(received) = received else {
                anyhow::bail!("the server closed the connection");
            };
            if let Message::Text(text) = received? {
                if text.starts_with(r#"{"event":"ack""#) {
                    break text;
                }
                if text.starts_with(r#"{"event":"error""#) {
                    anyhow::bail!("the server answered with an error: {text}");
                }
            }
        };
        if reply.contains(r#""error":"#) {
            anyhow::bail!("an event failed: {reply}");
        }
        let now = Instant::now();
        if now >= plan.measure_from && now < plan.measure_until {
            *acked += 1;
            recorder.record(now - sent_at);
        }
        if now < plan.measure_until {
            sent.push_back(now);
            writer.feed(event(plan, id, next)).await?;
            next += 1;
        }
    }
    Ok(())
}
