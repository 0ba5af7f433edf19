//! Histograms as results store them (HdrHistogram V2, deflated, base64):
//! the input as that text, and as the bytes such text encodes (so the
//! fuzzer works on the binary format itself). One that decodes is
//! summarized, re-encoded, and written as HdrHistogram's own files.
//!
//! Holds: no panic; a decoded histogram is within the bounds results
//! allow (`MAX_TRACKABLE_NS`, `MAX_HISTOGRAM_BYTES`); it encodes, and
//! decodes back equal; its percentiles are in order between its least
//! and greatest values; `.hgrm` and `.hlog` are written.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hdrhistogram::Histogram;
use std::time::{Duration, SystemTime};
use transbench_reports::hdrfiles::{hgrm, hlog, Interval};
use transbench_reports::hist::{MAX_HISTOGRAM_BYTES, MAX_TRACKABLE_NS};
use transbench_reports::{decode_hdr, LatencySummary};

pub fn run(data: &[u8]) {
    if let Some(text) = crate::text(data) {
        if let Ok(h) = decode_hdr(text) {
            check(&h);
        }
    }
    if let Ok(h) = decode_hdr(&B64.encode(data)) {
        check(&h);
    }
}

/// What holds of any histogram that decoded.
pub(crate) fn check(h: &Histogram<u64>) {
    assert!(h.high() <= MAX_TRACKABLE_NS, "tracks up to {}", h.high());
    let bytes = h.distinct_values() as u64 * 8;
    assert!(bytes <= MAX_HISTOGRAM_BYTES, "{bytes} bytes of counts");
    let s = LatencySummary::from_histogram(h).expect("a decoded histogram encodes");
    let back = s.histogram().expect("an encoded histogram decodes");
    assert!(back == *h, "decodes back equal");
    assert_eq!(s.count, h.len());
    if s.count > 0 {
        let order = [s.min, s.p50, s.p90, s.p99, s.p999];
        assert!(order.windows(2).all(|w| w[0] <= w[1]), "{s:?}");
        assert!(
            h.equivalent(s.max, h.max()) && s.p999 <= h.highest_equivalent(s.max),
            "{s:?}"
        );
    }
    let _ = hgrm(h);
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let interval = Interval {
        start,
        length: Duration::from_secs(2),
        histogram: h,
    };
    hlog("fuzz", &[interval]).expect("an interval log is written");
}
