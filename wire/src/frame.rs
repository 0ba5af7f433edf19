//! Length-prefixed framing for byte streams: a 4-byte big-endian length,
//! then that many bytes. Used for data messages on TCP, TLS and QUIC streams
//! and for control frames; each use sets its own upper bound so a garbage
//! prefix is refused instead of allocating gigabytes.

use thiserror::Error;

pub const PREFIX_LEN: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthPrefix {
    pub max_len: u32,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error(
        "frame of {len} bytes exceeds the limit of {max} bytes (garbage or a peer speaking another protocol)"
    )]
    TooLong { len: u32, max: u32 },
    #[error("empty frame")]
    Empty,
}

impl LengthPrefix {
    pub const fn new(max_len: u32) -> Self {
        LengthPrefix { max_len }
    }

    /// Reads a prefix; returns the payload length it announces.
    pub fn decode_len(&self, prefix: [u8; PREFIX_LEN]) -> Result<usize, FrameError> {
        let len = u32::from_be_bytes(prefix);
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if len > self.max_len {
            return Err(FrameError::TooLong {
                len,
                max: self.max_len,
            });
        }
        Ok(len as usize)
    }

    pub fn encode_len(&self, len: usize) -> Result<[u8; PREFIX_LEN], FrameError> {
        let len32 = u32::try_from(len).unwrap_or(u32::MAX);
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if len32 > self.max_len {
            return Err(FrameError::TooLong {
                len: len32,
                max: self.max_len,
            });
        }
        Ok(len32.to_be_bytes())
    }

    /// Splits one whole frame off the front of `buf`: `Ok(Some((payload,
    /// consumed)))`, or `Ok(None)` when more bytes are needed.
    pub fn split<'a>(&self, buf: &'a [u8]) -> Result<Option<(&'a [u8], usize)>, FrameError> {
        let Some(prefix) = buf.get(..PREFIX_LEN) else {
            return Ok(None);
        };
        let len = self.decode_len(prefix.try_into().expect("prefix length"))?;
        Ok(buf
            .get(PREFIX_LEN..PREFIX_LEN + len)
            .map(|payload| (payload, PREFIX_LEN + len)))
    }

    /// Appends a frame holding `payload` to `out`.
    pub fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        out.extend_from_slice(&self.encode_len(payload.len())?);
        out.extend_from_slice(payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: LengthPrefix = LengthPrefix::new(1024);

    #[test]
    fn refuses_oversized_and_empty() {
        assert_eq!(
            P.decode_len(2000u32.to_be_bytes()),
            Err(FrameError::TooLong { len: 2000, max: 1024 })
        );
        assert_eq!(P.decode_len([0; 4]), Err(FrameError::Empty));
        assert!(P.encode(&[0; 1025], &mut Vec::new()).is_err());
    }

    proptest! {
        #[test]
        fn round_trips_back_to_back(a in proptest::collection::vec(any::<u8>(), 1..200),
                                    b in proptest::collection::vec(any::<u8>(), 1..200)) {
            let mut buf = Vec::new();
            P.encode(&a, &mut buf).unwrap();
            P.encode(&b, &mut buf).unwrap();
            let (first, used) = P.split(&buf).unwrap().unwrap();
            prop_assert_eq!(first, &a[..]);
            let (second, used2) = P.split(&buf[used..]).unwrap().unwrap();
            prop_assert_eq!(second, &b[..]);
            prop_assert_eq!(used + used2, buf.len());
        }

        #[test]
        fn truncated_frame_waits_for_more(a in proptest::collection::vec(any::<u8>(), 1..200), cut in 0usize..204) {
            let mut buf = Vec::new();
            P.encode(&a, &mut buf).unwrap();
            let cut = cut.min(buf.len() - 1);
            prop_assert_eq!(P.split(&buf[..cut]), Ok(None));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = P.split(&bytes);
        }
    }
}
