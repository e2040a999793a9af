//! `bench fanout`: one publisher, N subscribers; deliveries per second and
//! publish-to-delivery latency.
//!
//! Two server dialects:
//!
//! - `hub` (Switchboard's `/ws`): subscribers send
//!   `{"event":"join","room":R,"ack":1}` and wait for the ack; the publisher
//!   sends `{"event":"b","room":R,"data":{...}}`;
//! - `raw` (a server that sends every message to every other client): the
//!   publisher's messages are the data itself.
//!
//! The data is `{"s":SEQ,"t":NANOS,"p":"xxx…"}`, padded to `--size` bytes:
//! the sequence number and the send time, on a clock all tasks share.
//! Before measuring, the publisher sends probes until every subscriber has
//! seen one, so that the server has registered them all.
//!
//! With `--messages M` the publisher keeps at most `--window W` messages not
//! yet delivered to everyone (closed loop: the server's pace, without
//! overrunning its queues), and stops after M messages or `--duration`,
//! whichever comes first; with `--rate R` it publishes R messages a second
//! for `--duration` (open loop: latency at a given load).

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use clap::{Args, ValueEnum};
use memchr::memmem::Finder;
use serde_json::json;
use switchboard_net::{Message, Reader, Writer};
use switchboard_proto::frame::OpCode;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::endpoint::{client_config, Endpoint};
use super::flags::{seconds, TargetArgs};
use super::raw_frames::RawFrames;
use super::stats::{self, Errors, Latencies};

/// Flags of `switchboard bench fanout`.
#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("load").required(true).args(["rate", "messages"]))]
pub struct FanoutArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Subscribers.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// The server's dialect.
    #[arg(long, value_enum, default_value_t = Protocol::Hub)]
    protocol: Protocol,
    /// Publish this many messages a second for --duration (open loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Publish at most this many messages (and for at most --duration), at
    /// most --window undelivered at a time.
    #[arg(long)]
    messages: Option<u64>,
    /// Seconds of publishing.
    #[arg(long, value_parser = seconds, default_value = "5")]
    duration: Duration,
    /// With --messages: messages published but not yet delivered to every
    /// subscriber.
    #[arg(long, default_value_t = 16)]
    window: u64,
    /// Size of the data in bytes (for the hub, of the `data` object).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// The room (hub).
    #[arg(long, default_value = "bench")]
    room: String,
    /// Handshakes in progress at once while subscribers connect (below the
    /// usual listen backlog of 128).
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Seconds to wait for the last deliveries after the last publish.
    #[arg(long, value_parser = seconds, default_value = "10")]
    drain: Duration,
}

/// How subscribers subscribe and how the publisher addresses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// Switchboard's hub: join a room, publish to it.
    Hub,
    /// Every message goes to every other client.
    Raw,
}

/// The run's delivery accounting, kept by the publisher and the
/// subscribers together: the clock, who was reached, deliveries of each
/// message and in all, latencies and errors.
struct Deliveries {
    epoch: Instant,
    /// Subscribers counted as reached (those that saw a probe).
    reached: AtomicUsize,
    probed: Notify,
    /// Deliveries of each message, by sequence number.
    counts: Vec<AtomicU32>,
    delivered: AtomicU64,
    /// Deliveries expected in all; set when publishing starts, and again
    /// when it stops early.
    expected: AtomicU64,
    /// Wakes the publisher: a message reached everyone, or all are delivered.
    progress: Notify,
    last_delivery_ns: AtomicU64,
    latencies: Latencies,
    errors: Errors,
}

