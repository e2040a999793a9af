//! The hub's history operations, the same on one node (the feeds' logs,
//! in memory) and in a cluster (Redis, through the adapter): store and
//! deliver a message, read a page, take a message back from the store.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::value::RawValue;
use switchboard_net::Cork;

use super::feed::{lock, Feed, Filling, Numbered, Sequenced};
use super::{new_epoch, Append, HistoryRule, HistoryUnavailable, Page, Stored, StoredCallback};
use crate::clustered::RawJson;
use crate::envelope::{Outgoing, Prepared};
use crate::hub::Hub;
use crate::id::ConnId;
use crate::socket::Socket;

/// What became of a message for a room with history.
pub(crate) enum Appended {
    /// Stored and delivered (one node): to this many connections.
    Now { delivered: usize, stored: Stored },
    /// Handed to the cluster, for this many connections; its callback
    /// will be told.
    Later { delivered: usize },
    /// Neither stored nor delivered; the callback was not called.
    Failed(HistoryUnavailable),
}

/// A page of a room's history, read now or later.
pub type PageFuture = Pin<Box<dyn Future<Output = Result<Page, HistoryUnavailable>> + Send>>;

/// Messages read from the store at once when a cluster feed fills a gap.
const FILL_PAGE: usize = 256;
/// How long a feed waits for the store before it reads again, and how
/// many times it tries before it delivers what it has.
const FILL_RETRY: Duration = Duration::from_millis(250);
const FILL_ATTEMPTS: u32 = 120;

impl Hub {
    /// The history rule of `room`, if it keeps history.
    pub(crate) fn history_rule(&self, room: &str) -> Option<&HistoryRule> {
        self.inner
            .config
            .history
            .iter()
            .find(|rule| rule.matches(room))
    }

    /// Numbers and stores a message for a room with history (`rule`), then
    /// delivers it. On one node that is done on return; in a cluster the
    /// callback `done` makes (given how many connections the message goes
    /// to) is told the offset when Redis has stored it, or why it was
    /// neither stored nor sent. It is made only then: a node's own sends
    /// allocate nothing for it.
    pub(crate) fn append_history(
        &self,
        room: &str,
        rule: &HistoryRule,
        except: Option<&str>,
        message: Outgoing<'_>,
        done: impl FnOnce(usize) -> StoredCallback,
        cork: Option<&mut Cork>,
    ) -> Appended {
        if let Some(cluster) = self.inner.cluster.get() {
            let head = {
                let json = Prepared::new(message).json();
                json.slice(..json.len() - 1)
            };
            let delivered = self.room_recipients(room, except);
            let append = Box::new(Append {
                room: room.to_owned(),
                except: except.map(str::to_owned),
                rule: rule.clone(),
                head,
                new_epoch: new_epoch(),
                done: done(delivered),
            });
            return match cluster.history_append(append) {
                Ok(()) => Appended::Later { delivered },
                Err(_) => Appended::Failed(HistoryUnavailable(
                    "the cluster's store is unreachable".into(),
                )),
            };
        }
        let config = &self.inner.config;
        let feeds = &self.inner.feeds;
        let feed = feeds.get_or_make(room, Feed::memory);
        let mut feed = lock(&feed);
        let offset = feed.last + 1;
        let epoch = feed.epoch.clone();
        let (delta, sent) = {
            let mut numbered = message;
            numbered.offset = Some(offset);
            numbered.epoch = Some(&epoch);
            let prepared = Prepared::new(numbered);
            let log = feed.log.get_or_insert_with(Default::default);
            let delta = log.push(offset, prepared.json(), Instant::now(), rule.size, rule.ttl);
            let metrics = &self.inner.metrics;
            let limit = config.history_unacked;
            let sent = feed.deliver(offset, &prepared, except, limit, metrics, cork);
            (delta, sent)
        };
        let over = feeds.wrote(&mut feed, room, delta, config.history_memory);
        drop(feed);
        if over {
            feeds.evict(config.history_memory, room);
        }
        Appended::Now {
            delivered: sent,
            stored: Stored { offset, epoch },
        }
    }

    /// Takes a connection out of a room's feed (it left the room, or closed).
    pub(crate) fn leave_feed(&self, socket: &Socket, room: &str) {
        if self.history_rule(room).is_none() {
            return;
        }
        if let Some(feed) = self.inner.feeds.get(room) {
            lock(&feed).members.remove(socket.id());
        }
        if self.is_clustered() {
            self.inner.feeds.drop_if_unused(room);
        }
    }

    /// The members of a room on every node, but `except`.
    pub(crate) fn room_recipients(&self, room: &str, except: Option<&str>) -> usize {
        let registry = self.registry();
        let members = registry.rooms.get(room);
        let sender = except.is_some_and(|id| {
            members.is_some_and(|members| members.contains_key(&ConnId::from_string(id)))
        });
        registry.room_size(room) + self.remote_room_size(room) - usize::from(sender)
    }

