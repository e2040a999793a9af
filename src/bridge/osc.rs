//! The OSC bridge: OSC 1.0/1.1 packets over UDP, on the `rosc` codec. An
//! input publishes every message of each datagram it receives; an output
//! sends each address message as one datagram. How OSC values become JSON
//! and back is `osc_codec`'s business.

use std::net::SocketAddr;

use serde_json::Value;
use tokio::net::UdpSocket;

use super::kind::Kind;
use super::link::Task;
use super::osc_codec::{decode, flatten, to_json};

async fn resolve(address: &str) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host(address.trim())
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{address} resolves to nothing"))
}

/// An open UDP socket.
pub(crate) struct Socket {
    udp: UdpSocket,
    local: SocketAddr,
}

impl Socket {
    pub fn local(&self) -> String {
        self.local.to_string()
    }
}

/// Binds the listening address, or a sending socket connected to the
/// target (so that an unreachable target shows up as send errors).
pub(crate) async fn open(kind: Kind, address: &str) -> anyhow::Result<Socket> {
    let target = resolve(address).await?;
    let udp = match kind {
        Kind::OscListen => UdpSocket::bind(target)
            .await
            .map_err(|error| anyhow::anyhow!("cannot bind udp {target}: {error}"))?,
        Kind::OscSend => {
            let local: SocketAddr = match (target.is_ipv4(), target.ip().is_loopback()) {
                (true, true) => "127.0.0.1:0",
                (true, false) => "0.0.0.0:0",
                (false, true) => "[::1]:0",
                (false, false) => "[::]:0",
            }
            .parse()?;
            let udp = UdpSocket::bind(local).await?;
            udp.connect(target).await?;
            udp
        }
        _ => unreachable!("not an OSC kind"),
    };
    let local = match kind {
        Kind::OscSend => target,
        _ => udp.local_addr()?,
    };
    Ok(Socket { udp, local })
}

/// Runs the socket until told to stop.
pub(crate) async fn run(socket: Socket, mut task: Task) {
    match task.queue.take() {
        Some(mut queue) => loop {
            let message = tokio::select! {
                message = queue.recv() => message,
                _ = task.stop.changed() => None,
            };
            let Some(message) = message else { return };
            match message.osc() {
                Ok(packet) => match socket.udp.send(packet).await {
                    Ok(_) => task.link.sent(),
                    Err(error) => task.link.send_error(&error),
                },
                Err(why) => task.link.send_error(why),
            }
        },
        None => {
            let mut buffer = vec![0; 65_536];
            loop {
                let received = tokio::select! {
                    received = socket.udp.recv_from(&mut buffer) => received,
                    _ = task.stop.changed() => return,
                };
                match received {
                    Ok((len, _peer)) => receive(&buffer[..len], &task),
                    // ICMP errors from earlier sends and the like; not input.
                    Err(error) => tracing::debug!(%error, "udp receive failed"),
                }
            }
        }
    }
}

/// Publishes every message of one datagram; a bad datagram publishes
/// nothing and counts once, a bad address counts for its message.
fn receive(datagram: &[u8], task: &Task) {
    let packet = match decode(datagram) {
        Ok(packet) => packet,
        Err(why) => return task.link.malformed(&why),
    };
    let mut messages = Vec::new();
    flatten(packet, &mut messages);
    for message in messages {
        let values: Vec<Value> = message.args.iter().map(to_json).collect();
        if let Err(why) = task.inbox.deliver(&task.link, &message.addr, &values) {
            task.link
                .malformed(&format!("address {:?}: {why}", message.addr));
        }
    }
}
