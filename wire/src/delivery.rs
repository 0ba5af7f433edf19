//! What the receiver of a one-way workload hands back: each message it
//! delivered to the application and when. Packed 20 bytes per record
//! (stream u32, seq u64, delivered ns u64; big-endian), base64 in
//! [`ControlMsg::Deliveries`](crate::ControlMsg::Deliveries) frames.

use crate::packed::{self, PackedError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub stream: u32,
    pub seq: u64,
    /// CLOCK_MONOTONIC of the receiver, ns.
    pub delivered_ns: u64,
}

const RECORD_LEN: usize = 20;
/// Records per control frame: 2000 x 20 bytes is ~53 KiB of base64, under
/// the 64 KiB control frame limit.
pub const RECORDS_PER_FRAME: usize = 2000;

/// One frame's worth of records (at most [`RECORDS_PER_FRAME`]).
pub fn encode(records: &[Delivery]) -> String {
    let mut bytes = Vec::with_capacity(records.len() * RECORD_LEN);
    for r in records {
        bytes.extend_from_slice(&r.stream.to_be_bytes());
        bytes.extend_from_slice(&r.seq.to_be_bytes());
        bytes.extend_from_slice(&r.delivered_ns.to_be_bytes());
    }
    packed::encode(&bytes)
}

pub fn decode(text: &str) -> Result<Vec<Delivery>, PackedError> {
    packed::decode(text, RECORD_LEN, "delivery records", |c| Delivery {
        stream: u32::from_be_bytes(c[0..4].try_into().expect("4 bytes")),
        seq: u64::from_be_bytes(c[4..12].try_into().expect("8 bytes")),
        delivered_ns: u64::from_be_bytes(c[12..20].try_into().expect("8 bytes")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ControlMsg;

    #[test]
    fn records_round_trip() {
        let records: Vec<Delivery> = (0..5)
            .map(|i| Delivery {
                stream: i as u32,
                seq: u64::MAX - i,
                delivered_ns: i * 1_000_000_007,
            })
            .collect();
        assert_eq!(decode(&encode(&records)).unwrap(), records);
        assert_eq!(decode("").unwrap(), vec![]);
    }

    #[test]
    fn a_full_batch_fits_one_control_frame() {
        let records = vec![
            Delivery {
                stream: u32::MAX,
                seq: u64::MAX,
                delivered_ns: u64::MAX,
            };
            RECORDS_PER_FRAME
        ];
        let frame = ControlMsg::Deliveries {
            records: encode(&records),
        }
        .encode();
        assert!(ControlMsg::split(&frame).unwrap().is_some());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(decode("!!"), Err(PackedError::Base64 { .. })));
        assert_eq!(
            decode("AAAA"),
            Err(PackedError::Length {
                what: "delivery records",
                len: 3,
                record_len: RECORD_LEN
            })
        );
    }
}
