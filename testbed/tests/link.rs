//! The testbed for real: namespaces, TUN devices and linkemu between them.
//! Needs root: in CI (CI=true) a missing privilege fails the test;
//! elsewhere the test is skipped with the reason printed.

mod common;

use common::{have_root, namespaces, realtime, serial};
use linkemu::NetemSpec;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};
use testbed::{Backend, Testbed, RECEIVER_ADDR, SENDER_ADDR};

fn spec(s: &str) -> NetemSpec {
    NetemSpec::parse(s).unwrap()
}

#[test]
fn delay_each_way_gives_the_round_trip_it_should() {
    if !have_root("the testbed needs root (namespaces, TUN)") {
        return;
    }
    let _serial = serial();
    let _realtime = realtime();
    let bed = Testbed::up(Backend::Linkemu, &spec("delay 10ms"), &spec("delay 10ms"), 1).unwrap();
    let rtts = std::thread::scope(|s| {
        let echo = s.spawn(|| {
            let _inside = bed.receiver.enter().unwrap();
            let sock = UdpSocket::bind((RECEIVER_ADDR, 7000)).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                sock.send_to(&buf[..n], from).unwrap();
            }
        });
        let rtts = s
            .spawn(|| {
                let _inside = bed.sender.enter().unwrap();
                let sock = UdpSocket::bind((SENDER_ADDR, 0)).unwrap();
                sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
                let mut rtts = Vec::new();
                let mut buf = [0u8; 2048];
                // The first ones also resolve neighbours; give them time.
                std::thread::sleep(Duration::from_millis(200));
                for i in 0u32..200 {
                    let start = Instant::now();
                    sock.send_to(&i.to_be_bytes(), (RECEIVER_ADDR, 7000)).unwrap();
                    if let Ok((4, _)) = sock.recv_from(&mut buf) {
                        rtts.push(start.elapsed().as_secs_f64() * 1e3);
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                rtts
            })
            .join()
            .unwrap();
        echo.join().unwrap();
        rtts
    });
    let mut sorted = rtts.clone();
    sorted.sort_by(f64::total_cmp);
    assert!(
        sorted.len() >= 195,
        "only {} of 200 echoes came back",
        sorted.len()
    );
    // None sooner than the path allows; the least (the echo a busy
    // machine disturbed least) within half a millisecond of it. A busy
    // machine only adds delay, to some echoes more than others.
    let least = sorted[0];
    assert!(
        (19.95..20.5).contains(&least),
        "RTT min {least:.3} ms (p50 {:.3}), configured 2 x 10 ms",
        sorted[sorted.len() / 2]
    );
}

#[test]
fn random_loss_hits_real_packets_at_its_rate() {
    if !have_root("the testbed needs root (namespaces, TUN)") {
        return;
    }
    let _serial = serial();
    // The sink must keep up, or its socket buffer would lose datagrams the
    // link did not.
    let _realtime = realtime();
    let bed = Testbed::up(Backend::Linkemu, &spec("loss 5%"), &spec(""), 2).unwrap();
    let n = 10_000u32;
    let received = std::thread::scope(|s| {
        let sink = s.spawn(|| {
            let _inside = bed.receiver.enter().unwrap();
            let sock = UdpSocket::bind((RECEIVER_ADDR, 7001)).unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
            let mut buf = [0u8; 2048];
            let mut got = 0u32;
            while sock.recv_from(&mut buf).is_ok() {
                got += 1;
            }
            got
        });
        s.spawn(|| {
            let _inside = bed.sender.enter().unwrap();
            let sock = UdpSocket::bind((SENDER_ADDR, 0)).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            for i in 0..n {
                sock.send_to(&i.to_be_bytes(), (RECEIVER_ADDR, 7001)).unwrap();
                // Paced so no socket buffer overflows: loss is the link's.
                if i % 20 == 0 {
                    std::thread::sleep(Duration::from_micros(500));
                }
            }
        })
        .join()
        .unwrap();
        sink.join().unwrap()
    });
    let stats = bed.link_stats().unwrap().forward;
    let lost = (n - received) as f64;
    // Binomial: mean 500, sd 21.8; 5 sd = 109.
    assert!((lost - 500.0).abs() < 109.0, "lost {lost} of {n}");
    assert_eq!(
        stats.dropped_loss as f64, lost,
        "every loss is the link's: {stats:?}"
    );
    assert!(stats.arrived >= n as u64);
}

#[test]
fn tcp_completes_a_transfer_through_loss_and_reordering() {
    if !have_root("the testbed needs root (namespaces, TUN)") {
        return;
    }
    let _serial = serial();
    let profile = spec("loss 2% reorder 10% delay 5ms");
    let bed = Testbed::up(Backend::Linkemu, &profile, &profile, 3).unwrap();
    const BYTES: usize = 2 * 1024 * 1024;
    let got = std::thread::scope(|s| {
        let server = s.spawn(|| {
            let _inside = bed.receiver.enter().unwrap();
            let listener = TcpListener::bind((RECEIVER_ADDR, 7002)).unwrap();
            let (mut conn, _) = listener.accept().unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let mut total = 0;
            let mut buf = vec![0u8; 65_536];
            loop {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return total,
                    Ok(n) => total += n,
                }
            }
        });
        s.spawn(|| {
            let _inside = bed.sender.enter().unwrap();
            std::thread::sleep(Duration::from_millis(200));
            let addr = SocketAddr::from((RECEIVER_ADDR, 7002));
            let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
            conn.write_all(&vec![7u8; BYTES]).unwrap();
        })
        .join()
        .unwrap();
        server.join().unwrap()
    });
    assert_eq!(got, BYTES);
    let stats = bed.link_stats().unwrap();
    assert!(
        stats.forward.dropped_loss > 0 && stats.forward.reordered > 0,
        "{stats:?}"
    );
}