impl Deliveries {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

pub async fn run(args: FanoutArgs) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        args.subscribers > 0 && args.window > 0,
        "--subscribers and --window must be > 0"
    );
    let total = match (args.messages, args.rate) {
        (Some(messages), _) => messages,
        (None, Some(rate)) if rate > 0.0 => (rate * args.duration.as_secs_f64()).ceil() as u64,
        _ => anyhow::bail!("--rate must be > 0"),
    };
    anyhow::ensure!(total > 0 && total < u32::MAX as u64, "1 to 2^32 messages");
    let endpoint = Endpoint::resolve(&args.target, client_config(args.size + 256)).await?;
    let deliveries = Arc::new(Deliveries {
        epoch: Instant::now(),
        reached: AtomicUsize::new(0),
        probed: Notify::new(),
        counts: (0..total).map(|_| AtomicU32::new(0)).collect(),
        delivered: AtomicU64::new(0),
        expected: AtomicU64::new(u64::MAX),
        progress: Notify::new(),
        last_delivery_ns: AtomicU64::new(0),
        latencies: Latencies::new(),
        errors: Errors::default(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let connect_started = Instant::now();
    let (mut subscribers, ready) = start_subscribers(&args, &endpoint, &deliveries, stop_rx).await;
    let connect_s = connect_started.elapsed().as_secs_f64();
    anyhow::ensure!(
        ready > 0,
        "no subscriber could subscribe: {}",
        deliveries.errors.json()
    );

    let socket = endpoint.connect().await?;
    let (reader, writer) = socket.split();
    let publisher_reader = tokio::spawn(drain_publisher(reader, Arc::clone(&deliveries)));
    let publisher = Publisher {
        writer,
        args: &args,
        deliveries: &deliveries,
        total,
    };
    let reached = publisher.probe(ready).await?;
    deliveries
        .expected
        .store(total * reached as u64, Ordering::Release);

    let cpu_before = stats::CpuSnapshot::take();
    let first_publish = deliveries.now_ns();
    let (published, stalls) = publisher.publish(reached).await?;
    let expected = published * reached as u64;
    deliveries.expected.store(expected, Ordering::Release);
    let last_publish = Instant::now();
    while deliveries.delivered.load(Ordering::Acquire) < expected {
        let progressed = deliveries.progress.notified();
        if Instant::now() >= last_publish + args.drain {
            break;
        }
        let _ = tokio::time::timeout_at(last_publish + args.drain, progressed).await;
    }
    let cpu_after = stats::CpuSnapshot::take();
    let delivered = deliveries.delivered.load(Ordering::Acquire);
    let last_delivery = deliveries.last_delivery_ns.load(Ordering::Acquire);
    let elapsed = Duration::from_nanos(last_delivery.saturating_sub(first_publish));

    let _ = stop_tx.send(true);
    publisher.close().await;
    publisher_reader.abort();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while subscribers.join_next().await.is_some() {}
    })
    .await;
    subscribers.abort_all();

    let secs = elapsed.as_secs_f64();
    let line = json!({
        "scenario": "fanout",
        "url": args.target.url,
        "protocol": format!("{:?}", args.protocol).to_lowercase(),
        "subscribers": args.subscribers,
        "subscribers_ready": ready,
        "subscribers_reached": reached,
        "connect_s": stats::round3(connect_s),
        "mode": if args.messages.is_some() { "window" } else { "rate" },
        "window": args.messages.map(|_| args.window),
        "rate": args.rate,
        "size": args.size,
        "messages": published,
        "expected": expected,
        "delivered": delivered,
        "lost": expected.saturating_sub(delivered),
        "stalls": stalls,
        "elapsed_s": stats::round3(secs),
        "deliveries_per_s": if secs > 0.0 { stats::round1(delivered as f64 / secs) } else { 0.0 },
        "latency_us": deliveries.latencies.summary(),
    });
    let line = stats::merge(line, deliveries.errors.json());
    Ok(stats::merge(
        line,
        stats::cpu_json(cpu_before, cpu_after, elapsed),
    ))
}

