//! The data-plane message header: the input as one datagram (UDP), and as
//! a byte stream of length-prefixed messages (TCP, TLS, QUIC streams): its
//! first two bytes are the message size the trial set up, which bounds
//! the framing as the data plane sets it (`LengthPrefix::new(size)`), the
//! rest is what arrives.
//!
//! Holds: no panic; a truncated message says how long it was; a header
//! that decodes encodes to one that decodes to it, and its response keeps
//! its identity; a split message is whole, not empty, within the size and
//! inside the input.

use transbench_wire::frame::{LengthPrefix, PREFIX_LEN};
use transbench_wire::{HeaderError, MessageHeader, MessageKind, HEADER_LEN};

pub fn run(data: &[u8]) {
    message(data);
    let Some((size, stream)) = data.split_first_chunk::<2>() else {
        return;
    };
    let size = u32::from(u16::from_be_bytes(*size));
    let framing = LengthPrefix::new(size);
    let mut rest = stream;
    loop {
        match framing.split(rest) {
            Ok(Some((payload, used))) => {
                assert_eq!(used, PREFIX_LEN + payload.len());
                assert!(!payload.is_empty() && payload.len() <= size as usize && used <= rest.len());
                message(payload);
                rest = &rest[used..];
            }
            Ok(None) => {
                if let Some(prefix) = rest.first_chunk::<PREFIX_LEN>() {
                    let len = framing.decode_len(*prefix).expect("split took the prefix");
                    assert!(rest.len() < PREFIX_LEN + len);
                }
                break;
            }
            Err(_) => break,
        }
    }
}

/// One message, as the data plane decodes it.
fn message(bytes: &[u8]) {
    match MessageHeader::decode(bytes) {
        Ok(h) => {
            let mut buf = vec![0u8; HEADER_LEN];
            h.encode(&mut buf);
            assert_eq!(MessageHeader::decode(&buf), Ok(h));
            let response = h.response();
            assert_eq!(response.kind, MessageKind::Response);
            assert_eq!(
                (response.stream, response.seq, response.t_intended_ns),
                (h.stream, h.seq, h.t_intended_ns)
            );
            let mut buf = vec![0u8; HEADER_LEN];
            response.encode(&mut buf);
            assert_eq!(MessageHeader::decode(&buf), Ok(response));
        }
        Err(HeaderError::Truncated(len)) => assert!(len == bytes.len() && len < HEADER_LEN),
        Err(_) => assert!(bytes.len() >= HEADER_LEN),
    }
}