#[test]
fn nothing_is_left_behind() {
    if !have_root("the testbed needs root (namespaces, TUN)") {
        return;
    }
    let _serial = serial();
    let names = {
        let bed = Testbed::up(Backend::Linkemu, &spec("delay 1ms"), &spec("delay 1ms"), 4).unwrap();
        let names = (bed.sender.name().to_string(), bed.receiver.name().to_string());
        let listed = namespaces();
        assert!(listed.contains(&names.0) && listed.contains(&names.1), "{listed}");
        names
    };
    let listed = namespaces();
    assert!(
        !listed.contains(&names.0) && !listed.contains(&names.1),
        "left behind: {listed}"
    );
}

#[test]
fn the_netem_backend_works_where_the_kernel_has_netem_and_says_why_not_elsewhere() {
    if !have_root("the testbed needs root (namespaces, TUN)") {
        return;
    }
    let _serial = serial();
    let profile = spec("delay 10ms");
    if testbed::probe_netem().unwrap().is_some() {
        let bed = Testbed::up(Backend::Netem, &profile, &profile, 5).unwrap();
        assert!(bed.link_stats().is_none(), "netem keeps its own counters");
        let ok = std::thread::scope(|s| {
            s.spawn(|| {
                let _inside = bed.sender.enter().unwrap();
                UdpSocket::bind((SENDER_ADDR, 0))
                    .unwrap()
                    .send_to(b"x", (RECEIVER_ADDR, 9))
                    .is_ok()
            })
            .join()
            .unwrap()
        });
        assert!(ok, "the sender has a route through the router");
    } else {
        let err = Testbed::up(Backend::Netem, &profile, &profile, 5)
            .err()
            .expect("no netem here")
            .to_string();
        assert!(err.contains("kind is unknown"), "{err}");
        // Other tests make namespaces meanwhile, but none with a router.
        let ours = format!("tb-{}-", std::process::id());
        let left: Vec<String> = namespaces()
            .lines()
            .filter(|l| l.starts_with(&ours) && l.contains("-rtr"))
            .map(str::to_string)
            .collect();
        assert!(left.is_empty(), "a failed set-up left {left:?}");
    }
}

