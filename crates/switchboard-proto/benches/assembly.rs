//! Message assembly: a server connection taking one fragmented text message
//! (frames parsed, unmasked, validated across fragment boundaries, joined).

mod common;

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use switchboard_proto::Event;

fn assembly(c: &mut Criterion) {
    let mut group = c.benchmark_group("assembly");
    for (fragments, size) in [(4, 256), (64, 256), (16, 4096), (16, 65536)] {
        let wire = common::fragmented_text(fragments, size);
        group.throughput(Throughput::Bytes((fragments * size) as u64));
        group.bench_function(format!("{fragments} fragments x {size} B"), |b| {
            let mut server = common::server();
            b.iter_batched_ref(
                || wire.clone(),
                |buf| {
                    server.handle_bytes(buf, Instant::now());
                    match server.poll_event() {
                        Some(Event::Message(message)) => black_box(message),
                        other => panic!("expected one message, got {other:?}"),
                    };
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, assembly);
criterion_main!(benches);
