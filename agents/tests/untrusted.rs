//! What comes from elsewhere, a peer's frames or a results file, is
//! escaped (and bounded) before it reaches a terminal.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;
use transbench_wire::control::CONTROL_FRAMING;
use transbench_wire::ControlMsg;

/// A receiver that answers the first hello with `Refused { reason }`.
fn refusing_receiver(reason: &str) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reason = reason.to_string();
    let served = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut prefix = [0u8; 4];
        stream.read_exact(&mut prefix).unwrap();
        let mut hello = vec![0u8; CONTROL_FRAMING.decode_len(prefix).unwrap()];
        stream.read_exact(&mut hello).unwrap();
        assert!(matches!(ControlMsg::decode(&hello), Ok(ControlMsg::Hello { .. })));
        let mut frame = Vec::new();
        CONTROL_FRAMING
            .encode(&ControlMsg::Refused { reason }.to_payload(), &mut frame)
            .unwrap();
        stream.write_all(&frame).unwrap();
    });
    (addr, served)
}

#[test]
fn a_receivers_refusal_is_printed_escaped() {
    let (addr, receiver) = refusing_receiver("\x1b[2J\x1b[Hall clear\nerror: forged");
    let dir = tempfile::tempdir().unwrap();
    let o = sender(addr, "udp", &dir.path().join("r.json"), &[]);
    receiver.join().unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(!err.contains('\x1b'), "{err:?}");
    assert!(
        err.contains(r"receiver refused: \u{1b}[2J\u{1b}[Hall clear\nerror: forged"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line, no forged one: {err}");
}

#[test]
fn a_senders_garbage_is_logged_escaped_by_the_receiver() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut receiver = Command::new(BIN)
        .args(["receiver", "--listen", "127.0.0.1:0"])
        .env_remove("TRANSBENCH_SECRET")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(receiver.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit(' ').next().unwrap().to_string();
    // Well-formed JSON naming a frame type that does not exist: the
    // receiver quotes it in its refusal and its log.
    let payload = br#"{"type":"\u001b[2Jhello\nWARN forged line"}"#;
    let mut frame = Vec::new();
    CONTROL_FRAMING.encode(payload, &mut frame).unwrap();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream.write_all(&frame).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    // SAFETY: signalling the receiver this test started, by its PID.
    unsafe { libc::kill(receiver.id() as libc::pid_t, libc::SIGTERM) };
    let out = receiver.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("session refused"), "{log}");
    assert!(!log.contains('\x1b'), "{log:?}");
    assert!(log.contains(r"\u{1b}[2Jhello\nWARN forged line"), "{log}");
    assert!(
        !log.lines().any(|l| l.starts_with("WARN forged")),
        "a forged line: {log}"
    );
}

#[test]
fn report_refuses_a_histogram_transbench_never_writes() {
    use base64::Engine;
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../render/tests/fixtures/results.json");
    let mut results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    // HdrHistogram V2, plain: 5 digits from 1 ns to u64::MAX (49 MB of
    // counts to decode), none recorded.
    let mut v2 = 0x1c84_9313u32.to_be_bytes().to_vec();
    for word in [0u32, 0, 5] {
        v2.extend(word.to_be_bytes());
    }
    v2.extend(1u64.to_be_bytes());
    v2.extend(u64::MAX.to_be_bytes());
    v2.extend(1.0f64.to_be_bytes());
    let trial = &mut results["trials"][0];
    trial["lat"]["hdr"] = base64::engine::general_purpose::STANDARD.encode(v2).into();
    let id = trial["id"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("results.json");
    std::fs::write(&file, serde_json::to_vec(&results).unwrap()).unwrap();
    let o = std::process::Command::new(BIN)
        .arg("report")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!o.status.success(), "report exited 0");
    let err = stderr(&o);
    assert!(
        err.contains(&format!("trial {id}: histogram tracks values from 1 to")),
        "{err}"
    );
    assert!(!dir.path().join("report/index.html").exists());
}
