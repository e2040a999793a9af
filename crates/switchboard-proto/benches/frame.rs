//! Frame parsing: header decoding alone, and a server connection taking a
//! buffer of small masked messages (parse, unmask, UTF-8 check, events).

mod common;

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use switchboard_proto::frame::FrameHeader;

fn headers(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame/header");
    let cases: [(&str, &[u8]); 3] = [
        ("7-bit length", &[0x81, 0x80 | 64, 1, 2, 3, 4]),
        ("16-bit length", &[0x82, 0x80 | 126, 0x10, 0x00, 1, 2, 3, 4]),
        (
            "64-bit length",
            &[0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0x10, 0, 0, 1, 2, 3, 4],
        ),
    ];
    for (name, bytes) in cases {
        group.bench_function(name, |b| b.iter(|| FrameHeader::parse(black_box(bytes))));
    }
    group.finish();
}

fn handle_bytes(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame/handle_bytes");
    for (count, size) in [(64, 16), (64, 64), (16, 1024), (1, 65536)] {
        let wire = common::text_messages(count, size);
        group.throughput(Throughput::Elements(count as u64));
        group.bench_function(format!("{count} x {size} B text"), |b| {
            let mut server = common::server();
            b.iter_batched_ref(
                || wire.clone(),
                |buf| {
                    server.handle_bytes(buf, Instant::now());
                    let mut events = 0;
                    while let Some(event) = server.poll_event() {
                        black_box(event);
                        events += 1;
                    }
                    assert_eq!(events, count);
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, headers, handle_bytes);
criterion_main!(benches);
