//! What the hub's integration tests share.

use std::sync::Arc;

use switchboard_hub::Hub;
use switchboard_net::{accept, Config};
use tokio::net::TcpListener;

/// Serves `hub` on a fresh port the way an embedding program does: the hub
/// is the accept handler, and each admitted connection runs in the task
/// that accepted it. Returns the hub's URL.
pub async fn serve(hub: Hub) -> String {
    serve_with(hub, Config::default()).await
}

/// [`serve`] with the transport's settings given.
#[allow(dead_code)]
pub async fn serve_with(hub: Hub, config: Config) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let config = Arc::new(config);
        while let Ok((stream, remote)) = listener.accept().await {
            let (hub, config) = (hub.clone(), config.clone());
            tokio::spawn(async move {
                if let Ok(Some(accepted)) = accept(stream, &config, &hub).await {
                    hub.serve(accepted, Some(remote)).await;
                }
            });
        }
    });
    url
}