/// Connects and subscribes every subscriber, `connect_concurrency` at a
/// time; returns their tasks and how many are subscribed.
async fn start_subscribers(
    args: &FanoutArgs,
    endpoint: &Endpoint,
    deliveries: &Arc<Deliveries>,
    stop: watch::Receiver<bool>,
) -> (JoinSet<()>, usize) {
    let permits = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let (ready_tx, mut ready_rx) = mpsc::channel::<bool>(args.subscribers);
    let mut tasks = JoinSet::new();
    for _ in 0..args.subscribers {
        let (endpoint, deliveries, stop) = (endpoint.clone(), Arc::clone(deliveries), stop.clone());
        let (permits, ready_tx) = (Arc::clone(&permits), ready_tx.clone());
        let (protocol, room) = (args.protocol, args.room.clone());
        tasks.spawn(async move {
            let permit = permits.acquire_owned().await;
            let socket = match subscribe(&endpoint, protocol, &room).await {
                Ok(socket) => socket,
                Err(error) => {
                    deliveries.errors.add(format!("subscribe: {error:#}"));
                    let _ = ready_tx.send(false).await;
                    return;
                }
            };
            drop(permit);
            let _ = ready_tx.send(true).await;
            drop(ready_tx);
            subscriber(socket, deliveries, stop).await;
        });
    }
    drop(ready_tx);
    let mut ready = 0;
    while let Some(ok) = ready_rx.recv().await {
        ready += usize::from(ok);
    }
    (tasks, ready)
}

/// Opens a subscriber's connection and, for the hub, joins the room and
/// waits for the ack.
async fn subscribe(
    endpoint: &Endpoint,
    protocol: Protocol,
    room: &str,
) -> anyhow::Result<RawFrames> {
    let (stream, leftover) = endpoint.connect_raw().await?;
    let mut frames = RawFrames::new(stream, leftover);
    if protocol == Protocol::Hub {
        let join = json!({"event": "join", "room": room, "ack": 1}).to_string();
        frames.send(OpCode::Text, join.as_bytes()).await?;
        tokio::time::timeout(Duration::from_secs(10), join_acked(&mut frames))
            .await
            .map_err(|_| anyhow::anyhow!("no ack to the join within 10 s"))??;
    }
    Ok(frames)
}

/// Reads until the ack of the join (what comes before it is dropped;
/// nothing is published before every subscriber has its ack).
async fn join_acked(frames: &mut RawFrames) -> anyhow::Result<()> {
    loop {
        let mut ack = None;
        frames.drain(|frame| {
            let text = String::from_utf8_lossy(frame.payload);
            if ack.is_none() && frame.opcode == OpCode::Text && text.contains("\"event\":\"ack\"") {
                ack = Some(text.into_owned());
            }
        })?;
        if let Some(ack) = ack {
            anyhow::ensure!(!ack.contains("\"error\""), "join refused: {ack}");
            return Ok(());
        }
        anyhow::ensure!(
            frames.fill().await?,
            "closed before the join was acknowledged"
        );
    }
}

/// Receives until told to stop: counts deliveries and their latency. Reads
/// raw frames ([`RawFrames`]): the generator must cost less per message
/// than the server it measures.
async fn subscriber(
    mut frames: RawFrames,
    deliveries: Arc<Deliveries>,
    mut stop: watch::Receiver<bool>,
) {
    let mut recorder = deliveries.latencies.recorder();
    let mut probed = false;
    // Made once: a watch future per read (a waiter added and removed under
    // its lock) cost the generator more than the messages it read.
    let stopped = stop.clone();
    let stopping = stop.changed();
    tokio::pin!(stopping);
    loop {
        let read = tokio::select! {
            biased;
            read = frames.fill() => read,
            _ = &mut stopping => break,
        };
        match read {
            Ok(true) => {}
            Ok(false) => {
                if !*stopped.borrow() {
                    deliveries.errors.add("subscriber: closed by the server");
                }
                return;
            }
            Err(error) => {
                deliveries.errors.add(format!("subscriber: {error}"));
                return;
            }
        }
        // The frames of one read arrived together: one clock reading.
        let now = deliveries.now_ns();
        let mut closed = false;
        let drained = frames.drain(|frame| match frame.opcode {
            OpCode::Text if frame.fin => match parse(frame.payload) {
                Marker::Data { seq, sent_ns } => {
                    recorder.record(Duration::from_nanos(now.saturating_sub(sent_ns)));
                    deliver(&deliveries, seq, now);
                }
                Marker::Probe if !probed => {
                    probed = true;
                    deliveries.reached.fetch_add(1, Ordering::AcqRel);
                    deliveries.probed.notify_one();
                }
                Marker::Probe | Marker::Other => {}
            },
            OpCode::Close => closed = true,
            _ => {}
        });
        if let Err(error) = drained {
            deliveries.errors.add(format!("subscriber: {error}"));
            return;
        }
        if closed {
            if !*stopped.borrow() {
                deliveries.errors.add("subscriber: closed by the server");
            }
            return;
        }
    }
    recorder.flush();
    close(&mut frames).await;
}

