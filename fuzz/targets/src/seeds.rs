//! Seed inputs for each target, made with the project's own encoders and
//! from its fixtures and shipped files: what a fuzzer starts from, so its
//! first inputs already get past the magic numbers and the syntax.
//!
//! `cargo run -p transbench-fuzz-targets --example write-seeds` writes them
//! to `fuzz/corpus/TARGET/seed-NAME`; the replay test runs them as they are
//! made now, too, so a change to an encoder is fuzzed from its new output
//! even before the files are rewritten.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::Value;
use std::path::{Path, PathBuf};
use transbench_wire::auth::{to_hex, FrameMac, Role, Secret};
use transbench_wire::control::{CONTROL_FRAMING, MAGIC, PROTOCOL_VERSION};
use transbench_wire::delivery::{self, Delivery};
use transbench_wire::frame::LengthPrefix;
use transbench_wire::mux::MuxWriter;
use transbench_wire::{ControlMsg, MessageHeader, TrialToken, HEADER_LEN};

use crate::handshake::{CLIENT_NONCE, SECRET, SERVER_NONCE};

/// A named seed input.
pub type Seed = (String, Vec<u8>);

/// The workspace's root.
pub fn root() -> PathBuf {
    let targets = Path::new(env!("CARGO_MANIFEST_DIR"));
    targets
        .ancestors()
        .nth(2)
        .expect("fuzz/targets is two below the root")
        .to_path_buf()
}

/// The seeds of the target called `name` (none for an unknown name).
pub fn seeds(name: &str) -> Vec<Seed> {
    match name {
        "control" => control(),
        "handshake" => handshake(),
        "header" => header(),
        "mux" => mux(),
        "netem" => netem(),
        "offload" => offload(),
        "scenario" => scenario(),
        "results" => results(),
        "hdr" => hdr(),
        _ => Vec::new(),
    }
}

fn seed(name: &str, bytes: impl Into<Vec<u8>>) -> Seed {
    (name.to_string(), bytes.into())
}

