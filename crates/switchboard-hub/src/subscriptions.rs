//! Who subscribed to which address patterns, as a tree over segments.
//!
//! A pattern is a path from the root, one node per segment: literal
//! segments are children found by hash, wildcard segments (`*`, `sensor?`)
//! children that are tried one by one, shared by every pattern that spells
//! the segment the same way. A publish walks the tree along its address:
//! a node sits at one depth, so it is visited at most once per publish, and
//! the work grows with the patterns that could match, not with every
//! pattern subscribed. Removing a subscription walks its own path only.

use std::collections::HashMap;

use crate::glob::{byte_set, ByteSet, Glob};
use crate::id::ConnId;
use crate::pattern::{self, Pattern};
use crate::socket::Socket;

#[derive(Default)]
pub(crate) struct Subscriptions {
    root: Node,
    count: usize,
}

#[derive(Default)]
struct Node {
    literal: HashMap<Box<str>, Node>,
    wildcard: HashMap<Box<str>, (Glob, Node)>,
    /// Subscribers whose pattern ends at this node.
    here: HashMap<ConnId, Socket>,
    /// Subscribers whose pattern ends at this node with `**`: everything
    /// from here down matches.
    below: HashMap<ConnId, Socket>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.literal.is_empty()
            && self.wildcard.is_empty()
            && self.here.is_empty()
            && self.below.is_empty()
    }
}

impl Subscriptions {
    /// Adds a subscription (the caller makes sure it is new).
    pub fn insert(&mut self, pattern: &Pattern, socket: &Socket) {
        let mut node = &mut self.root;
        for (text, glob) in pattern.segments() {
            node = if glob.is_literal() {
                node.literal.entry(text.into()).or_default()
            } else {
                &mut node
                    .wildcard
                    .entry(text.into())
                    .or_insert_with(|| (glob.clone(), Node::default()))
                    .1
            };
        }
        let ends = if pattern.is_deep() {
            &mut node.below
        } else {
            &mut node.here
        };
        if ends.insert(socket.id().clone(), socket.clone()).is_none() {
            self.count += 1;
        }
    }

    /// Removes a subscription, and the nodes it leaves empty.
    pub fn remove(&mut self, pattern: &Pattern, id: &ConnId) {
        let segments: Vec<(&str, &Glob)> = pattern.segments().collect();
        if remove_below(&mut self.root, &segments, pattern.is_deep(), id) {
            self.count -= 1;
        }
    }

    /// Every connection with a pattern matching `address`, once each.
    pub fn matching(&self, address: &str) -> Vec<Socket> {
        let segments: Vec<(&str, ByteSet)> = pattern::split(address)
            .map(|segment| (segment, byte_set(segment.as_bytes())))
            .collect();
        let mut found = HashMap::new();
        collect(&self.root, &segments, &mut found);
        found.into_values().collect()
    }

    /// How many subscriptions there are.
    pub fn len(&self) -> usize {
        self.count
    }
}

/// Removes `id` at the end of `segments` under `node`; returns whether it
/// was there. Children left empty are dropped on the way back up.
fn remove_below(node: &mut Node, segments: &[(&str, &Glob)], deep: bool, id: &ConnId) -> bool {
    let Some(((text, glob), rest)) = segments.split_first() else {
        let ends = if deep {
            &mut node.below
        } else {
            &mut node.here
        };
        return ends.remove(id).is_some();
    };
    if glob.is_literal() {
        let Some(child) = node.literal.get_mut(*text) else {
            return false;
        };
        let removed = remove_below(child, rest, deep, id);
        if child.is_empty() {
            node.literal.remove(*text);
        }
        removed
    } else {
        let Some((_, child)) = node.wildcard.get_mut(*text) else {
            return false;
        };
        let removed = remove_below(child, rest, deep, id);
        if child.is_empty() {
            node.wildcard.remove(*text);
        }
        removed
    }
}

fn collect(node: &Node, segments: &[(&str, ByteSet)], found: &mut HashMap<ConnId, Socket>) {
    extend(found, &node.below);
    let Some(((segment, has), rest)) = segments.split_first() else {
        extend(found, &node.here);
        return;
    };
    if let Some(child) = node.literal.get(*segment) {
        collect(child, rest, found);
    }
    for (glob, child) in node.wildcard.values() {
        if glob.matches_with(segment.as_bytes(), *has) {
            collect(child, rest, found);
        }
    }
}

fn extend(found: &mut HashMap<ConnId, Socket>, sockets: &HashMap<ConnId, Socket>) {
    for (id, socket) in sockets {
        found.entry(id.clone()).or_insert_with(|| socket.clone());
    }
}
