//! `bench idle`: open N connections, hold them idle, close them.
//!
//! The JSON line is printed as soon as every connection is open (or has
//! failed), before the hold, so that a script can read the server's memory
//! while the connections are held. How the close went is told on stderr.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::echo;
use super::endpoint::{client_config, Endpoint};
use super::flags::{seconds, TargetArgs};
use super::stats::{self, Errors};

/// Flags of `switchboard bench idle`.
#[derive(Args, Debug)]
pub struct IdleArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Connections to open.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Seconds to hold them open once all are.
    #[arg(long, value_parser = seconds, default_value = "5")]
    hold: Duration,
    /// Handshakes in progress at once (below the usual listen backlog of
    /// 128, so that no SYN is dropped and retried a second later).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

pub async fn run(args: IdleArgs, nofile: u64) -> anyhow::Result<serde_json::Value> {
    if nofile < args.connections as u64 + 64 {
        eprintln!(
            "switchboard bench: the open-files limit is {nofile}; {} connections may not fit",
            args.connections
        );
    }
    let endpoint = Endpoint::resolve(&args.target, client_config(0)).await?;
    let errors = Arc::new(Errors::default());
    let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (opened_tx, mut opened_rx) = mpsc::channel::<bool>(args.connections.max(1));
    let cpu_before = stats::CpuSnapshot::take();
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..args.connections {
        let (endpoint, errors, permits) = (endpoint.clone(), errors.clone(), permits.clone());
        let (opened_tx, stop) = (opened_tx.clone(), stop_rx.clone());
        tasks.spawn(async move {
            let permit = permits.acquire_owned().await;
            let socket = match endpoint.connect().await {
                Ok(socket) => socket,
                Err(error) => {
                    errors.add(format!("{error:#}"));
                    let _ = opened_tx.send(false).await;
                    return false;
                }
            };
            drop(permit);
            let _ = opened_tx.send(true).await;
            drop(opened_tx);
            hold(socket, stop).await
        });
    }
    drop(opened_tx);
    let mut connected = 0usize;
    while let Some(ok) = opened_rx.recv().await {
        connected += usize::from(ok);
    }
    let connect_time = started.elapsed();
    let cpu_after = stats::CpuSnapshot::take();
    let secs = connect_time.as_secs_f64();
    let line = json!({
        "scenario": "idle",
        "url": args.target.url,
        "sources": args.target.sources.len(),
        "connections": args.connections,
        "connected": connected,
        "failed": args.connections - connected,
        "connect_s": stats::round3(secs),
        "connects_per_s": if secs > 0.0 { stats::round1(connected as f64 / secs) } else { 0.0 },
        "hold_s": args.hold.as_secs_f64(),
    });
    let line = stats::merge(line, errors.json());
    let line = stats::merge(line, stats::cpu_json(cpu_before, cpu_after, connect_time));
    stats::emit(&stats::with_total_cpu(line));

    tokio::time::sleep(args.hold).await;
    let alive = tasks.len();
    let _ = stop_tx.send(true);
    let closing = Instant::now();
    let mut closed = 0usize;
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(done) = tasks.join_next().await {
            closed += usize::from(matches!(done, Ok(true)));
        }
    })
    .await;
    tasks.abort_all();
    eprintln!(
        "switchboard bench idle: {closed} of {connected} connections closed cleanly \
         in {:.2} s ({alive} were still open after the hold)",
        closing.elapsed().as_secs_f64()
    );
    // The line went out already; the caller prints nothing more.
    Ok(serde_json::Value::Null)
}

/// Keeps a connection open, answering pings, until told to stop; true if
/// it was still open then and the closing handshake completed.
async fn hold(socket: switchboard_net::WebSocket, mut stop: watch::Receiver<bool>) -> bool {
    let (mut reader, writer) = socket.split();
    loop {
        tokio::select! {
            message = reader.recv() => match message {
                Some(Ok(_)) => continue,
                _ => return false,
            },
            _ = stop.changed() => break,
        }
    }
    echo::close(&mut reader, &writer).await
}
