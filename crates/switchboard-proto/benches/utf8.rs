//! UTF-8 validation: whole texts (ASCII and mixed), and one text fed in
//! pieces whose boundaries cut code points.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use switchboard_proto::utf8::{validate, Utf8Validator};

fn text(size: usize, ascii: bool) -> Vec<u8> {
    let unit = if ascii {
        "switchboard "
    } else {
        "switch·bøård→交換機 "
    };
    let mut bytes = unit.repeat(size / unit.len() + 1).into_bytes();
    bytes.truncate(size);
    bytes
}

fn whole(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8/whole");
    for size in [64, 4096, 1 << 20] {
        for ascii in [true, false] {
            // Cut at a char boundary so the text is valid.
            let mut bytes = text(size, ascii);
            while std::str::from_utf8(&bytes).is_err() {
                bytes.pop();
            }
            group.throughput(Throughput::Bytes(bytes.len() as u64));
            let name = format!("{size} B {}", if ascii { "ascii" } else { "mixed" });
            group.bench_function(name, |b| b.iter(|| validate(black_box(&bytes)).is_ok()));
        }
    }
    group.finish();
}

fn incremental(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8/incremental");
    let mut bytes = text(64 * 1024, false);
    while std::str::from_utf8(&bytes).is_err() {
        bytes.pop();
    }
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    for piece in [61, 1021] {
        group.bench_function(format!("64 KiB in {piece} B pieces"), |b| {
            b.iter(|| {
                let mut validator = Utf8Validator::default();
                for chunk in bytes.chunks(piece) {
                    validator.feed(black_box(chunk)).expect("valid");
                }
                validator.finish().expect("complete")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, whole, incremental);
criterion_main!(benches);
