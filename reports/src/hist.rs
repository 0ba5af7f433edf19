//! Histograms as stored in results: HdrHistogram V2 with deflate, base64 —
//! the encoding HdrHistogram's Java, Python, Go and C readers decode.
//! A histogram's header says how many counts to allocate, so it is checked
//! against what transbench writes before anything is decoded.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hdrhistogram::serialization::{DeserializeError, Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read};
use thiserror::Error;

/// Significant decimal digits kept by every latency histogram.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// The longest latency or lag transbench records: an hour, in ns. Each is
/// a time within one trial, and no loss timeout is longer (the sender
/// refuses one); [`record`] clamps to it, as at least an hour.
pub const MAX_VALUE_NS: u64 = 3_600_000_000_000;

/// The highest value a histogram in results may track: the top of the
/// bucket an hour falls in (an auto-resizing histogram grows a bucket at a
/// time), 2^42 - 1 ns, 73 minutes. So whatever transbench writes, it reads
/// back; a wider range is a file transbench did not write, or a corrupt one.
pub const MAX_TRACKABLE_NS: u64 = MAX_VALUE_NS.next_power_of_two() - 1;

/// The most values one histogram in results may hold: 2^48, a million a
/// second for nine years. hdrhistogram adds counts up in `u64` unchecked
/// (its percentiles: a panic where overflow is checked, wrong figures
/// where not), so a histogram whose counts come near that is refused as
/// corrupt; at this bound, even 10,000 trials' histograms added together
/// (a report merges a cell's) stay far from it.
pub const MAX_HISTOGRAM_COUNT: u64 = 1 << 48;

/// The most memory a decoded histogram's counts may take: about twice
/// what 3 significant digits from 1 ns to [`MAX_TRACKABLE_NS`] need
/// (33,792 counts, 264 KiB), so a few hundred in a report stay small.
pub const MAX_HISTOGRAM_BYTES: u64 = 512 * 1024;

/// HdrHistogram's V2 cookies, plain and deflated (`V2 | 0x10` as its
/// serializers write them).
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_DEFLATE_COOKIE: u32 = 0x1c84_9314;
/// A V2 header: cookie, payload length, normalizing offset, significant
/// digits, lowest and highest trackable values, integer-to-double ratio.
const V2_HEADER_LEN: usize = 40;
/// The longest varint a count takes in a V2 payload.
const MAX_VARINT_LEN: u64 = 9;

#[derive(Debug, Error)]
pub enum HistError {
    #[error("histogram is not valid base64")]
    Base64(#[from] base64::DecodeError),
    #[error("histogram does not decode as HdrHistogram V2: {0:?}")]
    Decode(hdrhistogram::serialization::DeserializeError),
    #[error("histogram does not encode: {0:?}")]
    Encode(hdrhistogram::serialization::V2DeflateSerializeError),
    #[error(
        "histogram tracks values from {low} to {high} ns at {digits} significant digits ({bytes} bytes \
         of counts): transbench's track values to {MAX_TRACKABLE_NS} ns (an hour and its bucket) in at \
         most {MAX_HISTOGRAM_BYTES} bytes, so this one is corrupt or was not written by transbench"
    )]
    OutOfBounds {
        low: u64,
        high: u64,
        digits: u32,
        bytes: u64,
    },
    #[error("histogram says its counts take {len} bytes, more than its range can ({max}): it is corrupt")]
    Payload { len: u64, max: u64 },
    #[error("histogram skips {run} empty counts at once, more than its {counts} counts: it is corrupt")]
    Skip { run: u64, counts: u64 },
    #[error("histogram holds more than {MAX_HISTOGRAM_COUNT} values ({total} so far): it is corrupt")]
    Count { total: u64 },
}

/// An auto-resizing histogram of nanoseconds with 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    let mut h = Histogram::new(SIGNIFICANT_DIGITS).expect("3 significant digits is valid");
    h.auto(true);
    h
}

/// Records `v` in a histogram from [`new_histogram`]; 0 counts as 1 ns
/// (the lowest value an auto-resizing histogram takes), and anything over
/// [`MAX_VALUE_NS`] as that: at least an hour.
pub fn record(h: &mut Histogram<u64>, v: u64) {
    h.record(v.clamp(1, MAX_VALUE_NS))
        .expect("auto-resizing histogram accepts any value");
}

