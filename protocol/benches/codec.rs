//! Codec micro-benchmarks: encoding and decoding a room message (the frame every
//! delivery carries) and the stream decoder over a buffer of many frames.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use garou_protocol::{Decoder, Message, RoomMessage, DEFAULT_MAX_FRAME};

fn room_message(size: usize) -> Message {
    RoomMessage {
        room: "general".into(),
        offset: 123_456,
        id: 0x0123_4567_89ab_cdef,
        author: 42,
        nick: "alice".into(),
        ts_ms: 1_790_000_000_000,
        text: "x".repeat(size),
        attachment: None,
    }
    .into()
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("room_message");
    for size in [64usize, 1024] {
        let msg = room_message(size);
        let frame = msg.encode();
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("encode", size), &msg, |b, m| {
            b.iter(|| black_box(m).encode())
        });
        g.bench_with_input(BenchmarkId::new("decode", size), &frame, |b, f| {
            b.iter(|| Message::decode_datagram(black_box(f), DEFAULT_MAX_FRAME).unwrap())
        });
    }
    g.finish();

    // A stream read: 1,000 frames of 64 B text in one buffer, pushed and decoded.
    const FRAMES: usize = 1000;
    let one = room_message(64).encode();
    let mut buf = BytesMut::new();
    for _ in 0..FRAMES {
        buf.extend_from_slice(&one);
    }
    let buf = buf.freeze();
    let mut g = c.benchmark_group("decoder");
    g.throughput(Throughput::Elements(FRAMES as u64));
    g.bench_function("1000_frames_64B", |b| {
        b.iter(|| {
            let mut d = Decoder::new(DEFAULT_MAX_FRAME);
            d.push(black_box(&buf));
            let mut n = 0;
            while let Some(f) = d.next_frame().unwrap() {
                black_box(Message::decode(&f).unwrap());
                n += 1;
            }
            assert_eq!(n, FRAMES);
        })
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
