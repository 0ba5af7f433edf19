//! HTTP/2-style framing of many logical streams over one byte stream (the
//! `tcp-mux` transports): each message is cut into frames of at most
//! [`MAX_FRAME_PAYLOAD`] bytes, and a round-robin writer takes one frame
//! from each stream with data in turn, so a large message never holds the
//! others back for more than one frame.
//!
//! Frame header, 8 bytes, big-endian: stream id (u32), payload length
//! (u24), flags (u8; bit 0: last frame of a message).

use std::collections::VecDeque;
use thiserror::Error;

pub const FRAME_HEADER_LEN: usize = 8;
/// HTTP/2's default SETTINGS_MAX_FRAME_SIZE.
pub const MAX_FRAME_PAYLOAD: usize = 16 * 1024;
const END_OF_MESSAGE: u8 = 1;

/// Messages waiting to be framed, per stream, and whose turn is next.
#[derive(Debug)]
pub struct MuxWriter {
    queues: Vec<VecDeque<Vec<u8>>>,
    /// Bytes of the front message of each stream already framed.
    offsets: Vec<usize>,
    next: usize,
    pending: usize,
}

impl MuxWriter {
    pub fn new(streams: u32) -> Self {
        MuxWriter {
            queues: (0..streams).map(|_| VecDeque::new()).collect(),
            offsets: vec![0; streams as usize],
            next: 0,
            pending: 0,
        }
    }

    /// Queues a message on `stream` (< the stream count; others panic).
    pub fn push(&mut self, stream: u32, message: Vec<u8>) {
        self.queues[stream as usize].push_back(message);
        self.pending += 1;
    }

    /// Messages not yet completely framed.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Appends the next frame in round-robin order to `out`; `false` if
    /// nothing is queued.
    pub fn next_frame(&mut self, out: &mut Vec<u8>) -> bool {
        let n = self.queues.len();
        for step in 0..n {
            let s = (self.next + step) % n;
            let Some(message) = self.queues[s].front() else {
                continue;
            };
            let from = self.offsets[s];
            let to = (from + MAX_FRAME_PAYLOAD).min(message.len());
            let last = to == message.len();
            out.extend_from_slice(&(s as u32).to_be_bytes());
            out.extend_from_slice(&((to - from) as u32).to_be_bytes()[1..]);
            out.push(if last { END_OF_MESSAGE } else { 0 });
            out.extend_from_slice(&message[from..to]);
            if last {
                self.queues[s].pop_front();
                self.offsets[s] = 0;
                self.pending -= 1;
            } else {
                self.offsets[s] = to;
            }
            self.next = (s + 1) % n;
            return true;
        }
        false
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MuxError {
    #[error("frame for stream {stream}, but the trial has {streams} streams")]
    UnknownStream { stream: u32, streams: u32 },
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_PAYLOAD}-byte limit")]
    FrameTooLong(usize),
    #[error("message on stream {stream} grew past {limit} bytes")]
    MessageTooLong { stream: u32, limit: usize },
}

/// Reassembles messages from frames as bytes arrive.
#[derive(Debug)]
pub struct MuxReader {
    partial: Vec<Vec<u8>>,
    buf: Vec<u8>,
    max_message: usize,
}

impl MuxReader {
    pub fn new(streams: u32, max_message: usize) -> Self {
        MuxReader {
            partial: vec![Vec::new(); streams as usize],
            buf: Vec::new(),
            max_message,
        }
    }