pub fn encode_hdr(h: &Histogram<u64>) -> Result<String, HistError> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .map_err(HistError::Encode)?;
    Ok(B64.encode(bytes))
}

/// Decodes a histogram of results, once its header is within
/// [`MAX_TRACKABLE_NS`] and [`MAX_HISTOGRAM_BYTES`].
pub fn decode_hdr(b64: &str) -> Result<Histogram<u64>, HistError> {
    let bytes = B64.decode(b64.trim())?;
    check_header(&bytes)?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(HistError::Decode)
}

/// Refuses a histogram whose header asks for more than transbench writes:
/// a range past [`MAX_TRACKABLE_NS`], counts past [`MAX_HISTOGRAM_BYTES`],
/// a payload longer than those counts can be; then one whose payload
/// skips more counts than there are or holds more than
/// [`MAX_HISTOGRAM_COUNT`] values (see [`check_payload`]). Reads the
/// payload as it inflates, so nothing large is allocated.
fn check_header(bytes: &[u8]) -> Result<(), HistError> {
    let truncated = || {
        HistError::Decode(DeserializeError::IoError(
            std::io::ErrorKind::UnexpectedEof.into(),
        ))
    };
    let cookie = |b: &[u8]| {
        b.get(..4)
            .map(|c| u32::from_be_bytes(c.try_into().expect("4 bytes")))
    };
    let mut header = [0u8; V2_HEADER_LEN];
    let payload: Box<dyn BufRead + '_> = match cookie(bytes).ok_or_else(truncated)? {
        V2_COOKIE => {
            header.copy_from_slice(bytes.get(..V2_HEADER_LEN).ok_or_else(truncated)?);
            Box::new(&bytes[V2_HEADER_LEN..])
        }
        V2_DEFLATE_COOKIE => {
            let deflated = bytes.get(8..).ok_or_else(truncated)?;
            let mut inflated = std::io::BufReader::new(flate2::read::ZlibDecoder::new(deflated));
            inflated
                .read_exact(&mut header)
                .map_err(|e| HistError::Decode(DeserializeError::IoError(e)))?;
            if cookie(&header) != Some(V2_COOKIE) {
                return Err(HistError::Decode(DeserializeError::InvalidCookie));
            }
            Box::new(inflated)
        }
        _ => return Err(HistError::Decode(DeserializeError::InvalidCookie)),
    };
    let word = |at: usize| u32::from_be_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    let long = |at: usize| u64::from_be_bytes(header[at..at + 8].try_into().expect("8 bytes"));
    let (payload_len, digits, low, high) = (word(4), word(12), long(16), long(24));
    let counts =
        counts_len(low, high, digits).ok_or(HistError::Decode(DeserializeError::InvalidParameters))?;
    let bytes = counts * 8;
    if high > MAX_TRACKABLE_NS || bytes > MAX_HISTOGRAM_BYTES {
        return Err(HistError::OutOfBounds {
            low,
            high,
            digits,
            bytes,
        });
    }
    let max = counts * MAX_VARINT_LEN;
    if u64::from(payload_len) > max {
        return Err(HistError::Payload {
            len: payload_len.into(),
            max,
        });
    }
    check_payload(payload.take(payload_len.into()), counts)
}

/// A V2 payload is LEB128 varints (at most 9 bytes, the 9th taken whole),
/// each a count or, zig-zag negative, a run of empty counts to skip.
/// hdrhistogram's deserializer negates a run in 64 bits, and the longest
/// one a varint holds (2^63) overflows: a panic where overflow is checked
/// (debug builds, the tests). No run is longer than the counts in a
/// histogram that is not corrupt, so a longer one is refused here; so are
/// counts adding up past [`MAX_HISTOGRAM_COUNT`]. Stops quietly where the
/// payload does: the deserializer says it is short.
fn check_payload(payload: impl BufRead, counts: u64) -> Result<(), HistError> {
    let mut total = 0u64;
    let mut bytes = payload.bytes().map_while(Result::ok);
    while let Some(first) = bytes.next() {
        let (mut value, mut b, mut shift) = (u64::from(first & 0x7f), first, 7);
        while b & 0x80 != 0 && shift < 63 {
            let Some(next) = bytes.next() else { return Ok(()) };
            b = next;
            let bits = if shift == 56 { b } else { b & 0x7f };
            value |= u64::from(bits) << shift;
            shift += 7;
        }
        if value & 1 == 1 {
            let run = (value >> 1) + 1;
            if run > counts {
                return Err(HistError::Skip { run, counts });
            }
        } else {
            total = total.saturating_add(value >> 1);
            if total > MAX_HISTOGRAM_COUNT {
                return Err(HistError::Count { total });
            }
        }
    }
    Ok(())
}

