//! What the receiver of an rr trial that counts delivery hands back: for
//! each request id, how often its first send and its retries arrived and
//! how often it was processed. Packed 3 bytes per id (first-send arrivals,
//! retry arrivals, processings; each saturating at 255), ids in order from
//! a frame's `first`, base64 in
//! [`ControlMsg::Processed`](crate::ControlMsg::Processed) frames.

use crate::packed::{self, PackedError};

/// One request id's counts at the receiver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdCounts {
    /// Arrivals of the request's first send (more than one: the path
    /// duplicated it).
    pub first_arrivals: u8,
    /// Arrivals of its retries (attempt 1 and later).
    pub retry_arrivals: u8,
    /// Times the receiver processed it (built its response anew); with
    /// idempotency keys at most once, repeats answered from the stored
    /// response.
    pub processed: u8,
}

impl IdCounts {
    /// Every arrival of the request, whichever send it was.
    pub fn arrivals(&self) -> u32 {
        u32::from(self.first_arrivals) + u32::from(self.retry_arrivals)
    }
}

const ID_LEN: usize = 3;
/// Ids per control frame: 15,000 x 3 bytes is 60,000 characters of
/// base64, under the 64 KiB control frame limit.
pub const IDS_PER_FRAME: usize = 15_000;

/// One frame's worth of ids (at most [`IDS_PER_FRAME`]).
pub fn encode(ids: &[IdCounts]) -> String {
    let bytes: Vec<u8> = ids
        .iter()
        .flat_map(|c| [c.first_arrivals, c.retry_arrivals, c.processed])
        .collect();
    packed::encode(&bytes)
}

pub fn decode(text: &str) -> Result<Vec<IdCounts>, PackedError> {
    packed::decode(text, ID_LEN, "processed counts", |c| IdCounts {
        first_arrivals: c[0],
        retry_arrivals: c[1],
        processed: c[2],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ControlMsg;

    #[test]
    fn counts_round_trip() {
        let ids: Vec<IdCounts> = (0..7u8)
            .map(|i| IdCounts {
                first_arrivals: i % 2,
                retry_arrivals: i,
                processed: 255 - i,
            })
            .collect();
        assert_eq!(decode(&encode(&ids)).unwrap(), ids);
        assert_eq!(decode("").unwrap(), vec![]);
        assert_eq!(ids[3].arrivals(), 4);
    }

    #[test]
    fn a_full_batch_fits_one_control_frame() {
        let ids = vec![
            IdCounts {
                first_arrivals: 255,
                retry_arrivals: 255,
                processed: 255,
            };
            IDS_PER_FRAME
        ];
        let frame = ControlMsg::Processed {
            first: u64::MAX,
            counts: encode(&ids),
        }
        .encode();
        assert!(ControlMsg::split(&frame).unwrap().is_some());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(decode("!!"), Err(PackedError::Base64 { .. })));
        assert_eq!(
            decode("AAAAAA==").unwrap_err().to_string(),
            "processed counts of 4 bytes are not a whole number of 3-byte records"
        );
    }
}
