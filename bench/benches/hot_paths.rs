//! The per-message work on the data path: header codec, framing, and the
//! histogram record; and the per-trial work of encoding a histogram.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use linkemu::{NetemSpec, Pipeline};
use std::hint::black_box;
use transbench_reports::{encode_hdr, new_histogram};
use transbench_wire::control::CONTROL_FRAMING;
use transbench_wire::{ControlMsg, LengthPrefix, MessageHeader, TrialToken, HEADER_LEN};

const TOKEN: TrialToken = TrialToken::from_bytes(*b"trial-42");

fn header(c: &mut Criterion) {
    let mut buf = [0u8; 64];
    c.bench_function("header_encode", |b| {
        let mut seq = 0u64;
        b.iter(|| {
            seq += 1;
            MessageHeader::request(TOKEN, 3, seq, seq * 1000).encode(black_box(&mut buf));
        })
    });
    MessageHeader::request(TOKEN, 3, 42, 42_000).encode(&mut buf);
    c.bench_function("header_decode", |b| {
        b.iter(|| MessageHeader::decode(black_box(&buf[..HEADER_LEN])).unwrap())
    });
}

fn framing(c: &mut Criterion) {
    let framing = LengthPrefix::new(16 * 1024 * 1024);
    let mut frames = Vec::new();
    for _ in 0..64 {
        framing.encode(&[7u8; 64], &mut frames).unwrap();
    }
    c.bench_function("split_64_frames_of_64_bytes", |b| {
        b.iter(|| {
            let mut rest = black_box(&frames[..]);
            while let Some((payload, used)) = framing.split(rest).unwrap() {
                black_box(payload);
                rest = &rest[used..];
            }
        })
    });
    let ready = ControlMsg::Ready {
        data_port: 5000,
        cert_sha256: Some("ab".repeat(32)),
        token: TOKEN,
    }
    .encode();
    c.bench_function("control_frame_decode", |b| {
        b.iter(|| ControlMsg::split(black_box(&ready)).unwrap().unwrap())
    });
    assert!(ready.len() < CONTROL_FRAMING.max_len as usize);
}

fn histogram(c: &mut Criterion) {
    let mut h = new_histogram();
    c.bench_function("histogram_record", |b| {
        let mut v = 20_000u64;
        b.iter(|| {
            v = v
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            h.record(black_box(20_000 + (v >> 40))).unwrap();
        })
    });
    let mut full = new_histogram();
    for i in 0..100_000u64 {
        full.record(20_000 + (i * 7919) % 5_000_000).unwrap();
    }
    c.bench_function("histogram_encode_v2_deflate_base64", |b| {
        b.iter_batched(
            || full.clone(),
            |h| encode_hdr(&h).unwrap(),
            BatchSize::SmallInput,
        )
    });
}

/// linkemu's per-packet cost (enqueue + dequeue), i.e. packets/s per core
/// of one link direction, for a plain delay and for a busy profile.
fn link_pipeline(c: &mut Criterion) {
    let mut group = c.benchmark_group("linkemu_pipeline");
    group.throughput(criterion::Throughput::Elements(1));
    for (name, profile) in [
        ("delay", "delay 10ms limit 100000"),
        (
            "busy",
            "delay 10ms 2ms distribution normal loss gemodel 1% 30% duplicate 1% corrupt 0.1% \
             reorder 5% gap 3 rate 1gbit limit 100000",
        ),
    ] {
        let spec = NetemSpec::parse(profile).unwrap();
        group.bench_function(name, |b| {
            let mut link = Pipeline::new(&spec, 1);
            let packet = vec![0u8; 1400];
            let mut now = 0u64;
            b.iter(|| {
                // One packet per microsecond in; whatever is due out.
                now += 1_000;
                link.enqueue(packet.clone(), now);
                while let Some(p) = link.dequeue(now) {
                    black_box(p);
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, header, framing, histogram, link_pipeline);
criterion_main!(benches);