/// A rejecting link's answers reach the sender's stack, and Linux reports
/// them as it does a firewall's: a TCP connect fails with ECONNREFUSED (a
/// reset to its SYN) or EHOSTUNREACH (ICMP host unreachable); a connected
/// UDP socket hears of host unreachable only with IP_RECVERR (a soft
/// error otherwise: `__udp4_lib_err` passes it over), as EHOSTUNREACH.
/// Nothing reaches the receiver.
#[test]
fn a_rejecting_link_answers_the_sender_as_a_firewall_would() {
    if !have_root("the testbed needs root (namespaces, TUN)") {
        return;
    }
    let _serial = serial();
    let schedule = |s: &str| linkemu::ImpairSchedule::parse(s).unwrap();
    for (forward, tcp_error) in [
        ("0s: reject", libc::EHOSTUNREACH),
        ("0s: reject tcp-reset", libc::ECONNREFUSED),
    ] {
        let bed =
            Testbed::up_scheduled(Backend::Linkemu, &schedule(forward), &schedule("0s: none"), 6).unwrap();
        let (plain, asking, tcp) = std::thread::scope(|s| {
            s.spawn(|| {
                let _inside = bed.sender.enter().unwrap();
                let udp = |recverr: bool| {
                    let sock = UdpSocket::bind((SENDER_ADDR, 0)).unwrap();
                    sock.connect((RECEIVER_ADDR, 9)).unwrap();
                    let on: libc::c_int = recverr.into();
                    // SAFETY: setsockopt on a socket we own, with an int.
                    let rc = unsafe {
                        libc::setsockopt(
                            std::os::fd::AsRawFd::as_raw_fd(&sock),
                            libc::IPPROTO_IP,
                            libc::IP_RECVERR,
                            (&on as *const libc::c_int).cast(),
                            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                        )
                    };
                    assert_eq!(rc, 0);
                    sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
                    sock.send(b"x").unwrap();
                    sock.recv(&mut [0u8; 16]).unwrap_err()
                };
                let addr = SocketAddr::from((RECEIVER_ADDR, 9));
                let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap_err();
                (udp(false), udp(true), tcp)
            })
            .join()
            .unwrap()
        });
        assert_eq!(
            plain.kind(),
            std::io::ErrorKind::WouldBlock,
            "{forward}: UDP: {plain}"
        );
        assert_eq!(
            asking.raw_os_error(),
            Some(libc::EHOSTUNREACH),
            "{forward}: UDP, IP_RECVERR: {asking}"
        );
        assert_eq!(tcp.raw_os_error(), Some(tcp_error), "{forward}: TCP: {tcp}");
        // The link writes an answer before it publishes its counters (at
        // the end of its turn), so the last one may lag the answer a
        // moment on a busy machine.
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        let stats = loop {
            let stats = bed.link_stats().unwrap();
            if stats.forward.rejected >= 3 || std::time::Instant::now() > deadline {
                break stats;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(stats.forward.delivered, 0, "{forward}: {stats:?}");
        assert!(
            stats.forward.rejected >= 3 && stats.forward.reject_answers == stats.forward.rejected,
            "{forward}: {stats:?}"
        );
    }
}

#[test]
fn the_netem_backend_refuses_a_schedule_that_rejects() {
    if !have_root("the testbed needs root (namespaces, TUN)") {
        return;
    }
    let reject = linkemu::ImpairSchedule::parse("0s: delay 5ms; partition 1s 1s reject").unwrap();
    let none = linkemu::ImpairSchedule::parse("0s: none").unwrap();
    let err = Testbed::up_scheduled(Backend::Netem, &none, &reject, 7)
        .err()
        .expect("netem cannot reject")
        .to_string();
    assert!(
        err.starts_with("reject needs linkemu (--impair-backend linkemu"),
        "{err}"
    );
}