/// The closing handshake from the client's side: a close frame (1000), then
/// the server's, within 3 s.
async fn close(frames: &mut RawFrames) {
    let handshake = async {
        frames.send(OpCode::Close, &1000u16.to_be_bytes()).await?;
        loop {
            let mut closed = false;
            frames.drain(|frame| closed |= frame.opcode == OpCode::Close)?;
            if closed || !frames.fill().await? {
                return Ok::<_, std::io::Error>(());
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), handshake).await;
}

fn deliver(deliveries: &Deliveries, seq: u64, now_ns: u64) {
    let Some(count) = deliveries.counts.get(seq as usize) else {
        return;
    };
    let reached = deliveries.reached.load(Ordering::Acquire) as u32;
    let mut wake = count.fetch_add(1, Ordering::AcqRel) + 1 == reached;
    deliveries
        .last_delivery_ns
        .fetch_max(now_ns, Ordering::AcqRel);
    let delivered = deliveries.delivered.fetch_add(1, Ordering::AcqRel) + 1;
    wake |= delivered >= deliveries.expected.load(Ordering::Acquire);
    if wake {
        deliveries.progress.notify_one();
    }
}

/// What a received text carries.
#[derive(Debug, PartialEq, Eq)]
enum Marker {
    Data { seq: u64, sent_ns: u64 },
    Probe,
    Other,
}

/// Finds `"s":SEQ` and `"t":NANOS` (or `"probe"`) in a message, whatever
/// envelope the server wrapped it in. The searchers are built once: a
/// substring search built per message cost the generator more than the
/// server spent delivering it.
fn parse(bytes: &[u8]) -> Marker {
    static SEQ: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"s\":"));
    static SENT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"t\":"));
    static PROBE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"probe\""));
    let number = |finder: &Finder<'_>| {
        let start = finder.find(bytes)? + finder.needle().len();
        leading_number(&bytes[start..])
    };
    match (number(&SEQ), number(&SENT)) {
        (Some(seq), Some(sent_ns)) => Marker::Data { seq, sent_ns },
        _ if PROBE.find(bytes).is_some() => Marker::Probe,
        _ => Marker::Other,
    }
}

