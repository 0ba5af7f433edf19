//! HdrHistogram's own file formats, for its plotters and readers: the
//! percentile distribution text (`.hgrm`) and the interval log (`.hlog`,
//! V2 histograms with deflate, base64).

use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use std::time::{Duration, SystemTime};

/// Values in files are milliseconds: histograms hold nanoseconds.
pub const NS_PER_MS: f64 = 1e6;

/// The percentile distribution as HdrHistogram's
/// `outputPercentileDistribution` prints it (5 ticks per half distance),
/// values in milliseconds. Each row's value is the histogram's value at
/// that percentile (`getValueAtPercentile`), the same figure the results'
/// p50, p99 and p99.9 are; the iterator's own value can sit one recorded
/// value higher where the percentile falls between two.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::from("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
    if h.is_empty() {
        out.push_str(&footer(h));
        return out;
    }
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let value = h.value_at_quantile(q) as f64 / NS_PER_MS;
        if q < 1.0 {
            out.push_str(&format!(
                "{value:12.3} {q:2.12} {total:10} {:14.2}\n",
                1.0 / (1.0 - q)
            ));
        } else {
            out.push_str(&format!("{value:12.3} {q:2.12} {total:10}\n"));
        }
    }
    out.push_str(&footer(h));
    out
}

fn footer(h: &Histogram<u64>) -> String {
    let (mean, sd, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (
            h.mean() / NS_PER_MS,
            h.stdev() / NS_PER_MS,
            h.max() as f64 / NS_PER_MS,
        )
    };
    format!(
        "#[Mean    = {mean:12.3}, StdDeviation   = {sd:12.3}]\n\
         #[Max     = {max:12.3}, Total count    = {:12}]\n\
         #[Buckets = {:12}, SubBuckets     = {:12}]\n",
        h.len(),
        h.buckets(),
        sub_buckets(h.sigfig())
    )
}

/// HdrHistogram's sub-bucket count for a precision: the power of two that
/// holds 2 x 10^digits values at single-unit resolution.
fn sub_buckets(digits: u8) -> u64 {
    let single_unit = 2 * 10u64.pow(digits as u32);
    single_unit.next_power_of_two()
}

/// One interval of a log: a trial's histogram, when it started and how
/// long it measured.
pub struct Interval<'a> {
    pub start: SystemTime,
    pub length: Duration,
    pub histogram: &'a Histogram<u64>,
}

/// An interval log as HdrHistogram's `HistogramLogWriter` writes it:
/// a StartTime header, the column legend, then one line per interval
/// (start relative to StartTime, length, max in ms, the histogram).
pub fn hlog(comment: &str, intervals: &[Interval]) -> std::io::Result<String> {
    let start = intervals
        .iter()
        .map(|i| i.start)
        .min()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let since_epoch = start
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let mut head = String::new();
    for line in comment.lines() {
        head.push_str(&format!("#{line}\n"));
    }
    head.push_str("#[Histogram log format version 1.3]\n");
    head.push_str(&format!("#[StartTime: {since_epoch:.3} (seconds since epoch)]\n"));
    head.push_str(
        "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
    );
    let mut body = Vec::new();
    {
        let mut serializer = V2DeflateSerializer::new();
        let mut writer = IntervalLogWriterBuilder::new()
            .with_max_value_divisor(NS_PER_MS)
            .begin_log_with(&mut body, &mut serializer)?;
        for i in intervals {
            let offset = i.start.duration_since(start).unwrap_or_default();
            writer
                .write_histogram(i.histogram, offset, i.length, None)
                .map_err(|e| std::io::Error::other(format!("{e}")))?;
        }
    }
    let body = String::from_utf8(body).map_err(std::io::Error::other)?;
    // The writer's own MaxValueDivisor note is a comment; keep it after
    // the legend, where every reader skips comments.
    Ok(head + &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hist::new_histogram;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;

    fn sample() -> Histogram<u64> {
        let mut h = new_histogram();
        for i in 1..=10_000u64 {
            h.record(i * 1_000).unwrap();
        }
        h
    }

    #[test]
    fn hgrm_rows_are_the_histograms_percentiles_in_ms() {
        let h = sample();
        let text = hgrm(&h);
        let rows: Vec<(f64, f64, u64)> = text
            .lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (
                    f[0].parse().unwrap(),
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                )
            })
            .collect();
        assert!(rows.len() > 20);
        for (value, q, _) in &rows {
            let want = h.value_at_quantile(*q) as f64 / NS_PER_MS;
            assert!(
                (value - want).abs() <= want * 1e-3 + 1e-3,
                "q {q}: {value} vs {want}"
            );
        }
        let last = rows.last().unwrap();
        assert_eq!((last.1, last.2), (1.0, 10_000));
        assert!(text.contains("Total count    =        10000"));
        assert!(text.contains("SubBuckets     =         2048]"), "{text}");
    }

    #[test]
    fn hlog_decodes_to_the_same_histograms() {
        let a = sample();
        let mut b = new_histogram();
        b.record(5_000_000).unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let log = hlog(
            "transbench test",
            &[
                Interval {
                    start: t0,
                    length: Duration::from_secs(3),
                    histogram: &a,
                },
                Interval {
                    start: t0 + Duration::from_secs(4),
                    length: Duration::from_secs(3),
                    histogram: &b,
                },
            ],
        )
        .unwrap();
        assert!(log.contains("#[StartTime: 1700000000.000"));
        let mut decoded = Vec::new();
        for entry in IntervalLogIterator::new(log.as_bytes()) {
            if let LogEntry::Interval(i) = entry.unwrap() {
                use base64::Engine;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(i.encoded_histogram())
                    .unwrap();
                let h: Histogram<u64> = Deserializer::new().deserialize(&mut bytes.as_slice()).unwrap();
                decoded.push((i.start_timestamp(), h));
            }
        }
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0].1, a);
        assert_eq!(decoded[1].0, Duration::from_secs(4));
        assert_eq!(decoded[1].1.value_at_quantile(0.5), b.value_at_quantile(0.5));
    }
}
