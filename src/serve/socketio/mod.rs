//! Socket.IO at `/socket.io/` (docs/SOCKETIO.md): Engine.IO v4 with its
//! two transports, in front of the hub's Socket.IO connections
//! (`switchboard_hub::socketio`).
//!
//! - `settings`: Socket.IO as configured ([`SocketIo`]); `query`, what a
//!   request asks for ([`EngineQuery`]) and Engine.IO's refusals;
//! - `sessions`: the long-polling sessions, by `sid`;
//! - `connect`: the Engine.IO `open` and the first CONNECT, whose `auth`
//!   decides on the connection, before it joins the hub;
//! - `polling`: HTTP long-polling, a session whose hub connection runs on
//!   an in-memory WebSocket that GET and POST requests read and write;
//! - `upgrade`: a polling session moving to a WebSocket (`2probe`,
//!   `3probe`, `5`).

mod connect;
pub mod polling;
mod query;
pub mod sessions;
mod settings;
mod upgrade;

pub use connect::run as serve_websocket;
pub use query::{EngineError, EngineQuery, Transport};
pub use settings::SocketIo;
pub use upgrade::run as serve_upgrade;
