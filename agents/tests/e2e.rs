//! Each transport end to end: a receiver and a sender as two processes of
//! the built binary on 127.0.0.1; the result file must parse and hold a
//! sane, lossless trial whose histogram decodes to its own count.

mod common;

use common::*;
use transbench_reports::{read_results, LatencyKind};

fn check_trial(transport: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let _receiver = ReceiverGuard::start(&[]);
    let o = sender(_receiver.addr, transport, &out, extra);
    assert!(o.status.success(), "{transport} sender failed: {}", stderr(&o));

    let results = read_results(&out).unwrap();
    assert_eq!(results.schema, "transbench/1.6");
    assert_eq!(results.trials.len(), 1);
    let t = &results.trials[0];
    assert_eq!(t.transport.name(), transport);
    assert_eq!(t.latency_kind, LatencyKind::Rtt);
    assert!(t.lat.count > 0, "{transport}: no latency samples");
    assert!(t.lat.p50 > 0, "{transport}: p50 is zero");
    assert!(t.lat.min <= t.lat.p50 && t.lat.p50 <= t.lat.p99 && t.lat.p99 <= t.lat.max);
    assert_eq!(t.counters.lost, 0, "{transport}: loss on loopback");
    assert_eq!(t.counters.received, t.counters.sent);
    assert_eq!(
        t.lat.count, t.counters.sent,
        "every sent request is in the histogram"
    );
    let hdr = t.lat.histogram().unwrap();
    assert_eq!(
        hdr.len(),
        t.lat.count,
        "{transport}: hdr decodes to a different count"
    );
    assert!(
        t.receiver.requests >= t.counters.sent,
        "receiver saw fewer requests than were sent"
    );
    assert_eq!(t.receiver.rejected, 0);
    if transport.starts_with("tcp") {
        let cc = t
            .params
            .tcp_congestion
            .as_deref()
            .expect("tcp records its congestion control");
        assert_eq!(
            t.receiver.tcp_congestion.as_deref(),
            Some(cc),
            "both ends pinned alike"
        );
    }
    assert!(
        t.valid || t.invalid_reasons.iter().all(|r| r.contains("send_lag")),
        "{:?}",
        t.invalid_reasons
    );

    // The raw JSON uses the documented names.
    let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(raw["trials"][0]["transport"], transport);
    for key in ["count", "min", "p50", "p90", "p99", "p999", "max", "mean", "hdr"] {
        assert!(raw["trials"][0]["lat"].get(key).is_some(), "lat.{key} missing");
    }
}

#[test]
fn udp_end_to_end() {
    check_trial("udp", &[]);
}

#[test]
fn tcp_end_to_end() {
    check_trial("tcp", &[]);
}

#[test]
fn tcp_tls_end_to_end() {
    check_trial("tcp+tls", &[]);
}

#[test]
fn quic_end_to_end() {
    check_trial("quic", &[]);
}

#[test]
fn quic_single_stream_end_to_end() {
    check_trial("quic", &["--quic-stream", "single"]);
}

#[test]
fn closed_loop_is_recorded_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let receiver = ReceiverGuard::start(&[]);
    let o = sender_command(receiver.addr, "tcp")
        .args([
            "--closed-loop",
            "--duration",
            "500ms",
            "--warmup",
            "100ms",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let t = &read_results(&out).unwrap().trials[0];
    assert!(t.params.closed_loop);
    assert_eq!(t.params.rate, None);
    // One request at a time, each sent once the previous one's answer is
    // back: their latencies add up to no more than the measured window
    // (plus the last one's, which may end past it; plus HdrHistogram's
    // 0.1 %). How many fit is the machine's business; an open loop, or
    // requests overlapping, would overfill the window.
    assert!(t.lat.count >= 2, "the loop went on: {}", t.lat.count);
    let busy = t.lat.count as f64 * t.lat.mean;
    assert!(
        busy <= 1.001 * (t.duration_ns + t.lat.max) as f64,
        "{} requests of mean {:.0} ns overlap in a {} ns window",
        t.lat.count,
        t.lat.mean,
        t.duration_ns
    );
    assert_eq!(t.send_lag.count, 0, "closed loop has no schedule to lag behind");
}

#[test]
fn run_writes_results_for_every_transport_asked() {
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(BIN)
        .args([
            "run",
            "--transport",
            "udp,tcp",
            "--duration",
            "500ms",
            "--warmup",
            "100ms",
            "--rate",
            "200",
            "--out",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("p99.9"), "summary table missing: {stdout}");
    let results = read_results(&dir.path().join("results.json")).unwrap();
    let names: Vec<_> = results.trials.iter().map(|t| t.transport.name()).collect();
    assert_eq!(names, ["udp", "tcp"]);
    assert!(results.host.cores >= 1);
    assert!(!results.host.kernel.is_empty());
}

/// `run --retry-invalid N` runs a trial the sender could not keep on
/// schedule again (a 1 ns send lag bound: every attempt misses), keeps
/// every attempt, and its summary ends saying the host missed it.
#[test]
fn run_retries_a_trial_that_missed_its_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(BIN)
        .args([
            "run",
            "--transport",
            "udp",
            "--duration",
            "300ms",
            "--warmup",
            "100ms",
        ])
        .args([
            "--rate",
            "200",
            "--max-send-lag",
            "1ns",
            "--retry-invalid",
            "1",
            "--out",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let results = read_results(&dir.path().join("results.json")).unwrap();
    let [first, second] = &results.trials[..] else {
        panic!("two attempts: {:?}", results.trials.len());
    };
    assert_eq!((first.attempt, second.attempt), (1, 2));
    assert!(first.missed_schedule && second.missed_schedule);
    assert_eq!(first.superseded_by.as_ref(), Some(&second.id));
    assert_eq!(second.superseded_by, None);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(
            "1 of 1 trials missed their send schedule on this machine (send lag p99 over 1ns: the host was \
             busy, not the network); 1 still invalid after 1 retry: rerun on a quieter machine\n"
        ),
        "{stdout}"
    );
}

/// Nobody listens on port 9 of loopback: argument checks must come first.
const NOBODY: std::net::SocketAddr =
    std::net::SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 9));

#[test]
fn bad_arguments_are_refused_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let o = sender_command(NOBODY, "udp")
        .args(["--size", "8", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--size 8"), "{}", stderr(&o));
    let o = sender_command(NOBODY, "sctp")
        .args(["--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("tcp+tls"), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn options_for_another_transport_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = sender_command(NOBODY, "tcp")
        .args(["--quic-stream", "single", "--out"])
        .arg(dir.path().join("r.json"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--quic-stream applies only to --transport quic"),
        "{}",
        stderr(&o)
    );
}
