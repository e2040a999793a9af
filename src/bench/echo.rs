//! `bench echo`: C connections, each keeping K messages in flight against
//! an echo server; messages per second, MB/s and round-trip percentiles.
//!
//! Each connection runs in one task: it queues K messages, then for every
//! echo it reads queues one more. Replies parsed from one read are all
//! handled before the next write, so the messages queued meanwhile go out
//! in one write (the reader flushes before it reads again). Echoes come
//! back in order, so the send times wait in a FIFO and the payload carries
//! nothing but filler.

use std::collections::VecDeque;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use switchboard_net::{CloseCode, Event, Message, Reader, WebSocket, Writer};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::endpoint::{client_config, Endpoint};
use super::flags::{seconds, TargetArgs};
use super::stats::{self, Errors, Latencies, Recorder};

/// Flags of `switchboard bench echo`.
#[derive(Args, Debug)]
pub struct EchoArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Connections, all open before the clock starts.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Messages in flight per connection.
    #[arg(long, default_value_t = 16)]
    pipeline: usize,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Measured seconds, after the warm-up.
    #[arg(long, value_parser = seconds, default_value = "5")]
    duration: Duration,
    /// Seconds of traffic before measuring.
    #[arg(long, value_parser = seconds, default_value = "1")]
    warmup: Duration,
    /// Send binary messages (default: text).
    #[arg(long)]
    binary: bool,
}

/// What one connection measured inside the window.
#[derive(Default)]
struct Tally {
    messages: u64,
    bytes: u64,
}

/// The measurement window and what every connection shares.
#[derive(Clone)]
struct Plan {
    message: Message,
    pipeline: usize,
    measure_from: Instant,
    measure_until: Instant,
    /// Echoes still outstanding after this are given up on.
    give_up: Instant,
    latencies: Latencies,
    errors: std::sync::Arc<Errors>,
}

pub async fn run(args: EchoArgs) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        args.connections > 0 && args.pipeline > 0,
        "--connections and --pipeline must be > 0"
    );
    let endpoint = Endpoint::resolve(&args.target, client_config(args.size)).await?;
    let sockets = connect_all(&endpoint, args.connections).await?;
    // A static payload: cloning it per message touches no reference count.
    let filler: &'static str = Box::leak("x".repeat(args.size).into_boxed_str());
    let message = if args.binary {
        Message::binary(bytes::Bytes::from_static(filler.as_bytes()))
    } else {
        Message::text(switchboard_net::Utf8Bytes::from_static(filler))
    };
    let start = Instant::now();
    let plan = Plan {
        message,
        pipeline: args.pipeline,
        measure_from: start + args.warmup,
        measure_until: start + args.warmup + args.duration,
        give_up: start + args.warmup + args.duration + Duration::from_secs(5),
        latencies: Latencies::new(),
        errors: Default::default(),
    };
    let mut tasks = JoinSet::new();
    for socket in sockets {
        let plan = plan.clone();
        tasks.spawn(async move { connection(socket, plan).await });
    }
    tokio::time::sleep_until(plan.measure_from).await;
    let cpu_before = stats::CpuSnapshot::take();
    tokio::time::sleep_until(plan.measure_until).await;
    let cpu_after = stats::CpuSnapshot::take();
    let mut total = Tally::default();
    let joined = tokio::time::timeout_at(plan.give_up + Duration::from_secs(4), async {
        while let Some(done) = tasks.join_next().await {
            if let Ok(tally) = done {
                total.messages += tally.messages;
                total.bytes += tally.bytes;
            }
        }
    })
    .await;
    if joined.is_err() {
        plan.errors.add(format!(
            "{} connections hung; their counts are lost",
            tasks.len()
        ));
        tasks.abort_all();
    }
    let secs = args.duration.as_secs_f64();
    let line = json!({
        "scenario": "echo",
        "url": args.target.url,
        "connections": args.connections,
        "pipeline": args.pipeline,
        "size": args.size,
        "binary": args.binary,
        "duration_s": secs,
        "messages": total.messages,
        "messages_per_s": stats::round1(total.messages as f64 / secs),
        "mb_per_s": stats::round3(total.bytes as f64 / secs / 1e6),
        "rtt_us": plan.latencies.summary(),
    });
    let line = stats::merge(line, plan.errors.json());
    Ok(stats::merge(
        line,
        stats::cpu_json(cpu_before, cpu_after, args.duration),
    ))
}

/// Opens every connection, 64 at a time; any failure fails the run.
async fn connect_all(endpoint: &Endpoint, count: usize) -> anyhow::Result<Vec<WebSocket>> {
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = JoinSet::new();
    for _ in 0..count {
        let (endpoint, permits) = (endpoint.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            endpoint.connect().await
        });
    }
    let mut sockets = Vec::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        sockets.push(done??);
    }
    Ok(sockets)
}

async fn connection(socket: WebSocket, plan: Plan) -> Tally {
    let (mut reader, writer) = socket.split();
    let mut recorder = plan.latencies.recorder();
    let mut tally = Tally::default();
    if let Err(error) = exchange(&mut reader, &writer, &plan, &mut recorder, &mut tally).await {
        plan.errors.add(error);
    }
    close(&mut reader, &writer).await;
    tally
}

/// Keeps `pipeline` messages in flight until the window ends, then waits
/// for the outstanding echoes.
async fn exchange(
    reader: &mut Reader,
    writer: &Writer,
    plan: &Plan,
    recorder: &mut Recorder,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let mut sent = VecDeque::with_capacity(plan.pipeline);
    for _ in 0..plan.pipeline {
        sent.push_back(Instant::now());
        writer.feed(plan.message.clone()).await?;
    }
    writer.flush().await?;
    while let Some(sent_at) = sent.pop_front() {
        // Only the echoes outstanding at the end are waited for with a
        // deadline (a timer per message would cost the generator).
        let echo = if Instant::now() < plan.measure_until {
            reader.recv().await
        } else {
            tokio::time::timeout_at(plan.give_up, reader.recv())
                .await
                .map_err(|_| {
                    anyhow::anyhow!("{} echoes still missing after the run", sent.len() + 1)
                })?
        };
        let Some(echo) = echo else {
            anyhow::bail!("the server closed the connection");
        };
        let echo = echo?;
        let now = Instant::now();
        if now >= plan.measure_from && now < plan.measure_until {
            tally.messages += 1;
            tally.bytes += echo.len() as u64;
            recorder.record(now - sent_at);
        }
        if now < plan.measure_until {
            sent.push_back(now);
            writer.feed(plan.message.clone()).await?;
        }
    }
    Ok(())
}

/// The closing handshake, bounded in time; true if the server answered.
pub async fn close(reader: &mut Reader, writer: &Writer) -> bool {
    let handshake = async {
        writer.close(CloseCode::NORMAL, "").await?;
        loop {
            if let Event::Closed(info) = reader.next_event().await? {
                return Ok::<_, switchboard_net::Error>(info.is_clean());
            }
        }
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(3), handshake).await,
        Ok(Ok(true))
    )
}
