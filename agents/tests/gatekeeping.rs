//! A receiver left running where strangers can reach it: it gives a
//! stranger nothing to test guesses of the secret against, idle
//! connections cannot keep senders out, and its limits refuse what a
//! sender asks beyond them, in one line that names the limit.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use transbench_wire::auth::{from_hex, random_nonce, to_hex, Role, Secret};
use transbench_wire::control::{MAGIC, PROTOCOL_VERSION};
use transbench_wire::ControlMsg;

const SECRET: &str = "a shared secret of the lab";

fn secret_receiver(dir: &std::path::Path, extra: &[&str]) -> ReceiverGuard {
    let path = secret_file(dir, "secret", SECRET);
    let mut args = vec!["--secret-file", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    ReceiverGuard::start(&args)
}

#[test]
fn a_stranger_gets_nothing_computed_from_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = secret_receiver(dir.path(), &[]);
    let secret = Secret::new(SECRET.as_bytes()).unwrap();
    for proof in [None, Some("00".repeat(32))] {
        let mut s = TcpStream::connect(receiver.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let cn = random_nonce();
        let hello = ControlMsg::Hello {
            magic: MAGIC.into(),
            version: PROTOCOL_VERSION,
            client_nonce: to_hex(&cn),
        };
        s.write_all(&hello.encode()).unwrap();
        let challenge = read_frame(&mut s).expect("a challenge");
        let ControlMsg::Challenge { server_nonce, .. } = ControlMsg::decode(&challenge).unwrap() else {
            panic!("expected a challenge")
        };
        let sn = from_hex(&server_nonce).unwrap();
        // What a receiver that proved first would have given away.
        let receiver_proof = secret.prove(Role::Receiver, &cn, &sn);
        s.write_all(
            &ControlMsg::Auth {
                client_proof: proof.clone(),
            }
            .encode(),
        )
        .unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        let transcript = [
            String::from_utf8_lossy(&challenge),
            String::from_utf8_lossy(&rest),
        ]
        .concat();
        assert!(
            !transcript.contains(&receiver_proof),
            "the receiver proved itself to a stranger: {transcript}"
        );
        assert!(transcript.contains("\"refused\""), "{transcript}");
    }
}

/// Holds `count` connections to `addr` open, sending nothing (or, one in
/// four, a control length prefix and nothing after it), and reopens each
/// one the receiver closes, until dropped.
struct IdleStrangers {
    stop: Arc<AtomicBool>,
    reopened: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl IdleStrangers {
    fn start(addr: SocketAddr, count: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let reopened = Arc::new(AtomicU64::new(0));
        let open = move |i: usize| -> Option<TcpStream> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
            if i % 4 == 0 {
                let _ = s.write_all(&(60_000u32).to_be_bytes());
            }
            s.set_nonblocking(true).ok()?;
            Some(s)
        };
        let (stop2, reopened2) = (stop.clone(), reopened.clone());
        let thread = std::thread::spawn(move || {
            let mut conns: Vec<Option<TcpStream>> = (0..count).map(open).collect();
            // Bounded: the test stops it, and it stops by itself after a minute.
            let end = Instant::now() + Duration::from_secs(60);
            while !stop2.load(Ordering::Acquire) && Instant::now() < end {
                for (i, slot) in conns.iter_mut().enumerate() {
                    let closed = match slot {
                        None => true,
                        Some(s) => {
                            let mut b = [0u8; 64];
                            match s.read(&mut b) {
                                Ok(0) => true,
                                Ok(_) => false,
                                Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                            }
                        }
                    };
                    if closed {
                        *slot = open(i);
                        reopened2.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        IdleStrangers {
            stop,
            reopened,
            thread: Some(thread),
        }
    }
}

impl Drop for IdleStrangers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn five_hundred_idle_strangers_cannot_keep_a_sender_out() {
    let dir = tempfile::tempdir().unwrap();
    let budget: u64 = 96 << 20;
    let receiver = secret_receiver(dir.path(), &["--memory-budget", "96MiB"]);
    let secret = Secret::new(SECRET.as_bytes()).unwrap();
    let strangers = IdleStrangers::start(receiver.addr, 500);
    // The strangers are in when the receiver has had to drop some.
    let wait = Instant::now() + Duration::from_secs(20);
    while strangers.reopened.load(Ordering::Relaxed) < 500 && Instant::now() < wait {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        strangers.reopened.load(Ordering::Relaxed) >= 500,
        "the strangers never filled the receiver's handshake slots"
    );
    // A sender kept out until a stranger's handshake timed out would wait
    // HANDSHAKE_TIMEOUT (3 s) every time. Admission itself is immediate
    // (the longest silent stranger is dropped), but the strangers keep
    // reconnecting, so on a busy host the listen queue can overflow and
    // one SYN wait for its 1 s retransmission: the median, not the
    // slowest, tells the two apart.
    let mut took = Vec::new();
    for attempt in 0..20 {
        let began = Instant::now();
        let session = raw_session(receiver.addr, Some(&secret), Duration::from_secs(5));
        let t = began.elapsed();
        if let Err(e) = session {
            panic!("handshake {attempt} failed after {t:?} among idle strangers: {e}");
        }
        took.push(t);
        let used = rss_bytes(receiver.pid());
        assert!(used < budget, "receiver RSS {used} is over its budget {budget}");
        std::thread::sleep(Duration::from_millis(100));
    }
    took.sort();
    let median = took[took.len() / 2];
    assert!(
        median < Duration::from_secs(1),
        "the median handshake took {median:?} among idle strangers: {took:?}"
    );
    eprintln!(
        "20 handshakes among 500 idle strangers ({} connections reopened), median {median:?}, slowest {:?}",
        strangers.reopened.load(Ordering::Relaxed),
        took.last().unwrap()
    );
}

#[test]
fn idle_sessions_are_closed_and_the_session_limit_refuses_with_its_name() {
    let receiver = ReceiverGuard::start(&["--max-sessions", "2", "--idle-timeout", "2s"]);
    let timeout = Duration::from_secs(10);
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| raw_session(receiver.addr, None, timeout).unwrap().0)
        .collect();
    let Err(refusal) = raw_session(receiver.addr, None, timeout) else {
        panic!("a third session while two are held was let in")
    };
    assert!(refusal.contains("--max-sessions"), "{refusal}");

    let began = Instant::now();
    for s in &mut held {
        let last = read_frame(s).map(|p| ControlMsg::decode(&p).unwrap());
        match last {
            Some(ControlMsg::Refused { reason }) => assert!(reason.contains("--idle-timeout"), "{reason}"),
            other => panic!("expected the idle session refused, got {other:?}"),
        }
        assert!(read_frame(s).is_none(), "and closed");
    }
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "idle sessions were closed after {:?}",
        began.elapsed()
    );
    raw_session(receiver.addr, None, timeout).expect("room again once idle sessions are gone");
}

/// Runs a trial with `flags` against `addr`, expecting a refusal; its stderr.
fn refused(addr: SocketAddr, transport: &str, flags: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let o = sender_command(addr, transport)
        .args(["--warmup", "200ms", "--out"])
        .arg(&out)
        .args(flags)
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "a trial beyond the limits ran: {}",
        stderr(&o)
    );
    assert!(!out.exists());
    stderr(&o)
}

#[test]
fn a_trial_beyond_a_limit_is_refused_naming_the_limit() {
    let mut receiver = ReceiverGuard::start(&[
        "--max-duration",
        "3s",
        "--max-rate",
        "1000",
        "--max-message-size",
        "1000",
    ]);
    let cases: [(&[&str], &str); 4] = [
        (&["--duration", "5s", "--rate", "500"], "--max-duration 3s"),
        (&["--duration", "1s", "--rate", "2000"], "--max-rate 1000"),
        (
            &["--duration", "1s", "--rate", "500", "--size", "1200"],
            "--max-message-size 1000",
        ),
        (&["--duration", "1s", "--closed-loop"], "closed-loop"),
    ];
    for (flags, names) in cases {
        let err = refused(receiver.addr, "udp", flags);
        assert!(err.contains(names), "{flags:?}: {err}");
        assert!(
            err.contains("restart the receiver with"),
            "says how to raise it: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
    assert!(receiver.is_running());
    let dir = tempfile::tempdir().unwrap();
    let o = sender(receiver.addr, "udp", &dir.path().join("ok.json"), &[]);
    assert!(o.status.success(), "a trial within the limits: {}", stderr(&o));
}

#[test]
fn a_trial_beyond_the_memory_budget_is_refused_before_it_starts() {
    let receiver = ReceiverGuard::start(&["--memory-budget", "48MiB"]);
    // 220,000 messages to record, twice over for duplicates: 28 MB of
    // records, more than the 12 MiB the budget leaves for trials.
    let err = refused(
        receiver.addr,
        "udp",
        &[
            "--workload",
            "multistream",
            "--streams",
            "1",
            "--rate",
            "100000",
            "--duration",
            "2s",
        ],
    );
    assert!(err.contains("--memory-budget 48 MiB"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let o = sender(receiver.addr, "udp", &dir.path().join("ok.json"), &[]);
    assert!(o.status.success(), "a trial that fits: {}", stderr(&o));
}

#[test]
fn sessions_together_stay_within_the_memory_budget() {
    use transbench_wire::{Transport, TrialPlan, TrialSetup, WorkloadSetup};
    let budget: u64 = 160 << 20;
    let receiver = ReceiverGuard::start(&["--memory-budget", "160MiB"]);
    // Each of these trials may record 2 x 200,000 deliveries: 25 MB.
    let setup = ControlMsg::Setup(TrialSetup {
        plan: TrialPlan {
            messages: Some(200_000),
            ..test_plan()
        },
        ..test_setup(
            Transport::Udp,
            64,
            WorkloadSetup::Multistream {
                streams: 1,
                echo: false,
            },
        )
    });
    let mut held = Vec::new();
    let refusal = loop {
        assert!(held.len() < 10, "ten trials of 25 MB each fit a 160 MiB budget");
        let (mut s, _) = raw_session(receiver.addr, None, Duration::from_secs(10)).unwrap();
        s.write_all(&setup.encode()).unwrap();
        match ControlMsg::decode(&read_frame(&mut s).expect("an answer to setup")).unwrap() {
            ControlMsg::Ready { .. } => held.push(s),
            ControlMsg::Refused { reason } => break reason,
            other => panic!("expected ready or refused, got {}", other.name()),
        }
    };
    assert!(refusal.contains("--memory-budget 160 MiB"), "{refusal}");
    // 160 MiB less the receiver's 32 MiB: four trials and their sessions.
    assert_eq!(held.len(), 4, "{refusal}");
    let used = rss_bytes(receiver.pid());
    assert!(used < budget, "receiver RSS {used} is over its budget {budget}");
    // A trial's memory comes back when its session ends.
    drop(held.pop());
    let wait = Instant::now() + Duration::from_secs(10);
    loop {
        let (mut s, _) = raw_session(receiver.addr, None, Duration::from_secs(10)).unwrap();
        s.write_all(&setup.encode()).unwrap();
        match ControlMsg::decode(&read_frame(&mut s).unwrap()).unwrap() {
            ControlMsg::Ready { .. } => break,
            _ if Instant::now() < wait => std::thread::sleep(Duration::from_millis(100)),
            other => panic!("the ended session's memory never came back: {other:?}"),
        }
    }
}

#[test]
fn limits_that_cannot_work_are_refused_at_start() {
    for (flags, names) in [
        (&["--max-rate", "nan"][..], "--max-rate"),
        (&["--memory-budget", "1MiB"], "--memory-budget"),
        (&["--max-sessions", "0"], "--max-sessions"),
        (&["--max-message-size", "12 parsecs"], "--max-message-size"),
    ] {
        let o = std::process::Command::new(BIN)
            .args(["receiver", "--listen", "127.0.0.1:0"])
            .args(flags)
            .env_remove("TRANSBENCH_SECRET")
            .output()
            .unwrap();
        assert!(!o.status.success(), "{flags:?} started");
        assert!(stderr(&o).contains(names), "{flags:?}: {}", stderr(&o));
    }
}
