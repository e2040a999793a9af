//! Masking and unmasking in place (the same operation), against the
//! byte-at-a-time reference, at several sizes and at an odd alignment.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use switchboard_proto::mask::{apply_mask, apply_mask_scalar};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for size in [16, 64, 1024, 16 * 1024, 1 << 20] {
        let mut buf = vec![0x5au8; size + 1];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("{size} B"), |b| {
            b.iter(|| apply_mask(black_box(&mut buf[..size]), KEY, 0))
        });
        group.bench_function(format!("{size} B unaligned"), |b| {
            b.iter(|| apply_mask(black_box(&mut buf[1..]), KEY, 3))
        });
        if size <= 16 * 1024 {
            group.bench_function(format!("{size} B scalar"), |b| {
                b.iter(|| apply_mask_scalar(black_box(&mut buf[..size]), KEY, 0))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, mask);
criterion_main!(benches);
