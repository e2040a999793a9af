//! The other nodes' connections as this hub knows them, indexed for user
//! lists and routing (see [`crate::cluster`]).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::cluster::{NodeId, Route, User};
use crate::id::ConnId;

/// The connections of the other nodes, indexed for user lists and routing.
#[derive(Default)]
pub(crate) struct RemotePresence {
    pub nodes: HashMap<NodeId, HashMap<ConnId, User>>,
    pub owner: HashMap<ConnId, NodeId>,
    pub rooms: HashMap<String, RoomMembers>,
}

#[derive(Default)]
pub(crate) struct RoomMembers {
    pub ids: HashSet<ConnId>,
    /// Members per node, for routing.
    pub per_node: HashMap<NodeId, usize>,
}

impl RemotePresence {
    pub(crate) fn node_id(&mut self, node: &str) -> NodeId {
        match self.nodes.get_key_value(node) {
            Some((id, _)) => id.clone(),
            None => {
                let id: NodeId = Arc::from(node);
                self.nodes.insert(id.clone(), HashMap::new());
                id
            }
        }
    }

    pub(crate) fn user(&self, id: &ConnId) -> Option<&User> {
        let node = self.owner.get(id)?;
        self.nodes.get(node)?.get(id)
    }

    /// Sets a user's state; returns the rooms whose user list changed.
    pub(crate) fn update(&mut self, node: &str, user: User) -> Vec<String> {
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
    pub(crate) fn remove(&mut self, node: &str, id: &ConnId) -> Vec<String> {
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
    pub(crate) fn sync(&mut self, node: &str, users: Vec<User>) -> Vec<String> {
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
    pub(crate) fn drop_node(&mut self, node: &str) -> Vec<String> {
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
    pub(crate) fn destinations(&self, route: &Route<'_>) -> Option<(Vec<NodeId>, usize)> {
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
}
