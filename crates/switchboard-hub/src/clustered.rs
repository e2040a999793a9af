//! The hub's side of clustering: what it hands to the adapter, and what it
//! takes from it (see [`crate::cluster`] for the design).

use std::collections::HashMap;
use std::sync::{Arc, RwLockReadGuard, RwLockWriteGuard};

use serde::ser::Error as _;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::cluster::{
    ClusterAdapter, ClusterMessage, InvalidPayload, PresenceChange, RemoteStats, Route, User,
};
use crate::envelope::Prepared;
use crate::hub::Hub;
use crate::id::ConnId;
use crate::presence::{first_by_id, is_after};
use crate::remote::RemotePresence;
use crate::socket::Socket;

impl Hub {
    /// Makes this hub one node of a cluster. Call it once, before serving
    /// connections; returns false (and changes nothing) if the hub has an
    /// adapter already.
    pub fn set_cluster(&self, adapter: Arc<dyn ClusterAdapter>) -> bool {
        self.inner.cluster.set(adapter).is_ok()
    }

    /// Whether the hub has a cluster adapter.
    pub fn is_clustered(&self) -> bool {
        self.inner.cluster.get().is_some()
    }

    /// Delivers a message another node sent to this node's connections,
    /// without sending it on; returns how many queued it. The payload is
    /// the message's JSON (as in [`ClusterMessage::payload`]).
    pub fn deliver_remote(
        &self,
        route: Route<'_>,
        payload: &[u8],
    ) -> Result<usize, InvalidPayload> {
        let text = std::str::from_utf8(payload).map_err(|e| InvalidPayload(e.to_string()))?;
        let raw: &RawValue =
            serde_json::from_str(text).map_err(|e| InvalidPayload(e.to_string()))?;
        let prepared = Prepared::new(RawJson(raw));
        Ok(self.deliver_local(route, &prepared, None))
    }

    /// Sets the state of a connection on another node (it connected,
    /// joined, left or renamed).
    pub fn remote_update(&self, node: &str, user: User) {
        let dirty = self.remote_mut().update(node, user);
        self.mark_all_dirty(dirty);
    }

    /// A connection on another node left.
    pub fn remote_remove(&self, node: &str, id: &ConnId) {
        let dirty = self.remote_mut().remove(node, id);
        self.mark_all_dirty(dirty);
    }

    /// Replaces everything known of a node with its full list of
    /// connections (which may be empty: the node is then known, with none).
    pub fn remote_sync(&self, node: &str, users: Vec<User>) {
        let dirty = self.remote_mut().sync(node, users);
        self.mark_all_dirty(dirty);
    }

    /// Forgets a node and its connections (it left, or died).
    pub fn remote_drop(&self, node: &str) {
        let dirty = self.remote_mut().drop_node(node);
        self.mark_all_dirty(dirty);
    }

    /// The other nodes known, and their connections.
    pub fn remote_stats(&self) -> RemoteStats {
        let remote = self.remote();
        RemoteStats {
            nodes: remote.nodes.len(),
            users: remote.owner.len(),
        }
    }

    // ---- for the rest of the hub -------------------------------------------

    /// Hands a message routed on this node to the nodes with recipients for
    /// it. `None` when no other node has any (or there is no cluster); else
    /// how many remote connections it went toward (0 if the adapter could
    /// not take it; address messages count 0, their recipients are unknown).
    pub(crate) fn forward<T: Serialize>(
        &self,
        prepared: &Prepared<T>,
        route: Route<'_>,
    ) -> Option<usize> {
        let cluster = self.inner.cluster.get()?;
        let (nodes, recipients) = self.remote().destinations(&route)?;
        let payload = prepared.json();
        let message = ClusterMessage {
            route,
            payload: &payload,
            nodes: &nodes,
        };
        Some(if cluster.send(&message) {
            recipients
        } else {
            0
        })
    }

    /// Whether another node has a connection with this id.
    pub(crate) fn remote_owner(&self, id: &str) -> bool {
        self.is_clustered() && self.remote().owner.contains_key(&ConnId::from_string(id))
    }

