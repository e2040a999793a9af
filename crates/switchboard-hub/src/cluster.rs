//! Clustering: what the hub hands to other nodes, and what it takes from them.
//!
//! The hub does not talk to other nodes itself. It calls a
//! [`ClusterAdapter`] (Redis, in `switchboard serve`), set once with
//! [`Hub::set_cluster`]; the adapter hands back what other nodes sent through
//! [`Hub::deliver_remote`] and the `remote_*` methods. Without an adapter
//! none of this costs anything: every path checks for it once and goes on.
//!
//! # Messages
//!
//! Every room, direct, broadcast and address message routed on this node
//! (from a client, the HTTP API or a bridge) that has recipients on other
//! nodes is given to [`ClusterAdapter::send`] once, with the nodes it is for
//! and its JSON encoding: the very bytes this node's JSON clients get. The
//! receiving node frames that payload for its clients ([`Hub::deliver_remote`]):
//! JSON frames carry it as it is, MessagePack ones re-encode it once per
//! message from the parsed JSON. So a message is encoded once per hop, never
//! once per recipient.
//!
//! Which nodes have recipients is read from this node's view of presence
//! (below): the nodes with members of the room, the node of the direct
//! message's target, every node with a connection for a broadcast, every
//! known node for an address message (subscriptions are not shared).
//!
//! # Presence
//!
//! Each change of a local connection (connect, join, leave, rename,
//! disconnect) is given to [`ClusterAdapter::presence`] as the connection's
//! whole state ([`User`]) or its removal. The adapter keeps the other nodes'
//! connections in this hub's cache (`remote_update`, `remote_remove`,
//! `remote_sync`, `remote_drop`), from which user lists, `users`, room sizes
//! and the routing above are computed synchronously.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use serde::ser::Error as _;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::envelope::Prepared;
use crate::hub::{deliver, Hub};
use crate::id::ConnId;
use crate::socket::Socket;

/// The id of a node, shared by every entry that names it.
pub type NodeId = Arc<str>;

/// Where a message goes on the nodes that receive it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// The members of a room, but `except` (the sender, with `"echo":false`).
    Room {
        /// The room.
        room: &'a str,
        /// A connection to leave out.
        except: Option<&'a str>,
    },
    /// One connection.
    Direct {
        /// Its id.
        to: &'a str,
    },
    /// Every connection, but `except`.
    Everyone {
        /// A connection to leave out.
        except: Option<&'a str>,
    },
    /// The subscribers of patterns matching an address.
    Address {
        /// The address.
        path: &'a str,
    },
}

/// A message routed on this node, for other nodes.
#[derive(Debug)]
pub struct ClusterMessage<'a> {
    /// Where it goes on the receiving nodes.
    pub route: Route<'a>,
    /// The message as clients receive it, in JSON.
    pub payload: &'a Bytes,
    /// The nodes with recipients for it (never this one), in no order.
    pub nodes: &'a [NodeId],
}

/// One connection's entry in the cluster's user lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The connection id.
    pub id: ConnId,
    /// Its name, if it chose one.
    pub name: Option<String>,
    /// The rooms it is in.
    pub rooms: BTreeSet<String>,
}

impl User {
    fn entry(&self) -> Value {
        json!({ "id": self.id.as_str(), "name": self.name })
    }
}

/// A change of a local connection, for the other nodes' user lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceChange {
    /// The connection's state after it connected, joined, left or renamed.
    Update(User),
    /// The connection left the hub.
    Remove(ConnId),
}

/// Carries messages and presence between this hub and the other nodes.
///
/// The hub calls it on the paths of its clients, so both methods must
/// return at once: queue, never wait for the network.
pub trait ClusterAdapter: Send + Sync + 'static {
    /// Sends a message to `message.nodes`. Returns whether it was taken
    /// (false when the cluster link is down or its queue is full: the
    /// message is then lost for the other nodes, see docs/CLUSTERING.md).
    fn send(&self, message: &ClusterMessage<'_>) -> bool;

    /// A local connection's presence changed; changes of one connection
    /// arrive in order.
    fn presence(&self, change: PresenceChange);
}

/// A payload from another node that is not a JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPayload(String);

impl fmt::Display for InvalidPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid cluster payload: {}", self.0)
    }
}

impl std::error::Error for InvalidPayload {}

