//! The control port's gatekeeping: secrets, versions and garbage.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use transbench_wire::control::{MAGIC, PROTOCOL_VERSION};
use transbench_wire::ControlMsg;

#[test]
fn right_secret_is_accepted_wrong_or_missing_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let right = secret_file(dir.path(), "right", "correct horse battery staple\n");
    let wrong = secret_file(dir.path(), "wrong", "incorrect horse\n");
    let mut receiver = ReceiverGuard::start(&["--secret-file", right.to_str().unwrap()]);
    let out = dir.path().join("r.json");

    let o = sender(
        receiver.addr,
        "tcp",
        &out,
        &["--secret-file", wrong.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("authentication failed"), "{}", stderr(&o));
    assert!(!out.exists());

    let o = sender(receiver.addr, "tcp", &out, &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("requires a shared secret"), "{}", stderr(&o));

    assert!(receiver.is_running());
    let o = sender(
        receiver.addr,
        "udp",
        &out,
        &["--secret-file", right.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.exists());
}

#[test]
fn secret_from_the_environment_works() {
    let dir = tempfile::tempdir().unwrap();
    let right = secret_file(dir.path(), "right", "s3cret");
    let receiver = ReceiverGuard::start(&["--secret-file", right.to_str().unwrap()]);
    let out = dir.path().join("r.json");
    let o = sender_command(receiver.addr, "tcp")
        .args(["--duration", "300ms", "--warmup", "0s", "--out"])
        .arg(&out)
        .env("TRANSBENCH_SECRET", "s3cret")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn sender_with_a_secret_refuses_a_receiver_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = secret_file(dir.path(), "s", "x");
    let receiver = ReceiverGuard::start(&[]);
    let o = sender(
        receiver.addr,
        "tcp",
        &dir.path().join("r.json"),
        &["--secret-file", s.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no secret configured"), "{}", stderr(&o));
}

fn read_reply(stream: &mut TcpStream) -> Option<ControlMsg> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    ControlMsg::split(&buf).ok().flatten().map(|(m, _)| m)
}

#[test]
fn garbage_on_the_control_port_is_refused_and_the_receiver_keeps_serving() {
    let mut receiver = ReceiverGuard::start(&[]);
    let garbage: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        &[0, 0, 0, 5, b'{', b'x', 0xff, 0, 1],
        &[0xde, 0xad, 0xbe, 0xef],
    ];
    for bytes in garbage {
        let mut s = TcpStream::connect(receiver.addr).unwrap();
        s.write_all(bytes).unwrap();
        let _ = s.shutdown(std::net::Shutdown::Write);
        if let Some(msg) = read_reply(&mut s) {
            assert!(matches!(msg, ControlMsg::Refused { .. }), "{msg:?}");
        }
    }
    // A connection that says nothing and leaves.
    drop(TcpStream::connect(receiver.addr).unwrap());

    assert!(receiver.is_running(), "receiver died on garbage");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let o = sender(receiver.addr, "tcp+tls", &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn wrong_protocol_version_is_refused_with_a_reason() {
    let receiver = ReceiverGuard::start(&[]);
    let mut s = TcpStream::connect(receiver.addr).unwrap();
    let hello = ControlMsg::Hello {
        magic: MAGIC.into(),
        version: PROTOCOL_VERSION + 98,
        client_nonce: "00".repeat(32),
    };
    s.write_all(&hello.encode()).unwrap();
    match read_reply(&mut s) {
        Some(ControlMsg::Refused { reason }) => {
            assert!(
                reason.contains(&format!("version {}", PROTOCOL_VERSION + 98)),
                "{reason}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn receiver_without_secret_refuses_non_loopback_addresses() {
    let o = std::process::Command::new(BIN)
        .args(["receiver", "--listen", "0.0.0.0:0"])
        .env_remove("TRANSBENCH_SECRET")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("without a shared secret"), "{}", stderr(&o));
}

#[test]
fn after_authentication_every_frame_must_carry_the_session_tag() {
    use transbench_wire::auth::{from_hex, random_nonce, to_hex, FrameMac, Role, Secret};
    use transbench_wire::{QuicStreamMode, Transport};

    let dir = tempfile::tempdir().unwrap();
    let path = secret_file(dir.path(), "s", "a long enough shared secret");
    let secret = Secret::new(b"a long enough shared secret").unwrap();
    let receiver = ReceiverGuard::start(&["--secret-file", path.to_str().unwrap()]);
    let setup = ControlMsg::Setup(test_setup(
        Transport::Tcp,
        64,
        transbench_wire::WorkloadSetup::Rr {
            udp_peer_port: None,
            quic_stream: QuicStreamMode::PerRequest,
            delivery: None,
        },
    ));

    // Twice: once tagging `setup` properly, once sending it bare.
    for tag_it in [true, false] {
        let mut s = TcpStream::connect(receiver.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let cn = random_nonce();
        let hello = ControlMsg::Hello {
            magic: MAGIC.into(),
            version: PROTOCOL_VERSION,
            client_nonce: to_hex(&cn),
        };
        s.write_all(&hello.encode()).unwrap();
        let ControlMsg::Challenge { server_nonce, .. } =
            ControlMsg::decode(&read_frame(&mut s).unwrap()).unwrap()
        else {
            panic!("expected a challenge")
        };
        let sn = from_hex(&server_nonce).unwrap();
        let auth = ControlMsg::Auth {
            client_proof: Some(secret.prove(Role::Sender, &cn, &sn)),
        };
        s.write_all(&auth.encode()).unwrap();
        let ControlMsg::Welcome {
            server_proof: Some(proof),
            ..
        } = ControlMsg::decode(&read_frame(&mut s).unwrap()).unwrap()
        else {
            panic!("expected a welcome with the receiver's proof")
        };
        secret.verify(Role::Receiver, &cn, &sn, &proof).unwrap();
        let mut mac = FrameMac::new(&secret, Role::Sender, &cn, &sn);

        if tag_it {
            s.write_all(&frame(&mac.seal(&setup.to_payload()))).unwrap();
            let ready = read_frame(&mut s).expect("a tagged setup is served");
            assert!(matches!(
                ControlMsg::decode(mac.open(&ready).unwrap()).unwrap(),
                ControlMsg::Ready { .. }
            ));
        } else {
            s.write_all(&setup.encode()).unwrap();
            let reply = read_frame(&mut s);
            assert!(
                !matches!(
                    reply.as_deref().map(ControlMsg::decode),
                    Some(Ok(ControlMsg::Ready { .. }))
                ),
                "an untagged setup was served"
            );
        }
    }
}
