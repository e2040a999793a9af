//! Clustering over Redis: many `switchboard serve` nodes act as one
//! (docs/CLUSTERING.md).
//!
//! - `settings`: [`ClusterSettings`] and [`Channels`];
//! - `wire`: key and channel names, the message envelope, presence events;
//! - `redis`: this node's link to Redis, the adapter the hub calls, and the
//!   writer task;
//! - `sync`: the subscriber and heartbeat tasks, and the ordering of what
//!   other nodes tell;
//! - this module: the [`Cluster`] handle `serve` keeps (health, metrics,
//!   leaving).

mod history;
mod redis;
mod settings;
mod sync;
mod wire;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{json, Value};
use switchboard_hub::Hub;
use tokio::task::JoinHandle;

use self::redis::{Counters, RedisAdapter, RedisLink};
use self::sync::Peers;
use self::wire::Keys;

pub use self::settings::{Channels, ClusterSettings};

/// The cluster link of a running server.
pub struct Cluster {
    link: Arc<RedisLink>,
    tasks: Vec<JoinHandle<()>>,
}

impl Cluster {
    /// Joins the cluster: gives the hub its adapter and starts the tasks.
    /// Redis need not be up: the link comes up when it is (see `is_up`).
    pub fn start(hub: &Hub, settings: ClusterSettings) -> anyhow::Result<Cluster> {
        let client = ::redis::Client::open(settings.url.as_str())
            .with_context(|| format!("invalid --redis URL {}", redact(&settings.url)))?;
        let node = switchboard_hub::ConnId::random().to_string();
        let keys = Keys::new(&settings.prefix, &node);
        let (link, queue) = RedisLink::new(keys, settings, client);
        let adapter = RedisAdapter { link: link.clone() };
        anyhow::ensure!(
            hub.set_cluster(Arc::new(adapter)),
            "the hub is in a cluster already"
        );
        eprintln!(
            "switchboard: cluster node {node} (redis {}, prefix {})",
            redact(&link.settings().url),
            link.settings().prefix
        );
        let peers = Arc::new(Peers::new(link.clone()));
        let tasks = vec![
            tokio::spawn(redis::write_loop(link.clone(), queue)),
            tokio::spawn(sync::subscribe_loop(peers.clone(), hub.clone())),
            tokio::spawn(sync::heartbeat_loop(peers, hub.clone())),
        ];
        Ok(Cluster { link, tasks })
    }

    /// Waits up to `timeout` for the link to come up; returns whether it did.
    pub async fn wait_up(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_up() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// This node's id (random for each process).
    pub fn node(&self) -> &str {
        self.link.keys().node()
    }

    /// Whether cross-node delivery works right now.
    pub fn is_up(&self) -> bool {
        self.link.is_up()
    }

    /// The fields `/healthz` adds: `cluster` is `ok` or `degraded`.
    pub fn health(&self, hub: &Hub) -> Value {
        json!({
            "cluster": if self.is_up() { "ok" } else { "degraded" },
            "node": self.node(),
            "nodes": hub.remote_stats().nodes + 1,
        })
    }

    /// Appends the cluster's gauges and counters to a Prometheus exposition.
    pub fn render_metrics(&self, hub: &Hub, out: &mut String) {
        let remote = hub.remote_stats();
        let gauges = [
            (
                "switchboard_cluster_up",
                "1 while cross-node delivery works (Redis reachable, subscribed), else 0",
                u64::from(self.is_up()),
            ),
            (
                "switchboard_cluster_nodes",
                "Nodes in the cluster, this one included",
                remote.nodes as u64 + 1,
            ),
            (
                "switchboard_cluster_remote_connections",
                "Connections on the other nodes",
                remote.users as u64,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let counters = self.link.counters();
        let counters = [
            (
                "switchboard_cluster_messages_published_total",
                "Messages written to Redis for other nodes",
                &counters.published,
            ),
            (
                "switchboard_cluster_messages_received_total",
                "Messages from other nodes delivered here",
                &counters.received,
            ),
            (
                "switchboard_cluster_messages_failed_total",
                "Messages for other nodes lost (Redis unreachable, queue full, write failed)",
                &counters.failed,
            ),
            (
                "switchboard_cluster_presence_received_total",
                "Presence events applied from other nodes",
                &counters.presence_received,
            ),
            (
                "switchboard_cluster_connects_total",
                "Times the Redis pub/sub connection was established",
                &counters.connects,
            ),
        ];
        for (name, help, counter) in counters {
            let value = Counters::get(counter);
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
    }

    /// Leaves the cluster: what is queued is sent, the other nodes are told
    /// (they drop this node's users at once), and this node's keys removed.
    pub async fn leave(&self) {
        self.link.leave(Duration::from_secs(2)).await;
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redact("redis://:secret@host:6379/0"),
            "redis://…@host:6379/0"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
