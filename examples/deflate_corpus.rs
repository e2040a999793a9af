//! Compression ratio and speed of permessage-deflate on a chat-like JSON
//! corpus, for each setting a server can choose.
//!
//! ```text
//! cargo run --release --example deflate_corpus
//! cargo run --release --example deflate_corpus -- --messages 10000 --repeat 5
//! ```
//!
//! The corpus is generated from a fixed seed (the same bytes on every run):
//! messages like `{"event":"chat","room":"lobby","from":"k3v9x0a1b2c3",
//! "data":{"text":"…"}}` with texts of a few words to a few hundred, drawn
//! from a vocabulary with a skewed distribution. Each setting compresses the
//! corpus message by message, as a connection would send it, with the
//! core's own [`Deflater`], and inflates it with its [`Inflater`] (checking
//! the result). The table gives the bytes on the wire (payloads; messages
//! under the threshold go as they are) as a share of the input, and the
//! input's megabytes (10^6 bytes) per second compressed and inflated, the
//! best of `--repeat` runs, on one thread.

use std::time::{Duration, Instant};

use clap::Parser;
use switchboard_proto::deflate::{Deflater, Inflater};

#[derive(Debug, Parser)]
struct Args {
    /// Messages in the corpus.
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// Runs per setting; the fastest counts.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = 7692)]
    seed: u64,
}

const WORDS: &[&str] = &[
    "the",
    "a",
    "to",
    "and",
    "is",
    "it",
    "you",
    "that",
    "in",
    "we",
    "for",
    "on",
    "this",
    "be",
    "with",
    "have",
    "are",
    "not",
    "just",
    "can",
    "so",
    "but",
    "what",
    "do",
    "at",
    "if",
    "was",
    "i",
    "me",
    "my",
    "will",
    "all",
    "about",
    "from",
    "they",
    "there",
    "one",
    "get",
    "up",
    "out",
    "now",
    "think",
    "yes",
    "no",
    "ok",
    "thanks",
    "know",
    "here",
    "good",
    "time",
    "today",
    "tomorrow",
    "meeting",
    "deploy",
    "build",
    "review",
    "merge",
    "branch",
    "ticket",
    "server",
    "client",
    "latency",
    "room",
    "lobby",
    "channel",
    "message",
    "update",
    "fixed",
    "broken",
    "test",
    "tests",
    "green",
    "red",
    "release",
    "version",
    "coffee",
    "lunch",
    "standup",
    "later",
    "please",
    "look",
    "pull",
    "request",
    "bug",
    "issue",
    "logs",
    "error",
    "timeout",
    "database",
    "cache",
    "config",
    "switchboard",
    "websocket",
    "compression",
    "memory",
    "benchmark",
    "numbers",
    "graph",
    "dashboard",
    "alert",
    "oncall",
    "weekend",
    "😀",
    "👍",
    "🎉",
    "café",
    "naïve",
    "日本語",
];

const ROOMS: &[&str] = &[
    "lobby", "general", "random", "dev", "ops", "support", "sales", "design",
];

/// xorshift64*: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// An index below `n`, small ones far more likely (roughly Zipf).
    fn skewed(&mut self, n: usize) -> usize {
        let x = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((x * x * x) * n as f64) as usize
    }
}

fn user_id(rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..12)
        .map(|_| ALPHABET[rng.below(ALPHABET.len())] as char)
        .collect()
}

