//! The `hdr` strings in results, and the `.hlog` interval logs of reports,
//! decode with HdrHistogram's own readers (Python `hdrhistogram`, Java
//! `org.HdrHistogram`) to the same counts and percentiles. Needs python3 with `hdrhistogram` and java with
//! HdrHistogram's jar (Debian: libhdrhistogram-java); `.ci/run` installs
//! them. Elsewhere a missing reader skips its test with the reason; in CI
//! (CI=true) it fails.

use hdrhistogram::Histogram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};
use transbench_reports::hdrfiles::{hlog, Interval};
use transbench_reports::{encode_hdr, new_histogram};

const JAVA_JAR: &str = "/usr/share/java/hdrhistogram.jar";

fn sample() -> Histogram<u64> {
    let mut h = new_histogram();
    // A latency-like shape: a body around 40 us and a tail to 2 s.
    let mut x = 12345u64;
    for _ in 0..20_000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        h.record(30_000 + (x >> 33) % 20_000).unwrap();
    }
    for v in [1_000_000u64, 5_000_000, 2_000_000_000] {
        h.record(v).unwrap();
    }
    h
}

fn expected(h: &Histogram<u64>) -> Vec<u64> {
    vec![
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.max(),
    ]
}

fn missing(what: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} (CI=true: .ci/run must install it)");
    }
    eprintln!("skipping: {what}");
}

fn parse(out: &[u8]) -> Vec<u64> {
    String::from_utf8_lossy(out)
        .split_whitespace()
        .map(|w| w.parse::<f64>().expect("a number") as u64)
        .collect()
}

/// `python3 -c SCRIPT ARG`'s output; `None` (having said why, or failed
/// in CI) when python3 or its `hdrhistogram` package cannot run it.
fn python(script: &str, arg: &str) -> Option<Vec<u8>> {
    match Command::new("python3").args(["-c", script, arg]).output() {
        Ok(o) if o.status.success() => Some(o.stdout),
        Ok(o) => {
            missing(&format!(
                "python3 cannot run the reader with hdrhistogram: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            None
        }
        Err(e) => {
            missing(&format!("python3 not runnable: {e}"));
            None
        }
    }
}

#[test]
fn python_reader_agrees() {
    let h = sample();
    let script = "import sys\nfrom hdrh.histogram import HdrHistogram\nh = HdrHistogram.decode(sys.argv[1])\n\
                  print(h.get_total_count(), h.get_value_at_percentile(50.0), h.get_value_at_percentile(99.0), h.get_max_value())";
    let Some(out) = python(script, &encode_hdr(&h).unwrap()) else {
        return;
    };
    assert_eq!(parse(&out), expected(&h));
}

#[test]
fn java_reader_agrees() {
    if !Path::new(JAVA_JAR).exists() {
        return missing(&format!(
            "{JAVA_JAR} not found (apt-get install libhdrhistogram-java)"
        ));
    }
    let h = sample();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/Decode.java");
    let out = match Command::new("java")
        .args(["-cp", JAVA_JAR])
        .arg(&source)
        .arg(encode_hdr(&h).unwrap())
        .output()
    {
        Ok(o) => o,
        Err(e) => return missing(&format!("java not runnable: {e}")),
    };
    assert!(
        out.status.success(),
        "java failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(parse(&out.stdout), expected(&h));
}

/// Two intervals, as a report writes a cell of two trials.
fn log_file(dir: &Path) -> (std::path::PathBuf, Vec<Histogram<u64>>) {
    let a = sample();
    let mut b = new_histogram();
    for v in 1..=5_000u64 {
        b.record(v * 7_919).unwrap();
    }
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    let text = hlog(
        "cell rr tcp none, `lat` of each trial",
        &[
            Interval {
                start: t0,
                length: Duration::from_secs(3),
                histogram: &a,
            },
            Interval {
                start: t0 + Duration::from_millis(3_500),
                length: Duration::from_secs(3),
                histogram: &b,
            },
        ],
    )
    .unwrap();
    let path = dir.join("cell.hlog");
    std::fs::write(&path, text).unwrap();
    (path, vec![a, b])
}

fn per_interval(hs: &[Histogram<u64>]) -> Vec<u64> {
    hs.iter()
        .flat_map(|h| {
            [
                h.len(),
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max(),
            ]
        })
        .collect()
}

#[test]
fn python_log_reader_reads_the_hlog() {
    let dir = tempfile::tempdir().unwrap();
    let (path, hs) = log_file(dir.path());
    let script = "import sys\nfrom hdrh.histogram import HdrHistogram\nfrom hdrh.log import HistogramLogReader\n\
                  r = HistogramLogReader(sys.argv[1], HdrHistogram(1, 3600 * 10**9, 3))\n\
                  while True:\n    h = r.get_next_interval_histogram()\n    if h is None: break\n    \
                  print(h.get_total_count(), h.get_value_at_percentile(50.0), h.get_value_at_percentile(99.0), \
                  h.get_value_at_percentile(99.9), h.get_max_value())";
    let Some(out) = python(script, path.to_str().unwrap()) else {
        return;
    };
    assert_eq!(parse(&out), per_interval(&hs));
}

#[test]
fn java_log_reader_reads_the_hlog() {
    if !Path::new(JAVA_JAR).exists() {
        return missing(&format!(
            "{JAVA_JAR} not found (apt-get install libhdrhistogram-java)"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let (path, hs) = log_file(dir.path());
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/ReadLog.java");
    let out = match Command::new("java")
        .args(["-cp", JAVA_JAR])
        .arg(&source)
        .arg(&path)
        .output()
    {
        Ok(o) => o,
        Err(e) => return missing(&format!("java not runnable: {e}")),
    };
    assert!(
        out.status.success(),
        "java failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(parse(&out.stdout), per_interval(&hs));
}
