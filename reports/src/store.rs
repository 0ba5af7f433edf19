//! Reading and writing results files. Writes are atomic (temp file in the
//! same directory, fsync, rename), so a reader or a crash never sees half a
//! file.

use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

use crate::schema::{RunResults, READABLE_SCHEMAS};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot write {path}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} ends before the JSON does (truncated: a copy cut short, or a disk that filled?)")]
    Truncated {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} is not a transbench results file")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} has schema {found:?}; this build reads {}", READABLE_SCHEMAS.join(" and "))]
    Schema { path: PathBuf, found: String },
}

pub fn write_atomic(path: &Path, results: &RunResults) -> Result<(), StoreError> {
    let mut json = serde_json::to_vec_pretty(results).expect("results always serialize");
    json.push(b'\n');
    write_bytes_atomic(path, &json)
}

/// Any file, written as results are: whole or not at all.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let err = |source| StoreError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

pub fn read_results(path: &Path) -> Result<RunResults, StoreError> {
    let bytes = std::fs::read(path).map_err(|source| StoreError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_results(path, &bytes)
}

/// What [`read_results`] makes of a file's bytes; `path` only names the
/// file in errors.
pub fn parse_results(path: &Path, bytes: &[u8]) -> Result<RunResults, StoreError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|source| {
        let path = path.to_path_buf();
        if source.is_eof() {
            StoreError::Truncated { path, source }
        } else {
            StoreError::Parse { path, source }
        }
    })?;
    let found = value.get("schema").and_then(|s| s.as_str()).unwrap_or("(none)");
    if !READABLE_SCHEMAS.contains(&found) {
        return Err(StoreError::Schema {
            path: path.to_path_buf(),
            found: found.to_string(),
        });
    }
    serde_json::from_value(value).map_err(|source| StoreError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::hist::{new_histogram, LatencySummary};
    use crate::schema::*;
    use transbench_wire::{ReceiverReport, Transport};

    /// `n` trials in each of `cells` (transport, cell id), with latencies
    /// around `center` ns (a seeded 3 % spread) and 1 lost message in
    /// 1000.
    pub(crate) fn synthetic(cells: &[(Transport, &str)], n: u32, center: f64, seed: u64) -> RunResults {
        let template = sample().trials.remove(0);
        let mut r = sample();
        r.trials.clear();
        let mut rng = linkemu::rng::Prng::new(seed);
        for (transport, cell) in cells {
            for rep in 0..n {
                let jitter = 1.0 + 0.06 * (rng.next_u32() as f64 / u32::MAX as f64 - 0.5);
                let mut h = crate::hist::new_histogram();
                for i in 0..1000u64 {
                    h.record((center * jitter) as u64 + i * 10).unwrap();
                }
                let mut t = template.clone();
                t.id = format!("{cell}-{rep}");
                t.transport = *transport;
                t.cell = Some(cell.to_string());
                t.repetition = Some(rep);
                t.lat = crate::hist::LatencySummary::from_histogram(&h).unwrap();
                t.counters.sent = 1000;
                t.counters.received = 999;
                t.counters.lost = 1;
                t.duration_ns = 1_000_000_000;
                r.trials.push(t);
            }
        }
        r
    }

    pub(crate) fn sample() -> RunResults {
        let mut h = new_histogram();
        h.record(25_000).unwrap();
        let lat = LatencySummary::from_histogram(&h).unwrap();
        let mut r = RunResults::new(
            "2026-11-27T10:00:00Z".into(),
            HostInfo {
                hostname: "h".into(),
                kernel: "6.1".into(),
                cpu_model: "cpu".into(),
                cores: 2,
                tool_version: "0.1.0".into(),
                git_sha: None,
                congestion_control: Some("cubic".into()),
                interface: None,
            },
        );
        r.trials.push(TrialResult {
            id: "tcp+tls-1".into(),
            transport: Transport::TcpTls,
            workload: transbench_wire::Workload::Rr,
            params: TrialParams {
                rate: Some(1000.0),
                size: 64,
                duration_ns: 1,
                warmup_ns: 0,
                closed_loop: false,
                loss_timeout_ns: 2,
                quic_stream: None,
                peer: "127.0.0.1:1".into(),
                tcp_congestion: None,
                quic_congestion: None,
                streams: None,
                bitrate: None,
                gso: None,
                max_send_lag_ns: Some(1_000_000),
            },
            start_time: "2026-11-27T10:00:00Z".into(),
            duration_ns: 1,
            valid: true,
            invalid_reasons: vec![],
            missed_schedule: false,
            attempt: 1,
            superseded_by: None,
            counters: Counters::default(),
            latency_kind: LatencyKind::Rtt,
            lat: lat.clone(),
            send_lag: lat,
            cpu_ns_per_msg: 0.0,
            pacer_busy_ns_per_msg: 0.0,
            receiver: ReceiverReport::default(),
            impairment: None,
            hol: None,
            udp: None,
            churn: None,
            bulk: None,
            load: None,
            delivery: None,
            heartbeat: None,
            outages: Vec::new(),
            receiver_fault: None,
            reconnects: None,
            receiver_report_missing: false,
            schedule_timeline: None,
            quic_datagrams: None,
            cell: None,
            repetition: None,
            baseline: false,
            sender_netns: None,
            sender_host: None,
            clock: None,
        });
        r
    }

    #[test]
    fn write_then_read_round_trips_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        let r = sample();
        write_atomic(&path, &r).unwrap();
        write_atomic(&path, &r).unwrap();
        assert_eq!(read_results(&path).unwrap(), r);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("results.json")]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"transport\": \"tcp+tls\""), "{text}");
    }

    #[test]
    fn floats_read_back_exactly() {
        // Found by fuzzing: serde_json's default float parser read this
        // one's shortest form back one ulp lower.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        let mut r = sample();
        r.trials[0].cpu_ns_per_msg = 0.41347008909995475;
        write_atomic(&path, &r).unwrap();
        assert_eq!(read_results(&path).unwrap(), r);
    }

    #[test]
    fn other_schema_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(&path, r#"{"schema":"transbench/0"}"#).unwrap();
        let e = read_results(&path).unwrap_err().to_string();
        assert!(e.contains("transbench/0"), "{e}");
    }

    #[test]
    fn write_to_missing_directory_says_where() {
        let e = write_atomic(Path::new("/nonexistent-dir/x.json"), &sample()).unwrap_err();
        assert!(e.to_string().contains("/nonexistent-dir/x.json"));
    }
}
