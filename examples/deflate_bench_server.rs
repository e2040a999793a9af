//! An echo server whose permessage-deflate settings come from flags, for
//! measuring what compression costs (`examples/deflate_memory.rs` drives it)
//! and for interop tests at the default threshold.
//!
//! ```text
//! cargo run --release --example deflate_bench_server -- --deflate default
//! cargo run --release --example deflate_bench_server -- --deflate server-takeover --listen 127.0.0.1:9002
//! ```
//!
//! `--deflate` picks one of:
//!
//! - `off`: no compression;
//! - `default`: [`DeflateConfig::default`], no context takeover either way,
//!   so zlib state is borrowed from a per-thread pool for one message;
//! - `server-takeover`: the server keeps a compressor per connection
//!   (`server_no_context_takeover` off), the client still compresses each
//!   message on its own;
//! - `takeover`: context takeover both ways, a compressor and an inflater per
//!   connection.
//!
//! Prints `listening on ws://ADDR` on stdout once bound (port 0 picks a free
//! one), then serves until killed.

use std::io::Write;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use switchboard_net::{accept, AcceptAll, Config};
use switchboard_proto::deflate::DeflateConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Off,
    Default,
    ServerTakeover,
    Takeover,
}

#[derive(Debug, Parser)]
struct Args {
    /// Address to bind; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Compression settings.
    #[arg(long, value_enum, default_value = "default")]
    deflate: Mode,
    /// zlib level, 0–9.
    #[arg(long, default_value_t = 6)]
    level: u32,
    /// Messages shorter than this many bytes are sent uncompressed.
    #[arg(long, default_value_t = 128)]
    threshold: usize,
    /// The largest LZ77 window the server compresses with, 8–15.
    #[arg(long, default_value_t = 15)]
    window_bits: u8,
    /// The largest message accepted, in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    max_message_size: usize,
}

fn deflate_config(args: &Args) -> Option<DeflateConfig> {
    let mut deflate = DeflateConfig::default();
    deflate
        .level(args.level)
        .threshold(args.threshold)
        .server_max_window_bits(args.window_bits);
    match args.deflate {
        Mode::Off => return None,
        Mode::Default => {}
        Mode::ServerTakeover => {
            deflate.server_no_context_takeover(false);
        }
        Mode::Takeover => {
            deflate
                .server_no_context_takeover(false)
                .client_no_context_takeover(false);
        }
    }
    Some(deflate)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut config = Config::default();
    config
        .deflate(deflate_config(&args))
        .max_message_size(args.max_message_size);
    config.validate()?;
    let config = Arc::new(config);
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("listening on ws://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        let (stream, _) = listener.accept().await?;
        let config = config.clone();
        tokio::spawn(async move {
            let Ok(Some(accepted)) = accept(stream, &config, &AcceptAll).await else {
                return;
            };
            let mut socket = accepted.socket;
            while let Some(Ok(message)) = socket.recv().await {
                if socket.send(message).await.is_err() {
                    break;
                }
            }
        });
    }
}
