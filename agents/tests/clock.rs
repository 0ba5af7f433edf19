//! Clock probes against a real receiver on 127.0.0.1: it echoes them
//! between trials (never during one, never more than its cap per session).

mod common;

use common::*;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;
use transbench::admission::MAX_CLOCK_PROBES;
use transbench::clock::mono_now_ns;
use transbench_wire::{ControlMsg, QuicStreamMode, Transport, TrialSetup, WorkloadSetup};

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
    let setup = ControlMsg::Setup(TrialSetup {
        transport: Transport::Tcp,
        size: 64,
        tcp_congestion: None,
        quic_congestion: None,
        plan: test_plan(),
        workload: WorkloadSetup::Rr {
            udp_peer_port: None,
            quic_stream: QuicStreamMode::PerRequest,
        },
    });
    s.write_all(&setup.encode()).unwrap();
    assert!(matches!(recv_msg(&mut s), ControlMsg::Ready { .. }));
    s.write_all(&ControlMsg::ClockProbe { t1: mono_now_ns() }.encode())
        .unwrap();
    let reason = refusal(&mut s);
    assert!(reason.contains("clock probe during a trial"), "{reason}");
}
