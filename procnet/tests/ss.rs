//! The TIME_WAIT count, held against iproute2's `ss` on loopback: 20
//! connections to a listener of our own, each closed by the client first,
//! leave 20 client sockets in TIME_WAIT (for the kernel's fixed 60 s).

use procnet::{PortFilter, ProcNet, TcpStates};
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::process::Command;

fn ss_time_wait(port: u16) -> Option<u64> {
    let filter = format!("( sport = :{port} or dport = :{port} )");
    let out = Command::new("ss")
        .args(["-tanH", "state", "time-wait", &filter])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).lines().count() as u64)
}

fn mono_ns() -> u64 {
    let t = std::time::Instant::now();
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    t.duration_since(*START.get_or_init(|| t)).as_nanos() as u64
}

#[test]
fn time_wait_matches_ss() {
    if Command::new("ss").arg("-V").output().is_err() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("ss missing: .ci/run installs iproute2");
        }
        eprintln!("skipping: ss (iproute2) is not installed");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    for _ in 0..20 {
        let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        // The client closes first; the server sees the end, then closes.
        drop(client);
        let mut buf = [0u8; 1];
        assert_eq!(server.read(&mut buf).unwrap(), 0);
        drop(server);
    }
    let net = ProcNet::this_thread();
    // Let the last FINs land: every client socket reaches TIME_WAIT.
    let mut ours = 0;
    for _ in 0..200 {
        ours = net
            .sockets(TcpStates::TIME_WAIT, &PortFilter::Either(port))
            .unwrap();
        if ours == 20 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(ours, 20, "client sockets in TIME_WAIT");
    assert_eq!(ss_time_wait(port), Some(ours), "ss sees what /proc/net/tcp says");
    assert_eq!(
        procnet::diag_sockets(TcpStates::TIME_WAIT, &PortFilter::Either(port)).unwrap(),
        ours,
        "sock_diag agrees"
    );
    assert!(net.time_wait_total().unwrap() >= 20);
    let counters = net.tcp_ext().unwrap();
    assert!(counters.contains_key("TW") && counters.contains_key("TCPTimeWaitOverflow"));
}

#[test]
fn sampler_follows_time_wait_as_it_appears() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let start =
        || procnet::TimeWaitSampler::start(10_000_000, Some(PortFilter::Either(port)), mono_ns).unwrap();
    // Before any connection, a sampler counts none of ours, first and
    // last (whenever a busy machine lets it take them).
    let idle = start().stop();
    assert!(
        idle.first().unwrap().2 == Some(0) && idle.last().unwrap().2 == Some(0),
        "none of ours before the connections: {idle:?}"
    );
    let sampler = start();
    // Room for the first sample: its count walks every TIME_WAIT socket of
    // the namespace (tens of ms on a busy host).
    std::thread::sleep(std::time::Duration::from_millis(200));
    for _ in 0..10 {
        let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        drop(client);
        let mut buf = [0u8; 1];
        assert_eq!(server.read(&mut buf).unwrap(), 0);
    }
    std::thread::sleep(std::time::Duration::from_millis(35));
    let samples = sampler.stop();
    // Every 10 ms for ~235 ms, and one on stop; the first and last counted.
    // Ours only appear (TIME_WAIT lasts 60 s): the counts never fall,
    // whenever the samples were taken.
    assert!(samples.len() >= 5, "{samples:?}");
    assert!(samples[0].2.is_some(), "the first sample counts: {samples:?}");
    assert_eq!(samples.last().unwrap().2, Some(10), "ours after: {samples:?}");
    let counted: Vec<u64> = samples.iter().filter_map(|s| s.2).collect();
    assert!(counted.windows(2).all(|w| w[0] <= w[1]), "{samples:?}");
    assert!(
        samples.iter().all(|s| s.2.is_none_or(|ours| s.1 >= ours)),
        "the total includes ours"
    );
    assert!(samples.windows(2).all(|w| w[1].0 > w[0].0), "times increase");
}

#[test]
fn the_last_sample_waits_for_a_slow_peer_to_close() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let ours = PortFilter::Remote(port);
    let net = ProcNet::this_thread();
    let closing = || procnet::diag_sockets(TcpStates::CLOSING, &ours).unwrap();
    let sampler = procnet::TimeWaitSampler::start(10_000_000, Some(ours.clone()), mono_ns).unwrap();
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    // The client closes; the server has not: FIN_WAIT2, not yet TIME_WAIT.
    drop(client);
    let mut buf = [0u8; 1];
    assert_eq!(server.read(&mut buf).unwrap(), 0);
    // As the FIN is acknowledged the kernel swaps the orphaned socket for
    // a FIN_WAIT2 mini-socket in the same hash chain, and a dump walking
    // the chain just then can miss both: it read 0 once beside a
    // CPU-bound neighbour. So the first reading may be taken again, for up
    // to a second; the socket must be seen closing, once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let mut seen = closing();
    while seen == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
        seen = closing();
    }
    assert_eq!(seen, 1, "the client's socket is closing");
    assert_eq!(
        net.sockets(TcpStates::CLOSING, &ours).unwrap(),
        1,
        "/proc/net/tcp agrees"
    );
    let late = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(server);
    });
    let samples = sampler.stop();
    late.join().unwrap();
    assert_eq!(
        samples.last().unwrap().2,
        Some(1),
        "the last sample came after the peer's close: {samples:?}"
    );
    assert_eq!(closing(), 0);
}

#[test]
fn sysctls_are_read_in_this_namespace() {
    let values = procnet::read_sysctls(&["net.ipv4.ip_local_port_range", "net.ipv4.no_such_knob"]);
    let range = &values["net.ipv4.ip_local_port_range"];
    let ports: Vec<u16> = range.split(' ').map(|p| p.parse().unwrap()).collect();
    assert!(ports.len() == 2 && ports[0] <= ports[1], "{range:?}");
    assert!(!values.contains_key("net.ipv4.no_such_knob"));
}
