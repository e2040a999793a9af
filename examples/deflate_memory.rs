//! Resident memory of a server per idle and per active connection, with and
//! without permessage-deflate.
//!
//! ```text
//! cargo build --release --examples
//! target/release/examples/deflate_memory --connections 1000
//! ```
//!
//! For each mode of `examples/deflate_bench_server.rs` (`off`, `default`,
//! `server-takeover`, `takeover`) it starts that server as a process on a
//! free 127.0.0.1 port and reads its `VmRSS` from `/proc/PID/status`: once
//! listening, after `--connections` clients have connected (idle), and after
//! each client has echoed `--messages` chat messages of about `--size` bytes
//! (active: what connections keep once they have been used). The clients
//! offer what browsers do, `permessage-deflate; client_max_window_bits`, so
//! the server decides on context takeover. Prints a Markdown table.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use clap::Parser;
use switchboard_net::{connect_with, Config, ConnectOptions, Message, WebSocket};
use switchboard_proto::deflate::{DeflateConfig, EXTENSION};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long one mode may take, from spawning the server to stopping it.
const MODE_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the server is left alone before each reading, to settle.
const SETTLE: Duration = Duration::from_millis(500);
/// How many connections are opened at a time.
const BATCH: usize = 100;

#[derive(Debug, Parser)]
struct Args {
    /// Connections held open at once.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Messages each connection sends (and gets back) in the active phase.
    #[arg(long, default_value_t = 5)]
    messages: usize,
    /// Approximate size of each message, in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// The server binary (default: deflate_bench_server next to this one).
    #[arg(long)]
    server: Option<PathBuf>,
    /// The modes to measure, comma-separated.
    #[arg(long, default_value = "off,default,server-takeover,takeover")]
    modes: String,
    /// The server's `--window-bits` (its LZ77 window, 8–15).
    #[arg(long, default_value_t = 15)]
    window_bits: u8,
}

/// VmRSS or VmHWM of a process, in KiB.
fn status_kib(pid: u32, field: &str) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no {field} for {pid}")))
}

