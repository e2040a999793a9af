//! `switchboard bench`: a load generator for any WebSocket server.
//!
//! - `echo`: round trips on pipelined connections (messages/s, MB/s, latency);
//! - `events`: acknowledged hub events, handled by the server (an event
//!   proxy's backend, say) or relayed back by the hub (events/s, latency);
//! - `fanout`: one publisher, many subscribers (deliveries/s, latency);
//! - `idle`: many idle connections held open (for the server's memory);
//! - `handshake`: connections opened and closed per second;
//! - `scale`: many hub connections in one room, waiting for stamped
//!   messages (for `scripts/bench_scale`, over many nodes).
//!
//! Each scenario prints one JSON line on stdout, with the CPU time the
//! generator itself used (`client_cpu_util`, where 1.0 is one core busy):
//! near 1.0 the generator, not the server, set the pace.
//!
//! - `flags`: the flags every scenario has (`--url`, `--sources`), and
//!   durations in seconds;
//! - `endpoint`: `Endpoint::connect`, which opens a client connection from
//!   a chosen source address, and the generator's client settings;
//! - `stats`: histograms, CPU time, the JSON line;
//! - this module: the command line and the runtime.

mod echo;
mod endpoint;
mod events;
mod fanout;
mod flags;
mod handshake;
mod idle;
mod raw_frames;
mod scale;
mod stats;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

/// Flags of `switchboard bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    scenario: Scenario,
    /// Threads of the generator's runtime (1 = a single-threaded runtime,
    /// the cheapest per message; pin it with taskset).
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    /// The server's process id, on this machine: its CPU time over the
    /// measured window is reported too (`server_cpu_util`).
    #[arg(long, global = true)]
    server_pid: Option<u32>,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Round trips: C connections, each keeping K messages in flight.
    Echo(echo::EchoArgs),
    /// Hub connections sending acknowledged events: events/s and ack latency.
    Events(events::EventsArgs),
    /// One publisher, N subscribers: deliveries per second and latency.
    Fanout(fanout::FanoutArgs),
    /// Open N connections, hold them idle, close them.
    Idle(idle::IdleArgs),
    /// Open and close connections as fast as possible.
    Handshake(handshake::HandshakeArgs),
    /// N hub connections in one room, waiting for stamped messages.
    Scale(scale::ScaleArgs),
}

/// Runs a scenario on its own runtime and prints its JSON line.
pub fn main(args: BenchArgs) -> ExitCode {
    let limit = crate::rlimit::raise_nofile();
    if let Some(pid) = args.server_pid {
        stats::watch_server(pid);
    }
    let mut builder = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(args.threads);
        builder
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("switchboard bench: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match args.scenario {
            Scenario::Echo(args) => echo::run(args).await,
            Scenario::Events(args) => events::run(args).await,
            Scenario::Fanout(args) => fanout::run(args).await,
            Scenario::Idle(args) => idle::run(args, limit).await,
            Scenario::Handshake(args) => handshake::run(args).await,
            Scenario::Scale(args) => scale::run(args).await,
        }
    });
    // Connections still closing must not hold the process.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(line) => {
            // A scenario that printed its line itself returns null.
            if !line.is_null() {
                stats::emit(&stats::with_total_cpu(line));
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("switchboard bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
