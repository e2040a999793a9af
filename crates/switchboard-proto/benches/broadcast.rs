//! Broadcast encoding: one frame encoded once (`encode_server_frame`) and
//! queued on many connections, against encoding it for each of them.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use switchboard_proto::frame::{encode_server_frame, OpCode};
use switchboard_proto::{Config, Connection, Role};

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("broadcast/encode");
    for size in [64, 1024, 64 * 1024] {
        let payload = vec![b'x'; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("{size} B"), |b| {
            b.iter(|| encode_server_frame(OpCode::Text, false, black_box(&payload)))
        });
    }
    group.finish();
}

fn fan_out(c: &mut Criterion) {
    const RECIPIENTS: usize = 100;
    let mut group = c.benchmark_group("broadcast/fan_out_100");
    group.throughput(Throughput::Elements(RECIPIENTS as u64));
    let mut servers: Vec<Connection> = (0..RECIPIENTS)
        .map(|_| Connection::new(Role::Server, Config::default(), Instant::now()))
        .collect();
    for size in [64, 4096] {
        let text = "x".repeat(size);
        group.bench_function(format!("{size} B encoded once"), |b| {
            b.iter(|| {
                let frame = encode_server_frame(OpCode::Text, false, text.as_bytes());
                for server in &mut servers {
                    server.send_encoded(frame.clone()).expect("open");
                    while let Some(chunk) = server.poll_transmit() {
                        black_box(chunk);
                    }
                }
            })
        });
        let shared = Bytes::from(text.clone());
        group.bench_function(format!("{size} B encoded per recipient"), |b| {
            b.iter(|| {
                for server in &mut servers {
                    let text = switchboard_proto::Utf8Bytes::try_from_bytes(shared.clone())
                        .expect("valid");
                    server.send_text(text).expect("open");
                    while let Some(chunk) = server.poll_transmit() {
                        black_box(chunk);
                    }
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, encode, fan_out);
criterion_main!(benches);
