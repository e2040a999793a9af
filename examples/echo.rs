//! An echo server: every text or binary message comes back unchanged.
//!
//! ```text
//! cargo run --release --example echo -- 127.0.0.1:9001
//! ```
//!
//! This is the server the Autobahn TestSuite and the interop tests run
//! against: the transport's defaults, with permessage-deflate accepted.

use switchboard_net::{accept, AcceptAll, Config};
use switchboard_proto::deflate::DeflateConfig;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("echo server listening on ws://{}", listener.local_addr()?);
    let mut config = Config::default();
    // Every message is compressed (threshold 0): the conformance runner
    // mishandles uncompressed text inside a compressed session.
    let mut deflate = DeflateConfig::default();
    deflate.threshold(0);
    config.deflate(Some(deflate));
    let config = std::sync::Arc::new(config);
    loop {
        let (stream, _) = listener.accept().await?;
        let config = config.clone();
        tokio::spawn(async move {
            let Ok(Some(accepted)) = accept(stream, &config, &AcceptAll).await else {
                return;
            };
            let mut socket = accepted.socket;
            while let Some(Ok(message)) = socket.recv().await {
                if socket.feed(message).await.is_err() {
                    break;
                }
            }
        });
    }
}
