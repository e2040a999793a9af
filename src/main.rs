//! `switchboard`: run the hub (`serve`), talk to any WebSocket server
//! (`connect`), or load-test one (`bench`).

mod bench;
mod bridge;
mod cluster;
mod connect;
mod endpoints;
mod rlimit;
mod serve;
mod settings;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Real-time messaging over WebSockets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: hub on /ws, echo on /echo, chat page on /, HTTP API.
    Serve(Box<settings::ServeArgs>),
    /// Talk to a WebSocket server from the terminal or a script.
    Connect(connect::ConnectArgs),
    /// Load-test a WebSocket server: echo, fanout, idle, handshake.
    Bench(bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Command::Bench(args) = cli.command {
        // The load generator builds its own runtime (one thread by default).
        return bench::main(args);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("switchboard: cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let is_connect = matches!(cli.command, Command::Connect(_));
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Connect(args) => connect::run(args).await,
            Command::Bench(_) => unreachable!("bench runs on its own runtime"),
        }
    });
    if is_connect {
        // `connect` may be done while a read of stdin is still blocked (it
        // got what `--wait` asked for, or the server went away); waiting for
        // that read would keep the process alive until the next input line.
        runtime.shutdown_background();
    }
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("switchboard: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
