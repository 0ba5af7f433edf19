//! Clock probes against a real receiver on 127.0.0.1: it echoes them
//! between trials (never during one, never more than its cap per session),
//! and the sender's estimate of its clock finds what one host must: the
//! same clock, offset 0, within a bound a loopback round trip makes small.

mod common;

use common::*;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;
use transbench::admission::MAX_CLOCK_PROBES;
use transbench::clock::mono_now_ns;
use transbench::session::{connect, estimate_clock_offset, CLOCK_PROBES};
use transbench_analysis::clock_offset::{OffsetEstimate, MAX_DRIFT_PPM};
use transbench_wire::auth::Secret;
use transbench_wire::{ControlMsg, QuicStreamMode, Transport, WorkloadSetup};

/// What a loopback round trip through two processes leaves of the bound,
/// with room for a busy machine: far below any path worth a one-way figure.
const LOOPBACK_BOUND_NS: u64 = 1_000_000;

#[test]
fn on_one_host_the_estimate_finds_offset_zero_within_a_small_bound() {
    let dir = tempfile::tempdir().unwrap();
    let path = secret_file(dir.path(), "s", "a long enough shared secret");
    let secret = Secret::new(b"a long enough shared secret").unwrap();
    let receiver = ReceiverGuard::start(&["--secret-file", path.to_str().unwrap()]);
    let rt = transbench::single_thread_runtime().unwrap();
    let (before, after) = rt.block_on(async {
        let (mut ctl, _) = connect(receiver.addr, Some(&secret)).await.unwrap();
        let before = estimate_clock_offset(&mut ctl, CLOCK_PROBES).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = estimate_clock_offset(&mut ctl, CLOCK_PROBES).await.unwrap();
        (before, after)
    });
    for est in [before, after] {
        assert_eq!(est.exchanges, CLOCK_PROBES);
        assert!(est.offset_ns.unsigned_abs() <= est.bound_ns, "{est:?}");
        assert!(est.bound_ns < LOOPBACK_BOUND_NS, "{est:?}");
        // Half the fastest round trip, and the drift the batch allows for.
        let drift = ((est.to_ns - est.from_ns) as f64 * MAX_DRIFT_PPM * 1e-6) as u64;
        assert!(est.bound_ns <= est.min_rtt_ns / 2 + drift + 3, "{est:?}");
    }
    // Across the two: no drift on one clock, and 0 all along the line.
    let line = OffsetEstimate::bracketing(&before, &after).unwrap();
    let drift = line.drift.unwrap();
    assert!(drift.ppm.abs() <= drift.bound_ppm, "{drift:?}");
    for t in [line.from_ns, (line.from_ns + line.to_ns) / 2, line.to_ns] {
        assert!(line.offset_at(t).unsigned_abs() <= line.bound_ns, "{line:?}");
    }
}

fn session(receiver: &ReceiverGuard) -> TcpStream {
    raw_session(receiver.addr, None, Duration::from_secs(10))
        .unwrap()
        .0
}

/// The reason of the receiver's refusal, and that it closed the session.
fn refusal(s: &mut TcpStream) -> String {
    let ControlMsg::Refused { reason } = recv_msg(s) else {
        panic!("expected a refusal")
    };
    assert!(read_frame(s).is_none(), "the session stays open after: {reason}");
    reason
}

#[test]
fn the_receiver_echoes_every_probe_until_its_cap() {
    let receiver = ReceiverGuard::start(&[]);
    let mut s = session(&receiver);
    for _ in 0..MAX_CLOCK_PROBES {
        let t1 = mono_now_ns();
        s.write_all(&ControlMsg::ClockProbe { t1 }.encode()).unwrap();
        let ControlMsg::ClockEcho { t1: echoed, t2, t3 } = recv_msg(&mut s) else {
            panic!("expected a clock echo")
        };
        let t4 = mono_now_ns();
        assert_eq!(echoed, t1, "the echo is of this probe");
        // One host, one clock: the four in the order they happened.
        assert!(t1 <= t2 && t2 <= t3 && t3 <= t4, "{t1} {t2} {t3} {t4}");
    }
    s.write_all(&ControlMsg::ClockProbe { t1: 1 }.encode()).unwrap();
    let reason = refusal(&mut s);
    assert!(
        reason.contains(&format!("more than {MAX_CLOCK_PROBES} clock probes")),
        "{reason}"
    );
}

#[test]
fn a_probe_during_a_trial_is_refused() {
    let receiver = ReceiverGuard::start(&[]);
    let mut s = session(&receiver);
    let setup = ControlMsg::Setup(test_setup(
        Transport::Tcp,
        64,
        WorkloadSetup::Rr {
            udp_peer_port: None,
            quic_stream: QuicStreamMode::PerRequest,
            delivery: None,
        },
    ));
    s.write_all(&setup.encode()).unwrap();
    assert!(matches!(recv_msg(&mut s), ControlMsg::Ready { .. }));
    s.write_all(&ControlMsg::ClockProbe { t1: mono_now_ns() }.encode())
        .unwrap();
    let reason = refusal(&mut s);
    assert!(reason.contains("clock probe during a trial"), "{reason}");
}