fn corpus(count: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng(seed.max(1));
    let users: Vec<String> = (0..200).map(|_| user_id(&mut rng)).collect();
    (0..count)
        .map(|_| {
            let room = ROOMS[rng.skewed(ROOMS.len())];
            let from = &users[rng.skewed(users.len())];
            let event = match rng.below(20) {
                0 => "typing",
                1 => "presence",
                _ => "chat",
            };
            let words = match rng.below(100) {
                0..=69 => 1 + rng.below(12),
                70..=94 => 12 + rng.below(30),
                _ => 40 + rng.below(200),
            };
            let text: Vec<&str> = (0..words).map(|_| WORDS[rng.skewed(WORDS.len())]).collect();
            format!(
                r#"{{"event":"{event}","room":"{room}","from":"{from}","data":{{"text":"{}"}}}}"#,
                text.join(" ")
            )
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
struct Setting {
    level: u32,
    window_bits: u8,
    takeover: bool,
    threshold: usize,
}

struct Outcome {
    wire: usize,
    compressed: usize,
    compress: Duration,
    inflate: Duration,
}

/// One pass over the corpus: compress every message at or above the
/// threshold, then inflate them all and compare.
fn run(corpus: &[String], setting: Setting) -> Outcome {
    let mut deflater = Deflater::new(setting.level, setting.window_bits, !setting.takeover);
    let mut frames: Vec<Option<Vec<u8>>> = Vec::with_capacity(corpus.len());
    let started = Instant::now();
    for message in corpus {
        if message.len() >= setting.threshold {
            let mut out = Vec::with_capacity(message.len() / 2 + 16);
            deflater.compress(message.as_bytes(), &mut out);
            frames.push(Some(out));
        } else {
            frames.push(None);
        }
    }
    let compress = started.elapsed();
    let wire = frames
        .iter()
        .zip(corpus)
        .map(|(frame, message)| frame.as_ref().map_or(message.len(), Vec::len))
        .sum();
    let compressed = frames.iter().filter(|f| f.is_some()).count();

    let mut inflater = Inflater::new(setting.window_bits, !setting.takeover);
    let mut inflated = Vec::with_capacity(frames.len());
    let started = Instant::now();
    for frame in frames.iter().flatten() {
        let mut out = Vec::with_capacity(frame.len() * 4);
        inflater
            .inflate(frame, true, &mut out, usize::MAX)
            .expect("our own compressed data inflates");
        inflated.push(out);
    }
    let inflate = started.elapsed();
    let mut inflated = inflated.into_iter();
    for (frame, message) in frames.iter().zip(corpus) {
        if frame.is_some() {
            assert_eq!(inflated.next().as_deref(), Some(message.as_bytes()));
        }
    }
    Outcome {
        wire,
        compressed,
        compress,
        inflate,
    }
}

fn main() {
    let args = Args::parse();
    let corpus = corpus(args.messages, args.seed);
    let input: usize = corpus.iter().map(String::len).sum();
    let mut sizes: Vec<usize> = corpus.iter().map(String::len).collect();
    sizes.sort_unstable();
    println!(
        "corpus: {} messages, {input} bytes; sizes min {} / median {} / p95 {} / max {}; {:.1}% under 128 bytes",
        corpus.len(),
        sizes[0],
        sizes[sizes.len() / 2],
        sizes[sizes.len() * 95 / 100],
        sizes[sizes.len() - 1],
        100.0 * sizes.iter().filter(|&&s| s < 128).count() as f64 / sizes.len() as f64
    );
    println!("example: {}\n", corpus[0]);
    println!("| level | window bits | context takeover | threshold | wire bytes | wire / input | messages compressed | compress MB/s | inflate MB/s |");
    println!("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mb_per_s = |time: Duration| input as f64 / 1e6 / time.as_secs_f64();
    for level in [1, 6, 9] {
        for window_bits in [9, 12, 15] {
            for takeover in [false, true] {
                for threshold in [0, 128] {
                    let setting = Setting {
                        level,
                        window_bits,
                        takeover,
                        threshold,
                    };
                    let mut best = run(&corpus, setting);
                    for _ in 1..args.repeat {
                        let next = run(&corpus, setting);
                        best.compress = best.compress.min(next.compress);
                        best.inflate = best.inflate.min(next.inflate);
                    }
                    println!(
                        "| {level} | {window_bits} | {} | {threshold} | {} | {:.1}% | {} | {:.1} | {:.1} |",
                        if takeover { "on" } else { "off" },
                        best.wire,
                        100.0 * best.wire as f64 / input as f64,
                        best.compressed,
                        mb_per_s(best.compress),
                        mb_per_s(best.inflate),
                    );
                }
            }
        }
    }
}
