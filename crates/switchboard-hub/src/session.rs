//! One connection's life in the hub: join, read and dispatch, leave.

use std::net::SocketAddr;

use serde_json::json;
use switchboard_net::{Accepted, Event};

use crate::envelope::{self, Codec, Encoding};
use crate::hub::Hub;
use crate::id::ConnId;
use crate::metrics::Metrics;
use crate::outbox::{write_loop, Outbox};
use crate::socket::{Meta, Socket};

impl Hub {
    /// Runs an accepted connection in the hub until it closes: sends `ready`,
    /// dispatches its messages, and removes it from its rooms at the end.
    ///
    /// The name may come from the `name` query parameter of the upgrade
    /// request (`/ws?name=alice`).
    pub async fn serve(&self, accepted: Accepted, meta: Meta, remote: Option<SocketAddr>) {
        let codec = Codec::from_protocol(accepted.protocol.as_deref());
        let name =
            query_param(accepted.request.query(), "name").map(|name| envelope::user_name(&name));
        let (name, name_error) = match name {
            Some(Ok(name)) => (Some(name), None),
            Some(Err(error)) => (None, Some(error)),
            None => (None, None),
        };
        let (mut reader, writer) = accepted.socket.split();
        let config = &self.inner.config;
        let (outbox, rx, kill) = Outbox::new(
            config.queue_len,
            config.slow_consumer,
            self.inner.metrics.clone(),
        );
        let encoding = Encoding {
            codec,
            deflate: accepted.deflate,
        };
        let socket = Socket::new(ConnId::random(), encoding, outbox, meta, remote, name);
        let mut writer_task = tokio::spawn(write_loop(writer, rx, kill));

        self.registry_mut().insert(socket.clone());
        self.presence_changed(&socket);
        Metrics::add(&self.inner.metrics.connections_opened, 1);
        tracing::debug!(id = %socket.id(), ?remote, "connected");
        socket.emit(
            "ready",
            &json!({ "id": socket.id().as_str(), "name": socket.name() }),
        );
        if let Some(error) = name_error {
            socket.emit(
                "error",
                &json!({ "code": error.code, "message": error.message }),
            );
        }
        self.run_connect_hooks(&socket);

        // Whether the writer ended first (a close it was asked to send, a
        // slow-consumer abort, a failed write): its handle is then spent.
        let writer_ended = loop {
            tokio::select! {
                event = reader.next_event() => match event {
                    Ok(Event::Message(message)) => self.dispatch(&socket, message),
                    Ok(Event::Ping(_) | Event::Pong(_) | Event::Fragment(_)) => {}
                    Ok(Event::Closed(info)) => {
                        tracing::debug!(id = %socket.id(), code = %info.code(), cause = ?info.cause, "closed");
                        break false;
                    }
                    Err(error) => {
                        tracing::debug!(id = %socket.id(), %error, "read failed");
                        break false;
                    }
                },
                _ = &mut writer_task => {
                    tracing::debug!(id = %socket.id(), "writer ended");
                    break true;
                }
            }
        };
        self.remove(&socket);
        drop(socket);
        // The queue closes once the registry's handles are gone; the writer
        // then finishes what was queued, bounded by the socket's close timeout.
        // (A finished JoinHandle must not be polled again: tokio panics.)
        if !writer_ended {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer_task).await;
        }
    }

    fn remove(&self, socket: &Socket) {
        let rooms = self.registry_mut().remove(socket);
        self.presence_removed(socket);
        for room in &rooms {
            self.mark_dirty(room);
        }
        Metrics::add(&self.inner.metrics.connections_closed, 1);
        self.run_disconnect_hooks(socket);
        self.notify_if_empty();
    }
}

/// The decoded value of one query parameter.
fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match bytes.get(i + 1..i + 3).and_then(hex_byte) {
                Some(byte) => {
                    out.push(byte);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_decode() {
        assert_eq!(
            query_param(Some("a=1&name=Al%C3%AFce+B"), "name").as_deref(),
            Some("Alïce B")
        );
        assert_eq!(
            query_param(Some("name=%zz%4"), "name").as_deref(),
            Some("%zz%4")
        );
        assert_eq!(query_param(None, "name"), None);
        assert_eq!(query_param(Some("x=1"), "name"), None);
    }
}