    /// Tells the other nodes a local connection's state.
    pub(crate) fn presence_changed(&self, socket: &Socket) {
        if let Some(cluster) = self.inner.cluster.get() {
            let user = {
                let state = socket.state();
                User {
                    id: socket.id().clone(),
                    name: state.name.clone(),
                    rooms: state.rooms.clone(),
                }
            };
            cluster.presence(PresenceChange::Update(user));
        }
    }

    /// Tells the other nodes a local connection left.
    pub(crate) fn presence_removed(&self, socket: &Socket) {
        if let Some(cluster) = self.inner.cluster.get() {
            cluster.presence(PresenceChange::Remove(socket.id().clone()));
        }
    }

    /// Members of a room on other nodes.
    pub(crate) fn remote_room_size(&self, room: &str) -> usize {
        if !self.is_clustered() {
            return 0;
        }
        self.remote().rooms.get(room).map_or(0, |r| r.ids.len())
    }

    /// Adds the user-list entries of remote members of a room (or of every
    /// remote connection) to `entries`: the first `limit` by id after `after`.
    pub(crate) fn extend_remote_entries(
        &self,
        room: Option<&str>,
        after: Option<&str>,
        limit: usize,
        entries: &mut Vec<Value>,
    ) {
        if !self.is_clustered() {
            return;
        }
        let remote = self.remote();
        let users: Vec<&User> = match room {
            Some(room) => {
                let Some(members) = remote.rooms.get(room) else {
                    return;
                };
                let users = members.ids.iter().filter_map(|id| remote.user(id));
                users.filter(|u| is_after(u.id.as_str(), after)).collect()
            }
            None => remote
                .nodes
                .values()
                .flat_map(HashMap::values)
                .filter(|u| is_after(u.id.as_str(), after))
                .collect(),
        };
        let users = first_by_id(users, limit, |u| u.id.as_str());
        entries.extend(users.into_iter().map(User::entry));
    }

    /// Marks the rooms a remote change touched, and the hub's own list.
    fn mark_all_dirty(&self, rooms: Vec<String>) {
        for room in rooms {
            self.mark_dirty(&room);
        }
        self.mark_hub_dirty();
    }

    fn remote(&self) -> RwLockReadGuard<'_, RemotePresence> {
        self.inner.remote.read().unwrap_or_else(|p| p.into_inner())
    }

    fn remote_mut(&self) -> RwLockWriteGuard<'_, RemotePresence> {
        self.inner.remote.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// An already-encoded JSON message, framed for each encoding without
/// encoding the JSON again.
///
/// The hub's two encoders tell themselves apart by
/// [`Serializer::is_human_readable`]: `serde_json` writes the text as it is
/// (a [`RawValue`]); `rmp_serde`, which is not human-readable, gets the
/// parsed value to encode as MessagePack.
pub(crate) struct RawJson<'a>(pub &'a RawValue);

impl Serialize for RawJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            self.0.serialize(serializer)
        } else {
            let value: Value = serde_json::from_str(self.0.get()).map_err(S::Error::custom)?;
            value.serialize(serializer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Codec, Encoding, Outgoing};
    use bytes::Bytes;
    use serde_json::json;

    #[test]
    fn raw_json_frames_as_json_and_msgpack() {
        let data = json!({"text": "hi", "n": [1, 2.5, true, null]});
        let mut message = Outgoing::new("chat", &data);
        message.room = Some("lobby");
        let local = Prepared::new(message);
        let payload = local.json();
        assert_eq!(
            serde_json::from_slice::<Value>(&payload).unwrap(),
            json!({"event": "chat", "room": "lobby", "data": data})
        );
        let raw: &RawValue = serde_json::from_slice(&payload).unwrap();
        let remote = Prepared::new(RawJson(raw));
        let json = Encoding {
            codec: Codec::Json,
            deflate: None,
        };
        assert_eq!(remote.frame(json), local.frame(json), "the same bytes");
        assert_eq!(remote.json(), payload);
        // MessagePack maps come out with their keys sorted: the same map.
        let msgpack = Encoding {
            codec: Codec::MsgPack,
            deflate: None,
        };
        let (remote, local) = (remote.frame(msgpack), local.frame(msgpack));
        assert_eq!(remote[0], 0x82, "a binary frame");
        let decode = |frame: &Bytes| Codec::MsgPack.decode(&frame[2..]).unwrap();
        assert_eq!(decode(&remote), decode(&local));
    }
}
