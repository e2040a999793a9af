//! Who is connected, which rooms exist, who subscribed to which addresses.
//!
//! Lookups by id, by room and by exact address are hash lookups; only
//! wildcard subscriptions are scanned.

use std::collections::HashMap;

use crate::id::ConnId;
use crate::pattern::Pattern;
use crate::socket::Socket;

#[derive(Default)]
pub(crate) struct Registry {
    pub conns: HashMap<ConnId, Socket>,
    pub rooms: HashMap<String, HashMap<ConnId, Socket>>,
    exact: HashMap<String, HashMap<ConnId, Socket>>,
    wild: Vec<(Pattern, Socket)>,
}

impl Registry {
    pub fn insert(&mut self, socket: Socket) {
        self.conns.insert(socket.id().clone(), socket);
    }

    /// Removes a connection from everything; returns the rooms it was in.
    pub fn remove(&mut self, socket: &Socket) -> Vec<String> {
        self.conns.remove(socket.id());
        let (rooms, patterns) = {
            let mut state = socket.state();
            (
                std::mem::take(&mut state.rooms),
                std::mem::take(&mut state.patterns),
            )
        };
        for room in &rooms {
            self.leave_room(room, socket.id());
        }
        for pattern in &patterns {
            self.remove_subscription(pattern.as_str(), socket.id());
        }
        rooms.into_iter().collect()
    }

    /// Adds a member; returns the room's size, or `None` if it was a member already.
    pub fn join(&mut self, room: &str, socket: &Socket) -> Option<usize> {
        let members = self.rooms.entry(room.to_owned()).or_default();
        if members
            .insert(socket.id().clone(), socket.clone())
            .is_some()
        {
            return None;
        }
        socket.state().rooms.insert(room.to_owned());
        Some(members.len())
    }

    /// Removes a member; returns whether it was one.
    pub fn leave(&mut self, room: &str, socket: &Socket) -> bool {
        let was = socket.state().rooms.remove(room);
        self.leave_room(room, socket.id());
        was
    }

    fn leave_room(&mut self, room: &str, id: &ConnId) {
        if let Some(members) = self.rooms.get_mut(room) {
            members.remove(id);
            if members.is_empty() {
                self.rooms.remove(room);
            }
        }
    }

    pub fn members(&self, room: &str) -> impl Iterator<Item = &Socket> {
        self.rooms
            .get(room)
            .into_iter()
            .flat_map(|members| members.values())
    }

    pub fn room_size(&self, room: &str) -> usize {
        self.rooms.get(room).map_or(0, HashMap::len)
    }

    /// Subscribes; returns false if the connection had this pattern already.
    pub fn subscribe(&mut self, pattern: Pattern, socket: &Socket) -> bool {
        {
            let mut state = socket.state();
            if state.patterns.iter().any(|p| p == &pattern) {
                return false;
            }
            state.patterns.push(pattern.clone());
        }
        if pattern.is_exact() {
            self.exact
                .entry(pattern.as_str().to_owned())
                .or_default()
                .insert(socket.id().clone(), socket.clone());
        } else {
            self.wild.push((pattern, socket.clone()));
        }
        true
    }

    /// Unsubscribes; returns whether the subscription existed.
    pub fn unsubscribe(&mut self, pattern: &str, socket: &Socket) -> bool {
        let existed = {
            let mut state = socket.state();
            let before = state.patterns.len();
            state.patterns.retain(|p| p.as_str() != pattern);
            state.patterns.len() != before
        };
        self.remove_subscription(pattern, socket.id());
        existed
    }

    fn remove_subscription(&mut self, pattern: &str, id: &ConnId) {
        if let Some(subscribers) = self.exact.get_mut(pattern) {
            subscribers.remove(id);
            if subscribers.is_empty() {
                self.exact.remove(pattern);
            }
        }
        self.wild
            .retain(|(p, socket)| !(p.as_str() == pattern && socket.id() == id));
    }

    /// Every connection subscribed to a pattern matching `address`, once each.
    pub fn subscribers(&self, address: &str) -> Vec<Socket> {
        let mut seen: HashMap<&ConnId, &Socket> = HashMap::new();
        if let Some(exact) = self.exact.get(address) {
            seen.extend(exact.iter());
        }
        for (pattern, socket) in &self.wild {
            if pattern.matches(address) {
                seen.insert(socket.id(), socket);
            }
        }
        seen.into_values().cloned().collect()
    }

    pub fn subscription_count(&self) -> usize {
        self.exact.values().map(HashMap::len).sum::<usize>() + self.wild.len()
    }
}
