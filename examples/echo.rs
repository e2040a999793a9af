//! An echo server: every text or binary message comes back unchanged.
//!
//! ```text
//! cargo run --release --example echo -- 127.0.0.1:9001
//! ```
//!
//! This is the server the Autobahn TestSuite and the interop tests run
//! against: the transport's defaults, with permessage-deflate accepted. One
//! task per connection drives its [`Session`](switchboard_net::Session);
//! while replies wait to be written, it reads no more (backpressure).

use switchboard_net::{accept, AcceptAll, Config, Event};
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
            let (mut session, _) = accepted.into_session(1024, 4 << 20);
            while let Ok(event) = session.next_event().await {
                if let Event::Message(message) = event {
                    // Refused only once the connection is closing.
                    let _ = session.send(message);
                }
            }
        });
    }
}