/// A JSON chat message of `len` bytes, different for every `seed`.
fn chat_message(seed: usize, len: usize) -> String {
    const WORDS: &[&str] = &[
        "hello",
        "lobby",
        "deploy",
        "coffee",
        "switchboard",
        "message",
        "latency",
        "room",
        "tonight",
        "build",
        "green",
        "review",
        "merge",
        "ticket",
        "lunch",
        "standup",
    ];
    let head = format!(r#"{{"event":"chat","room":"lobby","from":"u{seed:08x}","data":{{"text":""#);
    let mut text = head.clone();
    let mut state = seed as u64 * 2_654_435_761 + 1;
    while text.len() + 3 < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        text.push_str(WORDS[(state % WORDS.len() as u64) as usize]);
        text.push(' ');
    }
    text.truncate(len.saturating_sub(3).max(head.len()));
    text.push_str(r#""}}"#);
    text
}

struct Server {
    child: Child,
    pid: u32,
    url: String,
}

async fn start_server(binary: &PathBuf, mode: &str, window_bits: u8) -> Result<Server, String> {
    let mut child = Command::new(binary)
        .args(["--deflate", mode, "--listen", "127.0.0.1:0"])
        .args(["--window-bits", &window_bits.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("starting {}: {error}", binary.display()))?;
    let pid = child.id().ok_or("the server exited at once")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .map_err(|error| format!("reading the server's address: {error}"))?;
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("unexpected first line {line:?}"))?
        .to_owned()
        + "/";
    Ok(Server { child, pid, url })
}

async fn open(url: &str, deflate: bool) -> Result<WebSocket, String> {
    let mut config = Config::default();
    if deflate {
        // What a browser offers: `permessage-deflate; client_max_window_bits`.
        let mut offer = DeflateConfig::client();
        offer.client_no_context_takeover(false);
        config.deflate(Some(offer));
    }
    let (socket, response) = connect_with(url, ConnectOptions::default().config(config))
        .await
        .map_err(|error| format!("connect: {error}"))?;
    let negotiated = response
        .extensions
        .iter()
        .any(|e| e.name.eq_ignore_ascii_case(EXTENSION));
    if negotiated != deflate {
        return Err(format!(
            "compression offered: {deflate}, negotiated: {negotiated}"
        ));
    }
    Ok(socket)
}

/// Sends `count` messages on `socket` and checks each echo.
async fn exchange(
    mut socket: WebSocket,
    id: usize,
    count: usize,
    size: usize,
) -> Result<WebSocket, String> {
    for i in 0..count {
        let message = Message::text(chat_message(id * 1000 + i, size));
        socket
            .send(message.clone())
            .await
            .map_err(|error| format!("send: {error}"))?;
        match socket.recv().await {
            Some(Ok(reply)) if reply == message => {}
            other => return Err(format!("connection {id}: bad echo {other:?}")),
        }
    }
    Ok(socket)
}

struct Reading {
    base: u64,
    idle: u64,
    active: u64,
    peak: u64,
}

async fn measure(binary: &PathBuf, mode: &str, args: &Args) -> Result<Reading, String> {
    let mut server = start_server(binary, mode, args.window_bits).await?;
    let (pid, url) = (server.pid, server.url.clone());
    let deflate = mode != "off";
    tokio::time::sleep(SETTLE).await;
    let rss = |field| status_kib(pid, field).map_err(|error| error.to_string());
    let base = rss("VmRSS:")?;

    let mut sockets = Vec::with_capacity(args.connections);
    while sockets.len() < args.connections {
        let batch = BATCH.min(args.connections - sockets.len());
        let opening: Vec<_> = (0..batch)
            .map(|_| {
                tokio::spawn({
                    let url = url.clone();
                    async move { open(&url, deflate).await }
                })
            })
            .collect();
        for task in opening {
            sockets.push(task.await.map_err(|error| error.to_string())??);
        }
    }
    tokio::time::sleep(SETTLE).await;
    let idle = rss("VmRSS:")?;

    let tasks: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(id, socket)| tokio::spawn(exchange(socket, id, args.messages, args.size)))
        .collect();
    let mut sockets = Vec::with_capacity(tasks.len());
    for task in tasks {
        sockets.push(task.await.map_err(|error| error.to_string())??);
    }
    tokio::time::sleep(SETTLE).await;
    let active = rss("VmRSS:")?;
    let peak = rss("VmHWM:")?;

    drop(sockets);
    let _ = server.child.start_kill();
    let _ = server.child.wait().await;
    Ok(Reading {
        base,
        idle,
        active,
        peak,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let binary = match &args.server {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("deflate_bench_server"),
    };
    let n = args.connections as f64;
    println!(
        "{} connections; active = after {} echoed messages of {} bytes each; server window bits {}\n",
        args.connections, args.messages, args.size, args.window_bits
    );
    println!("| server mode | RSS listening | RSS idle | per idle connection | RSS active | per active connection | peak |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for mode in args.modes.split(',') {
        let reading = tokio::time::timeout(MODE_TIMEOUT, measure(&binary, mode, &args))
            .await
            .map_err(|_| format!("{mode}: did not finish within {MODE_TIMEOUT:?}"))??;
        let mib = |kib: u64| kib as f64 / 1024.0;
        println!(
            "| `{mode}` | {:.1} MiB | {:.1} MiB | {:.1} KiB | {:.1} MiB | {:.1} KiB | {:.1} MiB |",
            mib(reading.base),
            mib(reading.idle),
            reading.idle.saturating_sub(reading.base) as f64 / n,
            mib(reading.active),
            reading.active.saturating_sub(reading.base) as f64 / n,
            mib(reading.peak),
        );
    }
    Ok(())
}
