//! Fan-out across the nodes of a cluster: one publisher on one node, room
//! members spread over several; deliveries per second and latency.
//!
//! ```sh
//! cargo run --release --example cluster_fanout -- \
//!     --publish ws://127.0.0.1:9080/ws \
//!     --subscribe ws://127.0.0.1:9080/ws,ws://127.0.0.1:9081/ws \
//!     --subscribers 100 --messages 20000
//! ```
//!
//! Subscribers connect round-robin over `--subscribe` and join the room.
//! The publisher (not a member) sends probes until every subscriber has
//! seen one, so that every node knows every member; then it sends
//! `--messages` events, keeping at most `--window` of them not yet
//! delivered to every subscriber (closed loop: the cluster's pace). Each
//! event's data carries its send time; subscribers read it back for the
//! latency. Prints one JSON line. `scripts/bench_cluster` runs this.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::json;
use switchboard_net::{connect, Message, Reader, Writer};
use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Parser, Debug)]
struct Args {
    /// The node the publisher connects to.
    #[arg(long)]
    publish: String,
    /// Nodes the subscribers are spread over, comma-separated.
    #[arg(long, value_delimiter = ',')]
    subscribe: Vec<String>,
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Messages published but not yet delivered to every subscriber.
    #[arg(long, default_value_t = 32)]
    window: u64,
    /// Bytes of padding in each event's data.
    #[arg(long, default_value_t = 64)]
    size: usize,
    #[arg(long, default_value = "bench")]
    room: String,
}

/// The run's delivery accounting, kept by every task together (one
/// thread: `Rc` and `Cell`).
struct Deliveries {
    epoch: Instant,
    /// Subscribers that have seen a probe.
    probed: Cell<usize>,
    delivered: Cell<u64>,
    /// Deliveries per subscribe URL.
    per_node: RefCell<Vec<u64>>,
    latency: RefCell<Histogram<u64>>,
    last_delivery: Cell<Duration>,
    progress: Notify,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        !args.subscribe.is_empty(),
        "--subscribe needs at least one URL"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let report = local.block_on(&runtime, run(args))?;
    println!("{report}");
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<serde_json::Value> {
    let deliveries = Rc::new(Deliveries {
        epoch: Instant::now(),
        probed: Cell::new(0),
        delivered: Cell::new(0),
        per_node: RefCell::new(vec![0; args.subscribe.len()]),
        latency: RefCell::new(Histogram::new_with_bounds(1, 60_000_000_000, 3)?),
        last_delivery: Cell::new(Duration::ZERO),
        progress: Notify::new(),
    });
    for i in 0..args.subscribers {
        let node = i % args.subscribe.len();
        let (socket, _) = connect(&args.subscribe[node]).await?;
        let (mut reader, writer) = socket.split();
        let join = json!({"event": "join", "room": args.room, "ack": 1}).to_string();
        writer.send(Message::text(join)).await?;
        wait_for_ack(&mut reader).await?;
        tokio::task::spawn_local(subscriber(reader, writer, node, deliveries.clone()));
    }
    let (socket, _) = connect(&args.publish).await?;
    let (mut reader, writer) = socket.split();
    tokio::task::spawn_local(async move { while let Some(Ok(_)) = reader.recv().await {} });

    // Probes until every member is known on the publisher's node.
    let probe = json!({"event": "b", "room": args.room, "data": {"probe": true}}).to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while deliveries.probed.get() < args.subscribers {
        anyhow::ensure!(Instant::now() < deadline, "subscribers never saw a probe");
        writer.send(Message::text(probe.clone())).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // late probes
    deliveries.delivered.set(0);
    deliveries.per_node.borrow_mut().fill(0);

    let subscribers = args.subscribers as u64;
    let padding = "x".repeat(args.size);
    let started = deliveries.epoch.elapsed();
    for seq in 0..args.messages {
        if seq.saturating_sub(deliveries.delivered.get() / subscribers) >= args.window {
            writer.flush().await?;
            while seq.saturating_sub(deliveries.delivered.get() / subscribers) >= args.window {
                deliveries.progress.notified().await;
            }
        }
        let now = deliveries.epoch.elapsed().as_nanos() as u64;
        let event = format!(
            r#"{{"event":"b","room":"{}","data":{{"s":{seq},"t":{now},"p":"{padding}"}}}}"#,
            args.room
        );
        writer.feed(Message::text(event)).await?;
    }
    writer.flush().await?;
    let expected = args.messages * subscribers;
    let drain = Instant::now() + Duration::from_secs(30);
    while deliveries.delivered.get() < expected && Instant::now() < drain {
        let _ =
            tokio::time::timeout(Duration::from_millis(100), deliveries.progress.notified()).await;
    }
    let elapsed = (deliveries.last_delivery.get().saturating_sub(started)).as_secs_f64();
    let delivered = deliveries.delivered.get();
    let latency = deliveries.latency.borrow();
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1e6;
    Ok(json!({
        "subscribers": args.subscribers,
        "nodes": args.subscribe.len(),
        "messages": args.messages,
        "delivered": delivered,
        "expected": expected,
        "seconds": elapsed,
        "deliveries_per_s": (delivered as f64 / elapsed).round(),
        "messages_per_s": (delivered as f64 / subscribers as f64 / elapsed).round(),
        "per_node": *deliveries.per_node.borrow(),
        "latency_ms": {"p50": ms(0.5), "p99": ms(0.99), "max": latency.max() as f64 / 1e6},
    }))
}

async fn wait_for_ack(reader: &mut Reader) -> anyhow::Result<()> {
    while let Some(message) = reader.recv().await {
        if let Message::Text(text) = message? {
            if text.as_str().starts_with(r#"{"event":"ack""#) {
                return Ok(());
            }
        }
    }
    anyhow::bail!("closed before the join was acknowledged")
}

/// Counts deliveries; reads the send time without parsing the whole JSON.
async fn subscriber(mut reader: Reader, _writer: Writer, node: usize, deliveries: Rc<Deliveries>) {
    let mut probed = false;
    while let Some(Ok(message)) = reader.recv().await {
        let Message::Text(text) = message else {
            continue;
        };
        let text = text.as_str();
        if !text.starts_with(r#"{"event":"b""#) {
            continue;
        }
        if text.contains(r#""probe":true"#) {
            if !probed {
                probed = true;
                deliveries.probed.set(deliveries.probed.get() + 1);
            }
            continue;
        }
        let now = deliveries.epoch.elapsed();
        if let Some(sent) = field(text, r#""t":"#) {
            let _ = deliveries
                .latency
                .borrow_mut()
                .record((now.as_nanos() as u64).saturating_sub(sent).max(1));
        }
        deliveries.delivered.set(deliveries.delivered.get() + 1);
        deliveries.per_node.borrow_mut()[node] += 1;
        deliveries.last_delivery.set(now);
        deliveries.progress.notify_one();
    }
}

/// The number after `key` in `text`.
fn field(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    let digits = text[start..].bytes().take_while(u8::is_ascii_digit).count();
    text[start..start + digits].parse().ok()
}
