//! `bench handshake`: C workers each open a connection (TCP connect and
//! opening handshake), close it (closing handshake), and start over, for
//! the duration; connections opened and closed per second, and the time an
//! open takes.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::echo;
use super::endpoint::{client_config, Endpoint};
use super::flags::{seconds, TargetArgs};
use super::stats::{self, Errors, Latencies};

/// Flags of `switchboard bench handshake`.
#[derive(Args, Debug)]
pub struct HandshakeArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Measured seconds.
    #[arg(long, value_parser = seconds, default_value = "5")]
    duration: Duration,
    /// Connections being opened or closed at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

#[derive(Default)]
struct Tally {
    opened: u64,
    closed: u64,
}

pub async fn run(args: HandshakeArgs) -> anyhow::Result<serde_json::Value> {
    let endpoint = Endpoint::resolve(&args.target, client_config(0)).await?;
    let latencies = Latencies::new();
    let errors = Arc::new(Errors::default());
    let started = Instant::now();
    let until = started + args.duration;
    let cpu_before = stats::CpuSnapshot::take();
    let mut tasks = JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let (endpoint, latencies, errors) = (endpoint.clone(), latencies.clone(), errors.clone());
        tasks.spawn(async move { worker(endpoint, until, latencies, errors).await });
    }
    let mut total = Tally::default();
    while let Some(done) = tasks.join_next().await {
        if let Ok(tally) = done {
            total.opened += tally.opened;
            total.closed += tally.closed;
        }
    }
    let elapsed = started.elapsed();
    let cpu_after = stats::CpuSnapshot::take();
    let secs = elapsed.as_secs_f64();
    let line = json!({
        "scenario": "handshake",
        "url": args.target.url,
        "sources": args.target.sources.len(),
        "concurrency": args.concurrency,
        "duration_s": stats::round3(secs),
        "opened": total.opened,
        "closed": total.closed,
        "opened_per_s": stats::round1(total.opened as f64 / secs),
        "closed_per_s": stats::round1(total.closed as f64 / secs),
        "connect_us": latencies.summary(),
    });
    let line = stats::merge(line, errors.json());
    Ok(stats::merge(
        line,
        stats::cpu_json(cpu_before, cpu_after, elapsed),
    ))
}

async fn worker(
    endpoint: Endpoint,
    until: Instant,
    latencies: Latencies,
    errors: Arc<Errors>,
) -> Tally {
    let mut recorder = latencies.recorder();
    let mut tally = Tally::default();
    while Instant::now() < until {
        let opening = Instant::now();
        let socket = match endpoint.connect().await {
            Ok(socket) => socket,
            Err(error) => {
                errors.add(format!("{error:#}"));
                // Do not spin on a refusing server.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        recorder.record(opening.elapsed());
        tally.opened += 1;
        let (mut reader, writer) = socket.split();
        if echo::close(&mut reader, &writer).await {
            tally.closed += 1;
        }
    }
    tally
}