    /// Up to `limit` messages of `room` after `after`, with the room's
    /// epoch and bounds.
    pub(crate) fn read_history(&self, room: &str, after: u64, limit: usize) -> PageFuture {
        let Some(rule) = self.history_rule(room).cloned() else {
            return Box::pin(std::future::ready(Ok(Page::default())));
        };
        match self.inner.cluster.get() {
            Some(cluster) => cluster.history_read(room, &rule, after, limit),
            None => {
                let page = self
                    .read_history_now(room, after, limit)
                    .unwrap_or_default();
                Box::pin(std::future::ready(Ok(page)))
            }
        }
    }

    /// [`Hub::read_history`] on a node without a cluster, where the store
    /// is at hand; `None` in a cluster (or for a room without history).
    pub(crate) fn read_history_now(&self, room: &str, after: u64, limit: usize) -> Option<Page> {
        if self.is_clustered() {
            return None;
        }
        let ttl = self.history_rule(room)?.ttl;
        let feed = self.inner.feeds.get_or_make(room, Feed::memory);
        let mut feed = lock(&feed);
        let feed = &mut *feed;
        let log = feed.log.get_or_insert_with(Default::default);
        log.expire(Instant::now(), ttl);
        Some(Page {
            epoch: feed.epoch.clone(),
            latest: feed.last,
            oldest: log.oldest(),
            messages: log.after(after, limit),
        })
    }

    /// Delivers a room's message that the cluster's store sent to this
    /// node (every node, the publisher's included, delivers a room with
    /// history this way), in offset order: a message after a gap waits
    /// until the gap is read from the store.
    pub fn deliver_history(
        &self,
        room: &str,
        epoch: &str,
        offset: u64,
        except: Option<&str>,
        json: Bytes,
    ) {
        let Some(feed) = self.inner.feeds.get(room) else {
            return; // no local member
        };
        let message = Numbered {
            offset,
            json,
            except: except.map(str::to_owned),
        };
        let gap = {
            let mut feed = lock(&feed);
            match feed.sequence(epoch, message) {
                Sequenced::Next(message) => {
                    self.deliver_numbered(&mut feed, &message);
                    false
                }
                Sequenced::Old | Sequenced::Wait => false,
                Sequenced::Gap => true,
            }
        };
        if gap {
            tokio::spawn(fill(self.clone(), room.to_owned()));
        }
    }

    /// Reads again, for every room with local members, what the store has
    /// after the last message delivered here: after this node's link to
    /// the store was down, what it missed meanwhile.
    pub fn resync_history(&self) {
        for room in self.inner.feeds.rooms() {
            let Some(feed) = self.inner.feeds.get(&room) else {
                continue;
            };
            let start = {
                let mut feed = lock(&feed);
                // A feed that has seen nothing has nothing to resume from.
                let idle = feed.filling.is_none() && feed.log.is_none() && !feed.epoch.is_empty();
                if idle {
                    feed.filling = Some(Filling::default());
                }
                idle
            };
            if start {
                tokio::spawn(fill(self.clone(), room));
            }
        }
    }

    /// Delivers a message read from the store to a feed's members.
    pub(crate) fn deliver_numbered(&self, feed: &mut Feed, message: &Numbered) {
        let Ok(raw) = serde_json::from_slice::<&RawValue>(&message.json) else {
            tracing::warn!(offset = message.offset, "a stored message that is not JSON");
            feed.last = feed.last.max(message.offset);
            return;
        };
        let prepared = Prepared::new(RawJson(raw));
        let limit = self.inner.config.history_unacked;
        let metrics = &self.inner.metrics;
        let except = message.except.as_deref();
        feed.deliver(message.offset, &prepared, except, limit, metrics, None);
    }
}

/// Fills a cluster feed's gap: reads from the store what follows its last
/// message until the store has no more, then delivers what came meanwhile.
/// A message the store no longer has (trimmed) is skipped.
async fn fill(hub: Hub, room: String) {
    let mut failures = 0;
    loop {
        let Some(feed) = hub.inner.feeds.get(&room) else {
            return;
        };
        let after = lock(&feed).last;
        let page = match hub.read_history(&room, after, FILL_PAGE).await {
            Ok(page) => page,
            Err(error) => {
                failures += 1;
                if failures < FILL_ATTEMPTS {
                    tokio::time::sleep(FILL_RETRY).await;
                    continue;
                }
                tracing::warn!(%room, %error, "could not fill a gap in the room's messages");
                Page::default()
            }
        };
        let mut feed = lock(&feed);
        if !page.epoch.is_empty() && page.epoch != feed.epoch {
            // The store lost the room's history: read the new one from its start.
            let known = !feed.epoch.is_empty();
            feed.adopt_epoch(&page.epoch, 0);
            if known && after > 0 {
                continue;
            }
        }
        let end = page.messages.len() < FILL_PAGE;
        for (offset, json) in page.messages {
            if offset > feed.last {
                let message = Numbered {
                    offset,
                    json,
                    except: None,
                };
                hub.deliver_numbered(&mut feed, &message);
            }
        }
        if end {
            let filling = feed.filling.take().unwrap_or_default();
            if filling.overflowed {
                // What it could not keep is in the store: read on.
                feed.filling = Some(Filling::default());
                continue;
            }
            for message in filling.queued {
                if message.offset > feed.last {
                    hub.deliver_numbered(&mut feed, &message);
                }
            }
            return;
        }
    }
}
