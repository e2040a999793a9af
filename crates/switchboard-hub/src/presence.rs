//! Room user lists (`userlist`), coalesced: changes to a room within
//! `userlist_interval` are sent as one list to its members. When clustered,
//! the lists hold the members on every node (see `cluster`), and each node
//! sends them to its own members.

use std::sync::atomic::Ordering;

use serde_json::Value;

use crate::cluster::Route;
use crate::envelope::{Outgoing, Prepared};
use crate::hub::Hub;

impl Hub {
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
                tokio::time::sleep(interval).await;
                let Some(inner) = weak.upgrade() else { return };
                Hub { inner }.flush_userlists();
            }
        });
    }

    /// Sends the current list of each changed room to its members.
    pub(crate) fn flush_userlists(&self) {
        let rooms: Vec<String> = {
            let mut dirty = self
                .inner
                .dirty_rooms
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            dirty.drain().collect()
        };
        let limit = self.inner.config.userlist_limit;
        for room in rooms {
            let local = self.registry().room_size(&room);
            if local == 0 || local + self.remote_room_size(&room) > limit {
                continue;
            }
            let list = Value::Array(self.users(Some(&room), limit));
            let mut message = Outgoing::new("userlist", &list);
            message.room = Some(&room);
            // Each node sends the list to its own members.
            let route = Route::Room {
                room: &room,
                except: None,
            };
            self.deliver_local(route, &Prepared::new(message), None);
        }
    }
}
