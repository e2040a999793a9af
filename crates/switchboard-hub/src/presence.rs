//! Who is there: the `users` answer, paged, and room user lists
//! (`userlist`), coalesced: changes to a room within `userlist_interval` are
//! sent as one list to its members. When clustered, the lists hold the
//! members on every node (see `cluster`), and each node sends them to its
//! own members.
//!
//! With `global_userlist`, the hub's own list (every connection) is one
//! more such list, kept among the changed rooms under a key no room can
//! have ([`HUB_LIST`]) and sent to every connection, under the same
//! interval, rate and size limit.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::Route;
use crate::envelope::{Outgoing, Prepared};
use crate::hub::Hub;
use crate::id::ConnId;
use crate::socket::Socket;

/// The key of the hub's own list among the changed rooms: room names have
/// no control characters, so no room has it.
const HUB_LIST: &str = "\u{0}hub";

impl Hub {
    /// The members of a room (or every connection) as `{id, name}` entries,
    /// on every node of the cluster, sorted by id, at most `limit`.
    pub fn users(&self, room: Option<&str>, limit: usize) -> Vec<Value> {
        self.users_after(room, None, limit)
    }

    /// Like [`Hub::users`], from the first id after `after`: the next page.
    ///
    /// Every connection's page costs its own length (the registry is
    /// ordered by id); a room's, one pass over the room without copying
    /// it. Only the page's entries are built.
    pub fn users_after(&self, room: Option<&str>, after: Option<&str>, limit: usize) -> Vec<Value> {
        let mut users: Vec<Value> = {
            let registry = self.registry();
            let sockets: Vec<&Socket> = match room {
                Some(room) => registry
                    .members(room)
                    .filter(|s| is_after(s.id().as_str(), after))
                    .collect(),
                // Every connection: a page of the ordered map, not a pass.
                None => {
                    let after = after.map(ConnId::from_string);
                    let from = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
                    let page = registry.conns.range((from, Bound::Unbounded));
                    page.take(limit).map(|(_, socket)| socket).collect()
                }
            };
            let sockets = first_by_id(sockets, limit, |s| s.id().as_str());
            sockets.into_iter().map(Socket::user_entry).collect()
        };
        self.extend_remote_entries(room, after, limit, &mut users);
        users.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        users.truncate(limit);
        users
    }

    /// Notes that a room's members (or their names) changed.
    pub(crate) fn mark_dirty(&self, room: &str) {
        self.inner
            .dirty_rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(room.to_owned());
        self.ensure_presence_task();
        self.inner.presence_wake.notify_one();
    }

    /// Notes that the hub's connections (or their names) changed, when
    /// every connection gets the list of all (`global_userlist`).
    pub(crate) fn mark_hub_dirty(&self) {
        if self.inner.config.global_userlist {
            self.mark_dirty(HUB_LIST);
        }
    }

    fn ensure_presence_task(&self) {
        if self.inner.presence_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner.presence_started.store(false, Ordering::Release);
            return;
        };
        // The task holds a weak handle so that dropping every `Hub` ends it.
        let weak = std::sync::Arc::downgrade(&self.inner);
        let wake = self.inner.presence_wake.clone();
        let interval = self.inner.config.userlist_interval;
        runtime.spawn(async move {
            loop {
                wake.notified().await;
                loop {
                    tokio::time::sleep(interval).await;
                    let Some(inner) = weak.upgrade() else { return };
                    let Some(next) = (Hub { inner }).flush_userlists() else {
                        break;
                    };
                    // Rooms held back by their rate go out when their hold
                    // ends; other rooms' changes meanwhile go as usual.
                    tokio::select! {
                        () = tokio::time::sleep_until(next.into()) => {}
                        () = wake.notified() => {}
                    }
                }
            }
        });
    }

    /// Sends the current list of each changed room to its members, but for
    /// rooms still held by `userlist_rate`; returns when the first of those
    /// may go.
    pub(crate) fn flush_userlists(&self) -> Option<Instant> {
        let now = Instant::now();
        let (rooms, next) = self.take_due_rooms(now);
        let limit = self.inner.config.userlist_limit;
        let rate = self.inner.config.userlist_rate as f64;
        for room in rooms {
            let hub_list = room == HUB_LIST;
            let (local, remote) = if hub_list {
                (self.connection_count(), self.remote_stats().users)
            } else {
                (
                    self.registry().room_size(&room),
                    self.remote_room_size(&room),
                )
            };
            if local == 0 || local + remote > limit {
                continue;
            }
            let list = Value::Array(self.users((!hub_list).then_some(&room), limit));
            let mut message = Outgoing::new("userlist", &list);
            // Each node sends the list to its own members (or connections).
            let route = if hub_list {
                Route::Everyone { except: None }
            } else {
                message.room = Some(&room);
                Route::Room {
                    room: &room,
                    except: None,
                }
            };
            let prepared = Prepared::new(message);
            let delivered = self.deliver_local(route, &prepared, None);
            let cost = (prepared.json().len() * delivered) as f64;
            let hold = Duration::from_secs_f64(cost / rate);
            if hold > self.inner.config.userlist_interval {
                self.userlist_holds().insert(room, now + hold);
            }
        }
        next
    }

    /// Takes the changed rooms that may be sent now; the others stay
    /// changed, and the earliest time one of them may go is returned.
    fn take_due_rooms(&self, now: Instant) -> (Vec<String>, Option<Instant>) {
        let mut holds = self.userlist_holds();
        holds.retain(|_, until| *until > now);
        let mut dirty = self
            .inner
            .dirty_rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut next: Option<Instant> = None;
        let mut due = Vec::with_capacity(dirty.len());
        dirty.retain(|room| match holds.get(room) {
            Some(&until) => {
                next = Some(next.map_or(until, |next| next.min(until)));
                true
            }
            None => {
                due.push(room.clone());
                false
            }
        });
        (due, next)
    }

    fn userlist_holds(&self) -> MutexGuard<'_, HashMap<String, Instant>> {
        self.inner
            .userlist_holds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether `id` comes after the page boundary (every id does without one).
pub(crate) fn is_after(id: &str, after: Option<&str>) -> bool {
    after.is_none_or(|after| id > after)
}

/// The `limit` items with the smallest ids, in no particular order: a
/// selection in linear time rather than a sort of everything.
pub(crate) fn first_by_id<T>(mut items: Vec<T>, limit: usize, id: impl Fn(&T) -> &str) -> Vec<T> {
    if items.len() > limit {
        if limit == 0 {
            return Vec::new();
        }
        items.select_nth_unstable_by(limit - 1, |a, b| id(a).cmp(id(b)));
        items.truncate(limit);
    }
    items
}
