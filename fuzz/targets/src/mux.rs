//! tcp-mux frames. The input's first byte sets the trial up: streams (low
//! nibble + 1), the largest message (bits 4-5), the read size (bit 6) and
//! the mode (bit 7):
//!
//! - reading: the rest is bytes off the connection, fed to a `MuxReader`
//!   in reads of that size and all at once;
//! - writing: the rest is messages, 3 bytes each (stream, 2-byte length;
//!   the contents are the input's bytes, cycled), framed by a `MuxWriter`
//!   and read back in reads of that size.
//!
//! Holds: no panic; every message read is on a stream of the trial and no
//! longer than the largest; how the bytes are cut into reads changes
//! nothing (the same messages, then the same error); what the writer
//! frames reads back as the same messages, in order on each stream.

use transbench_wire::mux::{MuxError, MuxReader, MuxWriter, FRAME_HEADER_LEN};

/// The largest messages a trial may set (`size`), picked by bits 4-5.
const MAX_MESSAGE: [usize; 4] = [24, 1024, 20_000, 64 * 1024];
/// Read sizes, picked by bit 6: a byte at a time, or a few frames. What
/// a writing input frames (up to [`MAX_WRITTEN`]) is read 7 bytes at a
/// time instead of one, so an input stays fast.
const READ: [usize; 2] = [1, 3 * FRAME_HEADER_LEN + 1000];
const WRITTEN_READ: [usize; 2] = [FRAME_HEADER_LEN - 1, 3 * FRAME_HEADER_LEN + 1000];
/// The most bytes of messages a writing input frames.
const MAX_WRITTEN: usize = 1 << 17;

type Messages = Vec<(u32, Vec<u8>)>;

pub fn run(data: &[u8]) {
    let Some((&setup, rest)) = data.split_first() else {
        return;
    };
    let streams = u32::from(setup & 0x0f) + 1;
    let max_message = MAX_MESSAGE[usize::from(setup >> 4 & 3)];
    let read = usize::from(setup >> 6 & 1);
    if setup & 0x80 == 0 {
        reading(streams, max_message, READ[read], rest);
    } else {
        writing(streams, max_message, WRITTEN_READ[read], rest);
    }
}

fn reading(streams: u32, max_message: usize, read: usize, bytes: &[u8]) {
    let whole = feed(streams, max_message, &[bytes]);
    let chunks: Vec<&[u8]> = bytes.chunks(read).collect();
    let cut = feed(streams, max_message, &chunks);
    assert_eq!(whole, cut, "reads of {read} bytes");
    for (stream, message) in &whole.0 {
        assert!(*stream < streams && message.len() <= max_message);
    }
}

/// The messages a reader gives for these reads, up to its first error.
fn feed(streams: u32, max_message: usize, reads: &[&[u8]]) -> (Messages, Option<MuxError>) {
    let mut reader = MuxReader::new(streams, max_message);
    let mut got = Vec::new();
    for bytes in reads {
        if let Err(e) = reader.feed(bytes, |s, m| got.push((s, m.to_vec()))) {
            return (got, Some(e));
        }
    }
    (got, None)
}

fn writing(streams: u32, max_message: usize, read: usize, spec: &[u8]) {
    let mut messages: Messages = Vec::new();
    let mut total = 0;
    for m in spec.chunks_exact(3) {
        let stream = u32::from(m[0]) % streams;
        let len = usize::from(u16::from_be_bytes([m[1], m[2]])) % (max_message + 1);
        if total + len > MAX_WRITTEN {
            break;
        }
        total += len;
        let message = spec.iter().copied().cycle().take(len).collect();
        messages.push((stream, message));
    }
    let mut writer = MuxWriter::new(streams);
    for (stream, message) in &messages {
        writer.push(*stream, message.clone());
    }
    assert_eq!(writer.pending(), messages.len());
    let mut bytes = Vec::new();
    while writer.next_frame(&mut bytes) {}
    assert_eq!(writer.pending(), 0);
    let chunks: Vec<&[u8]> = bytes.chunks(read).collect();
    let (mut got, error) = feed(streams, max_message, &chunks);
    assert_eq!(error, None);
    // The writer interleaves streams; each stream's messages keep their order.
    got.sort_by_key(|(stream, _)| *stream);
    messages.sort_by_key(|(stream, _)| *stream);
    assert!(got == messages, "messages written are the messages read");
}