    /// Takes the bytes of one read; calls `on_message(stream, message)`
    /// for each message it completes, in order.
    pub fn feed(&mut self, bytes: &[u8], mut on_message: impl FnMut(u32, &[u8])) -> Result<(), MuxError> {
        self.buf.extend_from_slice(bytes);
        let mut at = 0;
        while self.buf.len() - at >= FRAME_HEADER_LEN {
            let h = &self.buf[at..at + FRAME_HEADER_LEN];
            let stream = u32::from_be_bytes(h[0..4].try_into().expect("4 bytes"));
            let len = u32::from_be_bytes([0, h[4], h[5], h[6]]) as usize;
            let last = h[7] & END_OF_MESSAGE != 0;
            let streams = self.partial.len() as u32;
            if stream >= streams {
                return Err(MuxError::UnknownStream { stream, streams });
            }
            if len > MAX_FRAME_PAYLOAD {
                return Err(MuxError::FrameTooLong(len));
            }
            if self.buf.len() - at < FRAME_HEADER_LEN + len {
                break;
            }
            let payload = &self.buf[at + FRAME_HEADER_LEN..at + FRAME_HEADER_LEN + len];
            let partial = &mut self.partial[stream as usize];
            if partial.len() + len > self.max_message {
                return Err(MuxError::MessageTooLong {
                    stream,
                    limit: self.max_message,
                });
            }
            if last && partial.is_empty() {
                on_message(stream, payload);
            } else {
                partial.extend_from_slice(payload);
                if last {
                    on_message(stream, partial);
                    partial.clear();
                }
            }
            at += FRAME_HEADER_LEN + len;
        }
        self.buf.drain(..at);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn drain(w: &mut MuxWriter) -> Vec<u8> {
        let mut out = Vec::new();
        while w.next_frame(&mut out) {}
        out
    }

    #[test]
    fn writer_takes_streams_in_turn_one_frame_each() {
        let mut w = MuxWriter::new(3);
        w.push(0, vec![0; 40_000]);
        w.push(2, vec![2; 10]);
        w.push(2, vec![2; 10]);
        let mut order = Vec::new();
        let mut out = Vec::new();
        while w.next_frame(&mut out) {
            let stream = u32::from_be_bytes(out[0..4].try_into().unwrap());
            let len = u32::from_be_bytes([0, out[4], out[5], out[6]]) as usize;
            order.push((stream, len, out[7]));
            out.clear();
        }
        // 40,000 bytes are 16 KiB + 16 KiB + 7,232; stream 2 goes between.
        assert_eq!(
            order,
            vec![(0, 16384, 0), (2, 10, 1), (0, 16384, 0), (2, 10, 1), (0, 7232, 1)]
        );
        assert_eq!(w.pending(), 0);
    }

    #[test]
    fn unknown_stream_and_oversized_frames_are_refused() {
        let mut r = MuxReader::new(2, 100);
        let frame = [0, 0, 0, 5, 0, 0, 1, 1, 9];
        assert_eq!(
            r.feed(&frame, |_, _| {}),
            Err(MuxError::UnknownStream {
                stream: 5,
                streams: 2
            })
        );
        let mut r = MuxReader::new(2, 100);
        assert_eq!(
            r.feed(&[0, 0, 0, 1, 0, 0x40, 1, 1], |_, _| {}),
            Err(MuxError::FrameTooLong(0x4001))
        );
        let mut w = MuxWriter::new(1);
        w.push(0, vec![0; 200]);
        let mut r = MuxReader::new(1, 100);
        assert!(matches!(
            r.feed(&drain(&mut w), |_, _| {}),
            Err(MuxError::MessageTooLong { .. })
        ));
    }

    proptest! {
        #[test]
        fn reader_gets_every_message_whatever_the_read_sizes(
            messages in proptest::collection::vec((0u32..4, 1usize..40_000), 1..20),
            cut in 1usize..5000,
        ) {
            let mut w = MuxWriter::new(4);
            for (i, (s, len)) in messages.iter().enumerate() {
                w.push(*s, vec![i as u8; *len]);
            }
            let bytes = drain(&mut w);
            let mut r = MuxReader::new(4, 64 * 1024);
            let mut got: Vec<Vec<(u8, usize)>> = vec![Vec::new(); 4];
            for chunk in bytes.chunks(cut) {
                r.feed(chunk, |s, m| got[s as usize].push((m[0], m.len()))).unwrap();
            }
            // Per stream, every message whole and in order.
            for s in 0..4u32 {
                let want: Vec<(u8, usize)> = messages
                    .iter()
                    .enumerate()
                    .filter(|(_, (st, _))| *st == s)
                    .map(|(i, (_, len))| (i as u8, *len))
                    .collect();
                prop_assert_eq!(&got[s as usize], &want);
            }
        }
    }
}
