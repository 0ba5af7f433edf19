//! The data-plane message header.
//!
//! Every message (a UDP datagram, or one length-prefixed message on a byte
//! stream) starts with this header; the rest of the message is padding up to
//! the configured size. Layout, big-endian, version 2:
//!
//! | bytes | field |
//! |---|---|
//! | 0..2 | magic `0x7462` ("tb") |
//! | 2 | version (high nibble) and kind (low nibble) |
//! | 3 | attempt: 0 for a request's first send, n for its n-th retry; a response repeats its request's |
//! | 4..8 | stream id |
//! | 8..16 | sequence number |
//! | 16..24 | intended send time, ns of the sender's CLOCK_MONOTONIC |
//! | 24..32 | the trial's token ([`crate::token`]); a response repeats its request's |
//!
//! Version 1 was the first 24 bytes alone. Byte 3 was reserved (sent as
//! 0) before it carried the attempt, so a message without retries reads
//! the same either way. The token is in the header,
//! not in a separate prefix, because a datagram has nothing else to carry
//! it in, and one header for every carrier keeps every message's size
//! what `--size` says.

use thiserror::Error;

use crate::token::{TrialToken, TOKEN_LEN};

pub const HEADER_LEN: usize = 32;
const MAGIC: u16 = 0x7462;
const VERSION: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Request = 0,
    Response = 1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageHeader {
    pub kind: MessageKind,
    pub stream: u32,
    pub seq: u64,
    pub t_intended_ns: u64,
    /// The trial this message belongs to.
    pub token: TrialToken,
    /// rr with a retry policy: which send of its request this is (0 the
    /// first, n the n-th retry), so the receiver can count retries that
    /// reached it and the sender responses to them.
    pub attempt: u8,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("message of {0} bytes is shorter than the {HEADER_LEN}-byte header")]
    Truncated(usize),
    #[error("bad magic {0:#06x}: not a transbench message")]
    BadMagic(u16),
    #[error("message header version {0} is not supported (this build speaks {VERSION})")]
    BadVersion(u8),
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
}

impl MessageHeader {
    pub fn request(token: TrialToken, stream: u32, seq: u64, t_intended_ns: u64) -> Self {
        MessageHeader {
            kind: MessageKind::Request,
            stream,
            seq,
            t_intended_ns,
            token,
            attempt: 0,
        }
    }

    /// This request's `attempt`-th retry: the same request sent again.
    pub fn retry(self, attempt: u8) -> Self {
        MessageHeader { attempt, ..self }
    }

    /// The response to this request: same stream, sequence, intended time,
    /// token and attempt.
    pub fn response(&self) -> Self {
        MessageHeader {
            kind: MessageKind::Response,
            ..*self
        }
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `buf`.
    ///
    /// Panics if `buf` is shorter than the header: message sizes are checked
    /// against [`HEADER_LEN`] when a trial is configured.
    pub fn encode(&self, buf: &mut [u8]) {
        let buf = &mut buf[..HEADER_LEN];
        buf[0..2].copy_from_slice(&MAGIC.to_be_bytes());
        buf[2] = (VERSION << 4) | self.kind as u8;
        buf[3] = self.attempt;
        buf[4..8].copy_from_slice(&self.stream.to_be_bytes());
        buf[8..16].copy_from_slice(&self.seq.to_be_bytes());
        buf[16..24].copy_from_slice(&self.t_intended_ns.to_be_bytes());
        buf[24..32].copy_from_slice(self.token.as_bytes());
    }

    pub fn decode(buf: &[u8]) -> Result<Self, HeaderError> {
        let Some(buf) = buf.get(..HEADER_LEN) else {
            return Err(HeaderError::Truncated(buf.len()));
        };
        let magic = u16::from_be_bytes([buf[0], buf[1]]);
        if magic != MAGIC {
            return Err(HeaderError::BadMagic(magic));
        }
        let version = buf[2] >> 4;
        if version != VERSION {
            return Err(HeaderError::BadVersion(version));
        }
        let kind = match buf[2] & 0x0f {
            0 => MessageKind::Request,
            1 => MessageKind::Response,
            k => return Err(HeaderError::UnknownKind(k)),
        };
        let u64_at = |i: usize| u64::from_be_bytes(buf[i..i + 8].try_into().expect("8 bytes"));
        Ok(MessageHeader {
            kind,
            stream: u32::from_be_bytes(buf[4..8].try_into().expect("4 bytes")),
            seq: u64_at(8),
            t_intended_ns: u64_at(16),
            token: TrialToken::from_bytes(buf[24..24 + TOKEN_LEN].try_into().expect("8 bytes")),
            attempt: buf[3],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: TrialToken = TrialToken::from_bytes(*b"trial-42");

    #[test]
    fn response_keeps_identity() {
        let req = MessageHeader::request(T, 3, 42, 1_000).retry(2);
        let resp = req.response();
        assert_eq!(resp.kind, MessageKind::Response);
        assert_eq!(
            (
                resp.stream,
                resp.seq,
                resp.t_intended_ns,
                resp.token,
                resp.attempt
            ),
            (3, 42, 1_000, T, 2)
        );
    }

    #[test]
    fn the_token_is_the_last_eight_bytes() {
        let mut buf = [0u8; HEADER_LEN];
        MessageHeader::request(T, 0, 1, 2).encode(&mut buf);
        assert_eq!(&buf[24..], b"trial-42");
        assert_eq!(buf[2], 0x20, "version 2, a request");
    }

    #[test]
    fn rejects_foreign_bytes() {
        let mut buf = [0u8; HEADER_LEN];
        MessageHeader::request(T, 0, 1, 2).encode(&mut buf);
        let mut bad = buf;
        bad[0] = b'G';
        assert!(matches!(
            MessageHeader::decode(&bad),
            Err(HeaderError::BadMagic(_))
        ));
        let mut bad = buf;
        bad[2] = 0x10;
        assert_eq!(MessageHeader::decode(&bad), Err(HeaderError::BadVersion(1)));
        let mut bad = buf;
        bad[2] = 0x27;
        assert_eq!(MessageHeader::decode(&bad), Err(HeaderError::UnknownKind(7)));
        assert_eq!(MessageHeader::decode(&buf[..10]), Err(HeaderError::Truncated(10)));
        // A version 1 message of 24 bytes is too short to carry a token.
        assert_eq!(MessageHeader::decode(&buf[..24]), Err(HeaderError::Truncated(24)));
    }

    proptest! {
        #[test]
        fn round_trips(stream: u32, seq: u64, t: u64, token: [u8; TOKEN_LEN], attempt: u8, response: bool, pad in 0usize..64) {
            let mut h = MessageHeader::request(TrialToken::from_bytes(token), stream, seq, t).retry(attempt);
            if response { h = h.response(); }
            let mut buf = vec![0xAA; HEADER_LEN + pad];
            h.encode(&mut buf);
            prop_assert_eq!(MessageHeader::decode(&buf), Ok(h));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = MessageHeader::decode(&bytes);
        }

        #[test]
        fn any_truncation_is_an_error(seq: u64, cut in 0usize..HEADER_LEN) {
            let mut buf = [0u8; HEADER_LEN];
            MessageHeader::request(T, 1, seq, 9).encode(&mut buf);
            prop_assert_eq!(MessageHeader::decode(&buf[..cut]), Err(HeaderError::Truncated(cut)));
        }
    }
}