/// The decimal number `bytes` starts with, if it starts with one (and
/// fits in a u64).
fn leading_number(bytes: &[u8]) -> Option<u64> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    bytes[..digits].iter().try_fold(0u64, |n, digit| {
        n.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// Reads what the server sends the publisher, noting errors it reports.
async fn drain_publisher(mut reader: Reader, deliveries: Arc<Deliveries>) {
    while let Some(message) = reader.recv().await {
        match message {
            Ok(Message::Text(text)) if text.contains("\"error\"") => {
                deliveries
                    .errors
                    .add(format!("server to publisher: {text}"));
            }
            Ok(_) => {}
            Err(error) => {
                deliveries.errors.add(format!("publisher: {error}"));
                return;
            }
        }
    }
}

struct Publisher<'a> {
    writer: Writer,
    args: &'a FanoutArgs,
    deliveries: &'a Deliveries,
    total: u64,
}

impl Publisher<'_> {
    /// Sends probes until every subscribed client has seen one (or 15 s
    /// pass); returns how many have.
    async fn probe(&self, ready: usize) -> anyhow::Result<usize> {
        let give_up = Instant::now() + Duration::from_secs(15);
        let probe = self.envelope("{\"probe\":1}");
        while self.deliveries.reached.load(Ordering::Acquire) < ready && Instant::now() < give_up {
            let probed = self.deliveries.probed.notified();
            self.writer.send(Message::text(probe.clone())).await?;
            let _ = tokio::time::timeout(Duration::from_millis(200), probed).await;
            // Let the probe reach everyone before asking again.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(self.deliveries.reached.load(Ordering::Acquire))
    }

    /// Publishes the messages; returns how many, and how often the window
    /// did not advance within 5 s (a subscriber stopped receiving).
    async fn publish(&self, reached: usize) -> anyhow::Result<(u64, u64)> {
        let started = Instant::now();
        let stop = started + self.args.duration;
        let mut stalls = 0;
        let mut published = 0;
        let due = |seq: u64, rate: f64| started + Duration::from_secs_f64(seq as f64 / rate);
        for seq in 0..self.total {
            if let Some(rate) = self.args.rate {
                tokio::time::sleep_until(due(seq, rate)).await;
            } else {
                if Instant::now() >= stop {
                    break;
                }
                if seq >= self.args.window
                    && !self.wait_for(seq - self.args.window, reached).await?
                {
                    stalls += 1;
                }
            }
            let data = self.data(seq);
            self.writer
                .feed(Message::text(self.envelope(&data)))
                .await?;
            published += 1;
            // Behind schedule, messages due already go out in one write.
            if let Some(rate) = self.args.rate {
                if Instant::now() < due(seq + 1, rate) {
                    self.writer.flush().await?;
                }
            }
        }
        self.writer.flush().await?;
        Ok((published, stalls))
    }

    /// Waits until message `seq` reached every subscriber; false after 5 s.
    async fn wait_for(&self, seq: u64, reached: usize) -> anyhow::Result<bool> {
        let count = &self.deliveries.counts[seq as usize];
        if count.load(Ordering::Acquire) as usize >= reached {
            return Ok(true);
        }
        self.writer.flush().await?;
        let give_up = Instant::now() + Duration::from_secs(5);
        loop {
            let progressed = self.deliveries.progress.notified();
            if count.load(Ordering::Acquire) as usize >= reached {
                return Ok(true);
            }
            if tokio::time::timeout_at(give_up, progressed).await.is_err() {
                return Ok(false);
            }
        }
    }

    /// `{"s":SEQ,"t":NOW,"p":"xx…"}`, padded to the requested size.
    fn data(&self, seq: u64) -> String {
        let head = format!("{{\"s\":{seq},\"t\":{},\"p\":\"", self.deliveries.now_ns());
        let fill = self.args.size.saturating_sub(head.len() + 2);
        let mut data = String::with_capacity(head.len() + fill + 2);
        data.push_str(&head);
        data.extend(std::iter::repeat_n('x', fill));
        data.push_str("\"}");
        data
    }

    /// The data as the server's dialect wants it.
    fn envelope(&self, data: &str) -> String {
        match self.args.protocol {
            Protocol::Raw => data.to_owned(),
            Protocol::Hub => format!(
                "{{\"event\":\"b\",\"room\":{},\"data\":{data}}}",
                serde_json::Value::from(self.args.room.as_str())
            ),
        }
    }

    async fn close(&self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.writer.close(switchboard_net::CloseCode::NORMAL, ""),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_marks_in_any_envelope() {
        assert_eq!(
            parse(br#"{"event":"b","from":"x1","room":"bench","data":{"s":12,"t":345,"p":"xx"}}"#),
            Marker::Data {
                seq: 12,
                sent_ns: 345
            }
        );
        assert_eq!(
            parse(br#"{"s":0,"t":7,"p":""}"#),
            Marker::Data { seq: 0, sent_ns: 7 }
        );
        assert_eq!(parse(br#"{"event":"b","data":{"probe":1}}"#), Marker::Probe);
        assert_eq!(
            parse(br#"{"event":"ready","data":{"id":"a"}}"#),
            Marker::Other
        );
    }
}