/// Control messages as JSON, one of each kind.
const MESSAGES: [(&str, &str); 16] = [
    (
        "hello",
        r#"{"type":"hello","magic":"transbench","version":5,"client_nonce":"00ff"}"#,
    ),
    (
        "challenge",
        r#"{"type":"challenge","server_nonce":"ab","auth_required":true}"#,
    ),
    ("auth", r#"{"type":"auth","client_proof":null}"#),
    (
        "welcome",
        r#"{"type":"welcome","receiver_version":"0.2.0","server_proof":"cd","boot_id":"b"}"#,
    ),
    ("refused", r#"{"type":"refused","reason":"no"}"#),
    (
        "setup-multistream",
        r#"{"type":"setup","transport":"tcp+tls","size":64,"tcp_congestion":"cubic","quic_congestion":null,"plan":{"warmup_ns":1000000000,"duration_ns":3000000000,"loss_timeout_ns":2000000000,"messages":4000},"workload":"multistream","streams":8,"echo":true}"#,
    ),
    (
        "setup-rr",
        r#"{"type":"setup","transport":"udp","size":64,"plan":{"warmup_ns":0,"duration_ns":1000000000,"loss_timeout_ns":1000000000,"messages":null},"workload":"rr","udp_peer_port":4000,"quic_stream":"single"}"#,
    ),
    (
        "setup-churn",
        r#"{"type":"setup","transport":"tcp","size":64,"plan":{"warmup_ns":0,"duration_ns":1000000000,"loss_timeout_ns":1000000000,"messages":200},"workload":"churn","close":"server","max_inflight":1000}"#,
    ),
    (
        "ready",
        r#"{"type":"ready","data_port":5001,"cert_sha256":"beef","token":"0123456789abcdef"}"#,
    ),
    ("start", r#"{"type":"start"}"#),
    ("stop", r#"{"type":"stop","expect":9,"wait_ns":5}"#),
    ("deliveries", r#"{"type":"deliveries","records":"AAAA"}"#),
    (
        "time-wait",
        r#"{"type":"time_wait","samples":[[1,2,3],[4,5,null]]}"#,
    ),
    (
        "report",
        r#"{"type":"report","requests":5,"responses":5,"bytes":320,"rejected":0,"connections":1,"cpu_ns":7,"tcp_congestion":null,"namespace":{"start_mono_ns":7,"sysctls":{"net.ipv4.tcp_tw_reuse":"2"},"tcp_ext_before":{"TW":1},"tcp_ext_after":{"TW":9}},"netns":"net:[4026531840]"}"#,
    ),
    ("clock-probe", r#"{"type":"clock_probe","t1":400000000000000}"#),
    (
        "clock-echo",
        r#"{"type":"clock_echo","t1":400000000000000,"t2":140799876543211,"t3":140799876563211}"#,
    ),
];

/// A message's JSON as this build writes it: what `MESSAGES` has, run
/// through the decoder and encoder when they take it.
fn payload(json: &str) -> Vec<u8> {
    ControlMsg::decode(json.as_bytes()).map_or_else(|_| json.as_bytes().to_vec(), |m| m.to_payload())
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    CONTROL_FRAMING
        .encode(payload, &mut out)
        .expect("seed frames are small");
    out
}

fn records() -> String {
    let records: Vec<Delivery> = (0..3u64)
        .map(|i| Delivery {
            stream: i as u32,
            seq: u64::MAX - i,
            delivered_ns: 1_000_000_007 * i,
        })
        .collect();
    delivery::encode(&records)
}

fn control() -> Vec<Seed> {
    let mut out: Vec<Seed> = MESSAGES
        .iter()
        .map(|(name, json)| seed(&format!("frame-{name}"), frame(&payload(json))))
        .collect();
    out.push(seed("payload-setup", payload(MESSAGES[5].1)));
    out.push(seed("payload-report", payload(MESSAGES[13].1)));
    let deliveries = format!(r#"{{"type":"deliveries","records":"{}"}}"#, records());
    out.push(seed("frame-deliveries-records", frame(&payload(&deliveries))));
    out.push(seed("records", records()));
    // A session's worth from the sender, back to back.
    let session: Vec<u8> = [0, 2, 5, 9, 10]
        .iter()
        .flat_map(|&i| frame(&payload(MESSAGES[i].1)))
        .collect();
    out.push(seed("frames-sender", session));
    out
}

fn handshake() -> Vec<Seed> {
    let secret = Secret::new(SECRET).expect("the secret is not empty");
    let (c, s) = (&CLIENT_NONCE[..], &SERVER_NONCE[..]);
    // The receiver under test: a sender's hello, auth, then sealed frames.
    let mut to_receiver = vec![0u8];
    let hello = format!(
        r#"{{"type":"hello","magic":"{MAGIC}","version":{PROTOCOL_VERSION},"client_nonce":"{}"}}"#,
        to_hex(c)
    );
    to_receiver.extend(frame(&payload(&hello)));
    let auth = format!(
        r#"{{"type":"auth","client_proof":"{}"}}"#,
        secret.prove(Role::Sender, c, s)
    );
    to_receiver.extend(frame(&payload(&auth)));
    let mut without_auth = to_receiver.clone();
    let mut sender = FrameMac::new(&secret, Role::Sender, c, s);
    for i in [5, 9, 10] {
        to_receiver.extend(frame(&sender.seal(&payload(MESSAGES[i].1))));
    }
    without_auth.extend(frame(&payload(MESSAGES[5].1)));

    // The sender under test: a receiver's challenge, its welcome with its
    // proof, then sealed frames, and a refusal sent before the session key.
    let mut to_sender = vec![1u8];
    let challenge = format!(
        r#"{{"type":"challenge","server_nonce":"{}","auth_required":true}}"#,
        to_hex(s)
    );
    to_sender.extend(frame(&payload(&challenge)));
    let welcome = format!(
        r#"{{"type":"welcome","receiver_version":"0.2.0","server_proof":"{}","boot_id":null}}"#,
        secret.prove(Role::Receiver, c, s)
    );
    to_sender.extend(frame(&payload(&welcome)));
    let mut receiver = FrameMac::new(&secret, Role::Receiver, c, s);
    let deliveries = format!(r#"{{"type":"deliveries","records":"{}"}}"#, records());
    for json in [
        MESSAGES[3].1,
        MESSAGES[8].1,
        &deliveries,
        MESSAGES[12].1,
        MESSAGES[13].1,
    ] {
        to_sender.extend(frame(&receiver.seal(&payload(json))));
    }
    to_sender.extend(frame(&payload(MESSAGES[4].1)));
    vec![
        seed("receiver-session", to_receiver),
        seed("receiver-unsealed-after-auth", without_auth),
        seed("sender-session", to_sender),
    ]
}

fn header() -> Vec<Seed> {
    let message = |h: MessageHeader, size: usize| {
        let mut buf = vec![0xaa; size];
        h.encode(&mut buf);
        buf
    };
    let request = MessageHeader::request(TrialToken::from_bytes(*b"trial-42"), 3, 42, 1_000_000_000);
    let mut out = vec![
        seed("datagram-request", message(request, 64)),
        seed("datagram-response", message(request.response(), HEADER_LEN)),
    ];
    // A stream of 64-byte messages.
    let size: u16 = 64;
    let mut stream = size.to_be_bytes().to_vec();
    for seq in 0..3 {
        LengthPrefix::new(size.into())
            .encode(
                &message(
                    MessageHeader::request(TrialToken::from_bytes(*b"trial-42"), 0, seq, seq * 1_000),
                    64,
                ),
                &mut stream,
            )
            .expect("64 bytes fit 64");
    }
    out.push(seed("stream-requests", stream));
    out
}

fn mux() -> Vec<Seed> {
    let mut writer = MuxWriter::new(4);
    for (stream, len) in [(0, 17_000), (2, 10), (2, 10), (3, 1)] {
        writer.push(stream, vec![stream as u8; len]);
    }
    // 4 streams, messages up to 64 KiB, read a frame's worth at a time.
    let mut reading = vec![0x73];
    while writer.next_frame(&mut reading) {}
    // The same trial, writing: (stream, length) triples.
    let mut writing = vec![0x80 | 0x73];
    for (stream, len) in [(0u8, 40_000u16), (2, 10), (2, 0), (3, 16_384), (1, 16_385)] {
        writing.push(stream);
        writing.extend(len.to_be_bytes());
    }
    vec![seed("reading", reading), seed("writing", writing)]
}

fn netem() -> Vec<Seed> {
    let mut out: Vec<Seed> = [
        "delay 100ms 10ms 25% distribution normal",
        "loss 0.3% 25%",
        "delay 10ms reorder 25% 50% gap 5",
        "rate 1000kbit 20 100 5",
        "loss state 1% 30% 5% 40% 2%",
        "delay 20ms 5ms 25% distribution normal loss gemodel 1% 30% duplicate 1% corrupt 0.1% \
         reorder 25% 50% gap 5 rate 100mbit limit 10000 seed 7",
        "slot 800us 1ms packets 32 bytes 64kb",
        "slot distribution pareto 1ms 200us packets 8",
        "loss random 2% ecn",
        "delay 1500ns 250ns",
    ]
    .iter()
    .enumerate()
    .map(|(i, p)| seed(&format!("profile-{i}"), *p))
    .collect();
    out.extend(files("netem-scripts/profiles", "netem"));
    out
}

/// Super-packets as a TUN device with offloads hands them over: TCP over
/// IPv4 and UDP over IPv6 of three segments each, and a packet waiting
/// only for its checksum.
fn offload() -> Vec<Seed> {
    // flags, gso_type, hdr_len, gso_size, csum_start, csum_offset (LE).
    let vnet = |flags: u8, gso: u8, size: u16, start: u16, offset: u16| {
        let mut h = vec![flags, gso, 0, 0];
        for v in [size, start, offset] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        h
    };
    let payload: Vec<u8> = (0..2500u32).map(|i| (i * 7) as u8).collect();
    let mut tcp4 = vec![
        0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 201, 0, 1, 10, 201, 0, 2,
    ];
    tcp4.extend_from_slice(&[
        0x30, 0x39, 0x14, 0x51, 0, 0, 0, 9, 0, 0, 0, 7, 0x50, 0x19, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    tcp4.extend_from_slice(&payload);
    let len = tcp4.len() as u16;
    tcp4[2..4].copy_from_slice(&len.to_be_bytes());
    let mut udp6 = vec![0x60, 0, 0, 0, 0, 0, 17, 64];
    udp6.extend_from_slice(&[0xfd; 16]);
    udp6.extend_from_slice(&[0xfe; 16]);
    udp6.extend_from_slice(&[0x30, 0x39, 0x14, 0x51, 0, 0, 0, 0]);
    udp6.extend_from_slice(&payload);
    let len = (udp6.len() - 40) as u16;
    udp6[4..6].copy_from_slice(&len.to_be_bytes());
    udp6[44..46].copy_from_slice(&len.to_be_bytes());
    let small = tcp4[..60].to_vec();
    [
        ("tcp4-tso", vnet(1, 1, 1000, 20, 16), tcp4),
        ("udp6-uso", vnet(1, 5, 1000, 40, 6), udp6),
        ("tcp4-csum", vnet(1, 0, 0, 20, 16), small),
    ]
    .into_iter()
    .map(|(name, mut bytes, packet)| {
        bytes.extend_from_slice(&packet);
        seed(name, bytes)
    })
    .collect()
}

fn scenario() -> Vec<Seed> {
    files("bench/scenarios", "toml")
}

/// The files of a directory of the repository with this extension, by
/// name.
fn files(dir: &str, ext: &str) -> Vec<Seed> {
    let mut out: Vec<Seed> = std::fs::read_dir(root().join(dir))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().replace('.', "-");
            Some((name, std::fs::read(&p).ok()?))
        })
        .collect();
    out.sort();
    out
}

/// The report fixture's trials: one of each workload (its first), each in
/// a results file of its own, cut short (see [`shorten`]) so a seed stays
/// a few KB; and a run without trials.
fn results() -> Vec<Seed> {
    let Some(fixture) = fixture() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for trial in fixture["trials"].as_array().into_iter().flatten() {
        let workload = trial["workload"].as_str().unwrap_or("-").to_string();
        if seen.contains(&workload) {
            continue;
        }
        let mut trial = trial.clone();
        shorten(&mut trial);
        let mut run = fixture.clone();
        run["trials"] = Value::Array(vec![trial.clone()]);
        out.push(seed(&format!("run-{workload}"), run.to_string()));
        if workload == "rr" {
            out.push(seed("run-retried", retried(&run, &trial).to_string()));
        }
        seen.push(workload);
    }
    let mut empty = fixture;
    empty["trials"] = Value::Array(Vec::new());
    out.push(seed("run-empty", empty.to_string()));
    out
}

/// `run` (schema 1) as schema 1.1 with `trial` retried once: the first
/// attempt missed its schedule and is superseded by the second.
fn retried(run: &Value, trial: &Value) -> Value {
    let mut run = run.clone();
    run["schema"] = Value::from(transbench_reports::SCHEMA);
    let mut first = trial.clone();
    let mut second = trial.clone();
    let id = |n: &str| Value::from(format!("{}-{n}", trial["id"].as_str().unwrap_or("t")));
    first["id"] = id("a1");
    first["valid"] = Value::from(false);
    first["invalid_reasons"] = Value::from(vec!["send_lag p99 1.500 ms exceeds 1.000 ms"]);
    first["missed_schedule"] = Value::from(true);
    first["superseded_by"] = id("a2");
    second["id"] = id("a2");
    second["attempt"] = Value::from(2);
    for t in [&mut first, &mut second] {
        t["params"]["max_send_lag_ns"] = Value::from(1_000_000);
    }
    run["trials"] = Value::Array(vec![first, second]);
    run
}

fn fixture() -> Option<Value> {
    let text = std::fs::read(root().join("render/tests/fixtures/results.json")).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Cuts every list longer than 8 to its first 8, and leaves out members
/// of more than 4 KB of text (a multistream trial's timeline).
fn shorten(v: &mut Value) {
    match v {
        Value::Array(list) => {
            list.truncate(8);
            list.iter_mut().for_each(shorten);
        }
        Value::Object(map) => {
            map.retain(|_, v| v.as_str().is_none_or(|s| s.len() <= 4096));
            map.values_mut().for_each(shorten);
        }
        _ => {}
    }
}

/// Histograms made with the results' own recorder and encoder, as text
/// and as the bytes it encodes; and the fixture's first few.
fn hdr() -> Vec<Seed> {
    let mut out = Vec::new();
    let mut add = |name: &str, text: String| {
        out.push(seed(
            &format!("{name}-bytes"),
            B64.decode(&text).unwrap_or_default(),
        ));
        out.push(seed(&format!("{name}-text"), text));
    };
    let made: [(&str, &[u64]); 4] = [
        ("empty", &[]),
        ("one", &[25_000]),
        ("spread", &[1, 1_000, 1_000_000, 1_000_000_000, 3_600_000_000_000]),
        ("clamped", &[0, u64::MAX]),
    ];
    for (name, values) in made {
        let mut h = transbench_reports::new_histogram();
        for v in values {
            transbench_reports::record(&mut h, *v);
        }
        add(
            name,
            transbench_reports::encode_hdr(&h).expect("a recorded histogram encodes"),
        );
    }
    let trials = fixture()
        .and_then(|f| f["trials"].as_array().cloned())
        .unwrap_or_default();
    for (i, t) in trials.iter().take(3).enumerate() {
        if let Some(text) = t["lat"]["hdr"].as_str() {
            add(&format!("fixture-{i}"), text.to_string());
        }
    }
    out
}
