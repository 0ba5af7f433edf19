//! Histograms as stored in results: HdrHistogram V2 with deflate, base64 —
//! the encoding HdrHistogram's Java, Python, Go and C readers decode.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Significant decimal digits kept by every latency histogram.
pub const SIGNIFICANT_DIGITS: u8 = 3;

#[derive(Debug, Error)]
pub enum HistError {
    #[error("histogram is not valid base64")]
    Base64(#[from] base64::DecodeError),
    #[error("histogram does not decode as HdrHistogram V2: {0:?}")]
    Decode(hdrhistogram::serialization::DeserializeError),
    #[error("histogram does not encode: {0:?}")]
    Encode(hdrhistogram::serialization::V2DeflateSerializeError),
}

/// An auto-resizing histogram of nanoseconds with 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    let mut h = Histogram::new(SIGNIFICANT_DIGITS).expect("3 significant digits is valid");
    h.auto(true);
    h
}

/// Records `v` in a histogram from [`new_histogram`]; 0 counts as 1 ns
/// (the lowest value an auto-resizing histogram takes).
pub fn record(h: &mut Histogram<u64>, v: u64) {
    h.record(v.max(1))
        .expect("auto-resizing histogram accepts any value");
}

pub fn encode_hdr(h: &Histogram<u64>) -> Result<String, HistError> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .map_err(HistError::Encode)?;
    Ok(B64.encode(bytes))
}

pub fn decode_hdr(b64: &str) -> Result<Histogram<u64>, HistError> {
    let bytes = B64.decode(b64.trim())?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(HistError::Decode)
}

/// A latency metric in results: the usual percentiles (ns) and the full
/// histogram they were read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
    pub hdr: String,
}

impl LatencySummary {
    /// Percentiles are HdrHistogram's "value at percentile" (the highest
    /// value equivalent to it); an empty histogram gives all zeros.
    pub fn from_histogram(h: &Histogram<u64>) -> Result<Self, HistError> {
        let empty = h.is_empty();
        let at = |q: f64| if empty { 0 } else { h.value_at_quantile(q) };
        Ok(LatencySummary {
            count: h.len(),
            min: if empty { 0 } else { h.min() },
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: if empty { 0 } else { h.max() },
            mean: if empty { 0.0 } else { h.mean() },
            hdr: encode_hdr(h)?,
        })
    }

    pub fn histogram(&self) -> Result<Histogram<u64>, HistError> {
        decode_hdr(&self.hdr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_keeps_every_count() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 1_000).unwrap();
        }
        h.record(5_000_000_000).unwrap();
        let back = decode_hdr(&encode_hdr(&h).unwrap()).unwrap();
        assert_eq!(back.len(), h.len());
        assert_eq!(back.max(), h.max());
        assert_eq!(back.value_at_quantile(0.99), h.value_at_quantile(0.99));
    }

    #[test]
    fn hdr_is_v2_deflate() {
        let mut h = new_histogram();
        h.record(42).unwrap();
        let bytes = B64.decode(encode_hdr(&h).unwrap()).unwrap();
        // V2 compressed cookie base (word-size bits masked), as the Java and
        // Python readers expect.
        let cookie = u32::from_be_bytes(bytes[..4].try_into().unwrap());
        assert_eq!(cookie & !0xf0, 0x1c84_9304);
    }

    #[test]
    fn summary_reads_percentiles_within_precision() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1_000).unwrap();
        }
        let s = LatencySummary::from_histogram(&h).unwrap();
        assert_eq!(s.count, 1000);
        let close = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 1e-3;
        assert!(close(s.p50, 500_000), "p50 {}", s.p50);
        assert!(close(s.p99, 990_000), "p99 {}", s.p99);
        assert!(close(s.max, 1_000_000), "max {}", s.max);
        assert_eq!(s.histogram().unwrap().len(), 1000);
    }

    #[test]
    fn empty_summary_is_zero_not_panic() {
        let s = LatencySummary::from_histogram(&new_histogram()).unwrap();
        assert_eq!((s.count, s.p50, s.max), (0, 0, 0));
    }

    #[test]
    fn garbage_hdr_is_an_error() {
        assert!(decode_hdr("not base64!").is_err());
        assert!(decode_hdr(&B64.encode(b"abcdefgh")).is_err());
    }
}
