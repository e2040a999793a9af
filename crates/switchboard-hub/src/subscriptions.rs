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

use crate::glob::{byte_set, ByteSet, Glob, PreparedGlob};
use crate::id::ConnId;
use crate::pattern::{self, Pattern};
use crate::socket::Socket;

pub(crate) struct Subscriptions {
    root: Node,
    count: usize,
    /// Wildcard nodes in the tree, and how many there may be: each is one
    /// search per publish that reaches its depth.
    wildcard_nodes: usize,
    max_wildcard_nodes: usize,
}

/// A subscription that would take the tree past its wildcard segments.
#[derive(Debug)]
pub(crate) struct TooManyWildcards(pub usize);

#[derive(Default)]
struct Node {
    literal: HashMap<Box<str>, Node>,
    wildcard: HashMap<Box<str>, (PreparedGlob, Node)>,
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
    pub fn new(max_wildcard_nodes: usize) -> Subscriptions {
        Subscriptions {
            root: Node::default(),
            count: 0,
            wildcard_nodes: 0,
            max_wildcard_nodes,
        }
    }

    /// Adds a subscription (the caller makes sure it is new); refused if it
    /// needs wildcard segments the tree has no room for (segments spelled
    /// like an existing pattern's are shared and cost nothing).
    pub fn insert(&mut self, pattern: &Pattern, socket: &Socket) -> Result<(), TooManyWildcards> {
        let new = self.new_wildcard_nodes(pattern);
        if new > 0 && self.wildcard_nodes + new > self.max_wildcard_nodes {
            return Err(TooManyWildcards(self.max_wildcard_nodes));
        }
        self.wildcard_nodes += new;
        let mut node = &mut self.root;
        for (text, glob) in pattern.segments() {
            node = if glob.is_literal() {
                node.literal.entry(text.into()).or_default()
            } else {
                &mut node
                    .wildcard
                    .entry(text.into())
                    .or_insert_with(|| (glob.prepared(), Node::default()))
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
        Ok(())
    }

    /// The wildcard nodes `pattern` would add to the tree.
    fn new_wildcard_nodes(&self, pattern: &Pattern) -> usize {
        let mut node = Some(&self.root);
        let mut new = 0;
        for (text, glob) in pattern.segments() {
            let literal = glob.is_literal();
            node = node.and_then(|n| {
                if literal {
                    n.literal.get(text)
                } else {
                    n.wildcard.get(text).map(|(_, child)| child)
                }
            });
            if node.is_none() && !literal {
                new += 1;
            }
        }
        new
    }

    /// Removes a subscription, and the nodes it leaves empty.
    pub fn remove(&mut self, pattern: &Pattern, id: &ConnId) {
        let segments: Vec<(&str, &Glob)> = pattern.segments().collect();
        let mut pruned = 0;
        if remove_below(
            &mut self.root,
            &segments,
            pattern.is_deep(),
            id,
            &mut pruned,
        ) {
            self.count -= 1;
        }
        self.wildcard_nodes -= pruned;
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
/// was there. Children left empty are dropped on the way back up, and the
/// wildcard ones counted in `pruned`.
fn remove_below(
    node: &mut Node,
    segments: &[(&str, &Glob)],
    deep: bool,
    id: &ConnId,
    pruned: &mut usize,
) -> bool {
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
        let removed = remove_below(child, rest, deep, id, pruned);
        if child.is_empty() {
            node.literal.remove(*text);
        }
        removed
    } else {
        let Some((_, child)) = node.wildcard.get_mut(*text) else {
            return false;
        };
        let removed = remove_below(child, rest, deep, id, pruned);
        if child.is_empty() {
            node.wildcard.remove(*text);
            *pruned += 1;
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