/// Gauges of the cluster as this hub sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RemoteStats {
    /// Other nodes known.
    pub nodes: usize,
    /// Connections on them.
    pub users: usize,
}

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
        let except = |id: Option<&str>| id.map(ConnId::from_string);
        let delivered = match route {
            Route::Room { room, except: id } => {
                let except = except(id);
                deliver(self.registry().members(room), &prepared, except.as_ref())
            }
            Route::Everyone { except: id } => {
                let except = except(id);
                deliver(self.registry().conns.values(), &prepared, except.as_ref())
            }
            Route::Direct { to } => {
                let socket = self.socket(to);
                deliver(socket.iter(), &prepared, None)
            }
            Route::Address { path } => {
                let subscribers = self.registry().subscribers(path);
                deliver(subscribers.iter(), &prepared, None)
            }
        };
        Ok(delivered)
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
    /// remote connection) to `entries`.
    pub(crate) fn extend_remote_entries(&self, room: Option<&str>, entries: &mut Vec<Value>) {
        if !self.is_clustered() {
            return;
        }
        let remote = self.remote();
        match room {
            Some(room) => {
                let Some(members) = remote.rooms.get(room) else {
                    return;
                };
                entries.extend(
                    members
                        .ids
                        .iter()
                        .filter_map(|id| remote.user(id))
                        .map(User::entry),
                );
            }
            None => entries.extend(
                remote
                    .nodes
                    .values()
                    .flat_map(HashMap::values)
                    .map(User::entry),
            ),
        }
    }

    fn mark_all_dirty(&self, rooms: Vec<String>) {
        for room in rooms {
            self.mark_dirty(&room);
        }
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
struct RawJson<'a>(&'a RawValue);

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

/// The connections of the other nodes, indexed for user lists and routing.
#[derive(Default)]
pub(crate) struct RemotePresence {
    nodes: HashMap<NodeId, HashMap<ConnId, User>>,
    owner: HashMap<ConnId, NodeId>,
    rooms: HashMap<String, RoomMembers>,
}

#[derive(Default)]
struct RoomMembers {
    ids: HashSet<ConnId>,
    /// Members per node, for routing.
    per_node: HashMap<NodeId, usize>,
}

impl RemotePresence {
    fn node_id(&mut self, node: &str) -> NodeId {
        match self.nodes.get_key_value(node) {
            Some((id, _)) => id.clone(),
            None => {
                let id: NodeId = Arc::from(node);
                self.nodes.insert(id.clone(), HashMap::new());
                id
            }
        }
    }

    fn user(&self, id: &ConnId) -> Option<&User> {
        let node = self.owner.get(id)?;
        self.nodes.get(node)?.get(id)
    }

    /// Sets a user's state; returns the rooms whose user list changed.
    fn update(&mut self, node: &str, user: User) -> Vec<String> {
        let node = self.node_id(node);
        let mut dirty = Vec::new();
        if let Some(previous) = self.owner.get(&user.id).cloned() {
            if previous != node {
                dirty = self.remove(&previous, &user.id);
            }
        }
        let old = self.nodes.get(&node).and_then(|users| users.get(&user.id));
        if old == Some(&user) {
            return dirty;
        }
        let renamed = old.is_some_and(|old| old.name != user.name);
        let old_rooms = old.map(|old| old.rooms.clone()).unwrap_or_default();
        for room in old_rooms.difference(&user.rooms) {
            self.leave_room(room, &node, &user.id);
            dirty.push(room.clone());
        }
        for room in &user.rooms {
            if !old_rooms.contains(room) {
                let members = self.rooms.entry(room.clone()).or_default();
                members.ids.insert(user.id.clone());
                *members.per_node.entry(node.clone()).or_default() += 1;
                dirty.push(room.clone());
            } else if renamed {
                dirty.push(room.clone());
            }
        }
        self.owner.insert(user.id.clone(), node.clone());
        if let Some(users) = self.nodes.get_mut(&node) {
            users.insert(user.id.clone(), user);
        }
        dirty
    }

    /// Removes a user; returns the rooms it was in.
    fn remove(&mut self, node: &str, id: &ConnId) -> Vec<String> {
        let Some((node, users)) = self.nodes.get_key_value(node) else {
            return Vec::new();
        };
        let node = node.clone();
        if !users.contains_key(id) {
            return Vec::new();
        }
        let user = self.nodes.get_mut(&node).and_then(|users| users.remove(id));
        self.owner.remove(id);
        let rooms: Vec<String> = user
            .map(|u| u.rooms.into_iter().collect())
            .unwrap_or_default();
        for room in &rooms {
            self.leave_room(room, &node, id);
        }
        rooms
    }