/// How many counts an HdrHistogram of these bounds holds, as its own
/// constructor lays them out: a power-of-two number of sub-buckets for
/// `digits`, buckets doubling from `low` until one covers `high`. `None`
/// where HdrHistogram refuses the bounds.
fn counts_len(low: u64, high: u64, digits: u32) -> Option<u64> {
    if digits > 5 || low == 0 || high < low.saturating_mul(2) {
        return None;
    }
    let sub_buckets = (2 * 10u64.pow(digits)).next_power_of_two();
    let unit_magnitude = low.ilog2();
    if unit_magnitude + sub_buckets.ilog2() > 63 {
        return None;
    }
    let mut smallest_untrackable = sub_buckets << unit_magnitude;
    let mut buckets = 1;
    while smallest_untrackable <= high {
        if smallest_untrackable > u64::MAX / 2 {
            buckets += 1;
            break;
        }
        smallest_untrackable <<= 1;
        buckets += 1;
    }
    Some((buckets + 1) * (sub_buckets / 2))
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

    /// A V2 histogram's header with these bounds and no counts, deflated
    /// as transbench writes it or plain, in base64.
    fn crafted(digits: u32, low: u64, high: u64, payload_len: u32, deflate: bool) -> String {
        crafted_with(digits, low, high, payload_len, &[], deflate)
    }

    /// The same, with this payload after the header.
    fn crafted_with(
        digits: u32,
        low: u64,
        high: u64,
        payload_len: u32,
        payload: &[u8],
        deflate: bool,
    ) -> String {
        use std::io::Write;
        let mut v2 = V2_COOKIE.to_be_bytes().to_vec();
        for word in [payload_len, 0, digits] {
            v2.extend(word.to_be_bytes());
        }
        v2.extend(low.to_be_bytes());
        v2.extend(high.to_be_bytes());
        v2.extend(1.0f64.to_be_bytes());
        v2.extend(payload);
        if !deflate {
            return B64.encode(v2);
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&v2).unwrap();
        let z = z.finish().unwrap();
        let mut out = V2_DEFLATE_COOKIE.to_be_bytes().to_vec();
        out.extend((z.len() as u32).to_be_bytes());
        out.extend(z);
        B64.encode(out)
    }

    #[test]
    fn an_extreme_range_is_refused_before_it_is_allocated() {
        for deflate in [true, false] {
            // 5 digits from 1 ns to u64::MAX: 6.2 million counts, 49 MB.
            let err = decode_hdr(&crafted(5, 1, u64::MAX, 0, deflate)).unwrap_err();
            assert!(
                matches!(err, HistError::OutOfBounds { high: u64::MAX, digits: 5, bytes, .. } if bytes > 40_000_000),
                "{err}"
            );
            assert!(err.to_string().contains("not written by transbench"), "{err}");
            // Past an hour's bucket, however few counts.
            let err = decode_hdr(&crafted(1, 1, MAX_TRACKABLE_NS + 1, 0, deflate)).unwrap_err();
            assert!(matches!(err, HistError::OutOfBounds { .. }), "{err}");
            // Within the hour, but 4 digits over all of it: 3.8 MB.
            let err = decode_hdr(&crafted(4, 1, MAX_TRACKABLE_NS, 0, deflate)).unwrap_err();
            assert!(matches!(err, HistError::OutOfBounds { .. }), "{err}");
            // A payload longer than its counts can be.
            let err = decode_hdr(&crafted(3, 1, 1_000_000, u32::MAX, deflate)).unwrap_err();
            assert!(matches!(err, HistError::Payload { .. }), "{err}");
            // Bounds HdrHistogram itself refuses.
            assert!(decode_hdr(&crafted(6, 1, 1_000, 0, deflate)).is_err());
            assert!(decode_hdr(&crafted(3, 0, 1_000, 0, deflate)).is_err());
            // The widest range transbench writes is fine.
            let empty = decode_hdr(&crafted(3, 1, MAX_TRACKABLE_NS, 0, deflate)).unwrap();
            assert!(empty.is_empty());
        }
    }

    #[test]
    fn a_skip_past_the_counts_is_refused_before_it_overflows() {
        // Found by fuzzing: a run of 2^63 empty counts (zig-zag -2^63 in a
        // 9-byte varint) overflowed hdrhistogram's negation.
        let longest = [0xff; 9];
        // One count of 5 (zig-zag 10), a run of 3 empty ones (-3: 5), one of 1.
        let fine = [10, 5, 2];
        for deflate in [true, false] {
            let err = decode_hdr(&crafted_with(3, 1, 1_000_000, 9, &longest, deflate)).unwrap_err();
            assert!(
                matches!(err, HistError::Skip { run, .. } if run == 1 << 63),
                "{err}"
            );
            let h = decode_hdr(&crafted_with(3, 1, 1_000_000, 3, &fine, deflate)).unwrap();
            assert_eq!((h.len(), h.count_at(0), h.count_at(4)), (6, 5, 1));
        }
    }

    /// A LEB128-64b9B varint, as V2 payloads hold them.
    fn varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..8 {
            if v < 0x80 {
                out.push(v as u8);
                return out;
            }
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
        out
    }

    #[test]
    fn counts_past_the_most_a_histogram_holds_are_refused() {
        // Found by fuzzing: counts adding up past u64 overflowed
        // hdrhistogram's percentile scan.
        let twice = [varint(u64::MAX - 1), varint(u64::MAX - 1)].concat();
        let at_most = [varint(2 * MAX_HISTOGRAM_COUNT - 2), varint(2)].concat();
        let over = [varint(2 * MAX_HISTOGRAM_COUNT), varint(2)].concat();
        for deflate in [true, false] {
            for payload in [&twice, &over] {
                let text = crafted_with(3, 1, 1_000_000, payload.len() as u32, payload, deflate);
                let err = decode_hdr(&text).unwrap_err();
                assert!(matches!(err, HistError::Count { .. }), "{err}");
            }
            let text = crafted_with(3, 1, 1_000_000, at_most.len() as u32, &at_most, deflate);
            let h = decode_hdr(&text).unwrap();
            assert_eq!(h.len(), MAX_HISTOGRAM_COUNT);
            assert_eq!(h.value_at_quantile(0.5), 0);
        }
    }

    #[test]
    fn what_transbench_records_it_reads_back() {
        let mut h = new_histogram();
        record(&mut h, 0);
        record(&mut h, u64::MAX);
        assert!(h.equivalent(h.max(), MAX_VALUE_NS), "clamped to an hour");
        let back = decode_hdr(&encode_hdr(&h).unwrap()).unwrap();
        assert_eq!((back.len(), back.min()), (2, 1));
        assert_eq!(back.distinct_values(), 33_792, "the most transbench writes");
    }

    #[test]
    fn counts_are_counted_as_hdrhistogram_lays_them_out() {
        for digits in 0..=5u8 {
            for (low, high) in [
                (1, 2),
                (1, 1_000),
                (1, MAX_TRACKABLE_NS),
                (1_000, 1 << 40),
                (7, u64::MAX),
            ] {
                let h = Histogram::<u64>::new_with_bounds(low, high, digits).unwrap();
                assert_eq!(
                    counts_len(low, high, digits.into()),
                    Some(h.distinct_values() as u64),
                    "{digits} digits, {low}..{high}"
                );
                if digits >= 4 {
                    break; // Wider ranges at 4 and 5 digits take 10 to 50 MB.
                }
            }
        }
        assert_eq!(counts_len(1, 1, 3), None);
        assert_eq!(counts_len(1, 100, 6), None);
    }

    #[test]
    fn garbage_hdr_is_an_error() {
        assert!(decode_hdr("not base64!").is_err());
        assert!(decode_hdr(&B64.encode(b"abcdefgh")).is_err());
    }
}
