//! The UDP receiver is no reflector: it answers only the peer registered
//! over the control channel, only requests that carry the trial's token,
//! and never with more bytes than it received.

mod common;

use common::*;
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;
use transbench_wire::{ControlMsg, MessageHeader, MessageKind, QuicStreamMode, Transport, TrialToken};

/// Opens a session without a secret and sets up a UDP trial whose
/// registered peer is `peer_port`; returns the control stream, the data
/// port and the trial's token.
fn setup_udp_trial(receiver: &ReceiverGuard, peer_port: u16, size: u32) -> (TcpStream, u16, TrialToken) {
    let (mut s, _) = raw_session(receiver.addr, None, Duration::from_secs(5)).unwrap();
    let setup = ControlMsg::Setup(test_setup(
        Transport::Udp,
        size,
        transbench_wire::WorkloadSetup::Rr {
            udp_peer_port: Some(peer_port),
            quic_stream: QuicStreamMode::PerRequest,
            delivery: None,
        },
    ));
    s.write_all(&setup.encode()).unwrap();
    let ControlMsg::Ready { data_port, token, .. } = recv_msg(&mut s) else {
        panic!("expected ready")
    };
    s.write_all(&ControlMsg::Start.encode()).unwrap();
    (s, data_port, token)
}

fn request(token: TrialToken, len: usize, seq: u64) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    MessageHeader::request(token, 0, seq, 1).encode(&mut buf);
    buf
}

#[test]
fn only_the_registered_peer_gets_answers_never_larger_than_asked() {
    let receiver = ReceiverGuard::start(&[]);
    let registered = UdpSocket::bind("127.0.0.1:0").unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    for s in [&registered, &stranger] {
        s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    }
    let (mut ctl, data_port, token) = setup_udp_trial(&receiver, registered.local_addr().unwrap().port(), 64);
    let target = ("127.0.0.1", data_port);
    // An answer that should come is waited for generously (a busy machine
    // may keep the receiver off the CPU); one that must not, for 500 ms.
    let answered = |s: &UdpSocket, buf: &mut [u8]| {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let got = s.recv_from(buf);
        s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        got
    };

    stranger.send_to(&request(token, 64, 1), target).unwrap();
    let mut buf = [0u8; 2048];
    assert!(stranger.recv_from(&mut buf).is_err(), "a stranger got an answer");
    // From the registered port, without the trial's token: no answer.
    let guess = TrialToken::from_bytes([0; 8]);
    registered.send_to(&request(guess, 64, 9), target).unwrap();
    assert!(
        registered.recv_from(&mut buf).is_err(),
        "answered without the token"
    );

    // Shorter than the trial's size: the answer must not be padded up.
    registered.send_to(&request(token, 40, 2), target).unwrap();
    let (n, from) = answered(&registered, &mut buf).expect("the registered peer is answered");
    assert_eq!(from.port(), data_port);
    assert_eq!(n, 40);
    let h = MessageHeader::decode(&buf[..n]).unwrap();
    assert_eq!((h.kind, h.seq), (MessageKind::Response, 2));

    // Longer than the trial's size: the answer is cut to the size.
    registered.send_to(&request(token, 1000, 3), target).unwrap();
    let (n, _) = answered(&registered, &mut buf).unwrap();
    assert_eq!(n, 64);

    // Not a transbench request: no answer at all.
    registered.send_to(b"hello, is anyone there?", target).unwrap();
    assert!(registered.recv_from(&mut buf).is_err());

    ctl.write_all(
        &ControlMsg::Stop {
            expect: None,
            wait_ns: 0,
        }
        .encode(),
    )
    .unwrap();
    let ControlMsg::Report(report) = recv_msg(&mut ctl) else {
        panic!("expected a report")
    };
    assert_eq!(report.requests, 2, "{report:?}");
    assert_eq!(report.responses, 2);
    assert_eq!(report.rejected, 2, "the guess and the garbage");
    assert_eq!(report.discarded, 0);
}
