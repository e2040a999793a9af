//! The hub inside an axum app: the app's own routes and the hub's `/ws` on
//! one port, with one authorizer, one connection limit and one shutdown.
//!
//! ```text
//! cargo run --example axum            # then open http://127.0.0.1:3000/?user=ann
//! ```
//!
//! `/` is the app's page (a tiny chat on the hub), `/api/online` one of the
//! app's own routes reading the hub, and `/ws` hands upgrades to the hub,
//! which decides on them exactly as `switchboard serve` does: 401 without
//! `?user=`, 503 past `max_connections` or once shutting down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use switchboard_hub::{net, Hub, HubConfig, Meta};
use tokio::net::TcpListener;

/// What the app's handlers share: the hub and the WebSocket settings.
#[derive(Clone)]
pub struct AppState {
    hub: Hub,
    websocket: Arc<net::Config>,
}

/// The hub this app runs: connections must say who they are (`?user=`),
/// and a `shout` event goes to everyone with the sender's user name.
pub fn chat_hub() -> Hub {
    let hub = Hub::new(HubConfig::default());
    hub.set_authorizer(|request| match request.query_param("user") {
        Some(user) if !user.is_empty() => Ok(Meta::from([("user".to_owned(), user)])),
        _ => Err((401, "say who you are: ?user=NAME".to_owned())),
    });
    hub.on("shout", |cx| {
        let user = cx.socket.meta().get("user").cloned().unwrap_or_default();
        let text = cx.data.as_str().unwrap_or_default();
        cx.hub
            .emit_all("shout", &json!({ "user": user, "text": text }));
        Ok(json!("sent"))
    });
    hub
}

/// The app: its own routes next to the hub's endpoint.
pub fn app(hub: Hub) -> Router {
    let state = AppState {
        hub,
        websocket: Arc::new(net::Config::default()),
    };
    Router::new()
        .route("/", get(page))
        .route("/api/online", get(online))
        .route("/ws", get(websocket))
        .with_state(state)
}

/// Hands the upgrade to the hub; its answer (101, or a refusal with the
/// reason) goes back through axum.
async fn websocket(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    mut request: Request,
) -> impl IntoResponse {
    state
        .hub
        .handle_upgrade(&mut request, &state.websocket, Some(remote))
        .await
}

/// An ordinary route of the app that reads the hub.
async fn online(State(state): State<AppState>) -> Json<serde_json::Value> {
    let users: Vec<String> = state
        .hub
        .sockets()
        .iter()
        .filter_map(|socket| socket.meta().get("user").cloned())
        .collect();
    Json(json!({ "connections": state.hub.connection_count(), "users": users }))
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8"><title>axum + switchboard</title>
<ul id="log"></ul>
<form id="say"><input id="text" autocomplete="off"><button>Shout</button></form>
<script>
  const user = new URLSearchParams(location.search).get("user") || "guest";
  const ws = new WebSocket(`ws://${location.host}/ws?user=${encodeURIComponent(user)}`);
  const log = (line) => {
    const item = document.createElement("li");
    item.textContent = line;
    document.getElementById("log").append(item);
  };
  ws.onmessage = (message) => {
    const { event, data } = JSON.parse(message.data);
    if (event === "ready") log(`connected as ${user}`);
    if (event === "shout") log(`${data.user}: ${data.text}`);
  };
  document.getElementById("say").onsubmit = (submit) => {
    submit.preventDefault();
    const text = document.getElementById("text");
    ws.send(JSON.stringify({ event: "shout", data: text.value }));
    text.value = "";
  };
</script>
"#;

/// Serves `app` until Ctrl-C, then shuts the hub down gracefully: new
/// upgrades get 503, clients get `end` and a 1001 close.
pub async fn run(listener: TcpListener, hub: Hub) -> std::io::Result<()> {
    let service = app(hub.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let stopping = hub.clone();
    axum::serve(listener, service)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            stopping.shutdown(Duration::from_secs(5)).await;
        })
        .await
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::var("ADDRESS").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = TcpListener::bind(&address).await?;
    println!("http://{address}/?user=ann");
    run(listener, chat_hub()).await
}