    fn leave_room(&mut self, room: &str, node: &NodeId, id: &ConnId) {
        let Some(members) = self.rooms.get_mut(room) else {
            return;
        };
        members.ids.remove(id);
        if let Entry::Occupied(mut count) = members.per_node.entry(node.clone()) {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
        if members.ids.is_empty() {
            self.rooms.remove(room);
        }
    }

    /// Replaces a node's users; returns the rooms whose user list changed.
    fn sync(&mut self, node: &str, users: Vec<User>) -> Vec<String> {
        let node_id = self.node_id(node);
        let keep: HashSet<&ConnId> = users.iter().map(|u| &u.id).collect();
        let gone: Vec<ConnId> = self.nodes[&node_id]
            .keys()
            .filter(|id| !keep.contains(id))
            .cloned()
            .collect();
        let mut dirty = Vec::new();
        for id in &gone {
            dirty.extend(self.remove(node, id));
        }
        for user in users {
            dirty.extend(self.update(node, user));
        }
        dirty
    }

    /// Forgets a node; returns the rooms its users were in.
    fn drop_node(&mut self, node: &str) -> Vec<String> {
        let ids: Vec<ConnId> = match self.nodes.get(node) {
            Some(users) => users.keys().cloned().collect(),
            None => return Vec::new(),
        };
        let mut dirty = Vec::new();
        for id in &ids {
            dirty.extend(self.remove(node, id));
        }
        self.nodes.remove(node);
        dirty
    }

    /// The nodes a message goes to and how many remote connections it is
    /// for; `None` when there are none.
    fn destinations(&self, route: &Route<'_>) -> Option<(Vec<NodeId>, usize)> {
        let found = match route {
            Route::Room { room, .. } => {
                let members = self.rooms.get(*room)?;
                (
                    members.per_node.keys().cloned().collect(),
                    members.ids.len(),
                )
            }
            Route::Direct { to } => {
                let node = self.owner.get(&ConnId::from_string(*to))?;
                (vec![node.clone()], 1)
            }
            Route::Everyone { .. } => {
                let nodes = self.nodes.iter().filter(|(_, users)| !users.is_empty());
                (
                    nodes.map(|(node, _)| node.clone()).collect(),
                    self.owner.len(),
                )
            }
            Route::Address { .. } => (self.nodes.keys().cloned().collect(), 0),
        };
        (!found.0.is_empty()).then_some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Codec, Encoding, Outgoing};

    fn user(id: &str, name: Option<&str>, rooms: &[&str]) -> User {
        User {
            id: ConnId::from_string(id),
            name: name.map(str::to_owned),
            rooms: rooms.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    fn sorted(mut rooms: Vec<String>) -> Vec<String> {
        rooms.sort();
        rooms.dedup();
        rooms
    }

    #[test]
    fn updates_report_only_changed_rooms() {
        let mut remote = RemotePresence::default();
        assert_eq!(
            sorted(remote.update("n1", user("a", None, &["x", "y"]))),
            ["x", "y"]
        );
        assert!(remote.update("n1", user("a", None, &["x", "y"])).is_empty());
        assert_eq!(
            sorted(remote.update("n1", user("a", None, &["y", "z"]))),
            ["x", "z"]
        );
        assert_eq!(
            sorted(remote.update("n1", user("a", Some("al"), &["y", "z"]))),
            ["y", "z"]
        );
        assert!(!remote.rooms.contains_key("x"));
        assert_eq!(remote.rooms["y"].per_node["n1"], 1);
        assert_eq!(
            sorted(remote.remove("n1", &ConnId::from_string("a"))),
            ["y", "z"]
        );
        assert!(remote.rooms.is_empty() && remote.owner.is_empty());
        assert!(remote.nodes["n1"].is_empty(), "the node stays known");
    }

    #[test]
    fn sync_replaces_a_node_and_drop_forgets_it() {
        let mut remote = RemotePresence::default();
        remote.update("n1", user("a", None, &["x"]));
        remote.update("n1", user("b", None, &["x"]));
        remote.update("n2", user("c", None, &["x"]));
        let dirty = remote.sync("n1", vec![user("b", None, &["x"]), user("d", None, &["w"])]);
        assert_eq!(sorted(dirty), ["w", "x"]);
        assert_eq!(remote.rooms["x"].ids.len(), 2);
        assert_eq!(remote.rooms["x"].per_node.len(), 2);
        let (nodes, count) = remote
            .destinations(&Route::Room {
                room: "x",
                except: None,
            })
            .unwrap();
        assert_eq!((nodes.len(), count), (2, 2));
        assert_eq!(sorted(remote.drop_node("n1")), ["w", "x"]);
        let (nodes, count) = remote
            .destinations(&Route::Everyone { except: None })
            .unwrap();
        assert_eq!((&*nodes[0], count), ("n2", 1));
        assert!(remote.destinations(&Route::Direct { to: "b" }).is_none());
        assert!(remote
            .destinations(&Route::Room {
                room: "w",
                except: None
            })
            .is_none());
        remote.sync("n3", Vec::new());
        let (nodes, count) = remote.destinations(&Route::Address { path: "/a" }).unwrap();
        assert_eq!(
            (nodes.len(), count),
            (2, 0),
            "address messages go to every node"
        );
    }

    #[test]
    fn a_user_moving_nodes_is_moved() {
        let mut remote = RemotePresence::default();
        remote.update("n1", user("a", None, &["x"]));
        remote.update("n2", user("a", None, &["x"]));
        assert_eq!(remote.rooms["x"].ids.len(), 1);
        assert_eq!(
            remote.rooms["x"]
                .per_node
                .keys()
                .map(|n| &**n)
                .collect::<Vec<_>>(),
            ["n2"]
        );
        assert!(remote.nodes["n1"].is_empty());
    }

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
