//! Who is connected, which rooms exist, who subscribed to which addresses.
//!
//! Lookups by id and by room are hash lookups; subscriptions are a tree
//! over address segments (`subscriptions`).

use std::collections::{BTreeMap, HashMap};

use crate::id::ConnId;
use crate::pattern::Pattern;
use crate::socket::Socket;
use crate::subscriptions::{Subscriptions, TooManyWildcards};

pub(crate) struct Registry {
    /// Ordered by id, so that `users` pages through it without a pass.
    pub conns: BTreeMap<ConnId, Socket>,
    pub rooms: HashMap<String, HashMap<ConnId, Socket>>,
    subscriptions: Subscriptions,
}

impl Registry {
    /// An empty registry; see [`HubConfig::max_wildcard_patterns`](crate::HubConfig::max_wildcard_patterns).
    pub fn new(max_wildcard_patterns: usize) -> Registry {
        Registry {
            conns: BTreeMap::new(),
            rooms: HashMap::new(),
            subscriptions: Subscriptions::new(max_wildcard_patterns),
        }
    }

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
            self.subscriptions.remove(pattern, socket.id());
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

    /// Subscribes; `Ok(false)` if the connection had this pattern already.
    pub fn subscribe(
        &mut self,
        pattern: Pattern,
        socket: &Socket,
    ) -> Result<bool, TooManyWildcards> {
        let mut state = socket.state();
        if state.patterns.iter().any(|p| p == &pattern) {
            return Ok(false);
        }
        self.subscriptions.insert(&pattern, socket)?;
        state.patterns.push(pattern);
        Ok(true)
    }

    /// Unsubscribes; returns whether the subscription existed.
    pub fn unsubscribe(&mut self, pattern: &str, socket: &Socket) -> bool {
        let removed = {
            let mut state = socket.state();
            let at = state.patterns.iter().position(|p| p.as_str() == pattern);
            at.map(|at| state.patterns.swap_remove(at))
        };
        if let Some(removed) = &removed {
            self.subscriptions.remove(removed, socket.id());
        }
        removed.is_some()
    }

    /// Every connection subscribed to a pattern matching `address`, once each.
    pub fn subscribers(&self, address: &str) -> Vec<Socket> {
        self.subscriptions.matching(address)
    }

    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }
}
