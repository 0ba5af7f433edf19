//! Connection churn: what TIME_WAIT predicts for a trial, how many round
//! trips a connection's first response costs, and the TIME_WAIT series of
//! both agents merged onto one timeline.

/// Linux holds a socket in TIME_WAIT for a fixed 60 s (TCP_TIMEWAIT_LEN;
/// `tcp_fin_timeout` does not change it).
pub const TIME_WAIT_S: f64 = 60.0;

/// With `tcp_tw_reuse`, connect() may take over a TIME_WAIT 4-tuple once
/// its last timestamp is this old (TCP_TW_REUSE_DELAY's default).
pub const TW_REUSE_DELAY_S: f64 = 1.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closer {
    Client,
    Server,
    Rst,
}

/// Which side ends up holding TIME_WAIT sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeWaitSide {
    Sender,
    Receiver,
    Neither,
}

/// What TIME_WAIT does to a churn trial, by theory.
#[derive(Debug, Clone, PartialEq)]
pub struct PortPressure {
    pub side: TimeWaitSide,
    /// Connections per second to one destination that the ports sustain;
    /// `None` when TIME_WAIT does not bound the rate.
    pub sustainable_rate: Option<f64>,
    /// Seconds until connect() runs out of ports at the offered rate.
    pub exhaustion_after_s: Option<f64>,
    /// TIME_WAIT sockets expected on `side` at the end of the trial.
    pub time_wait_expected: u64,
    pub note: String,
}

/// The path a trial's connections take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChurnPath {
    /// Ephemeral ports the client may use.
    pub ports: u32,
    /// Transactions offered per second.
    pub offered_rate: f64,
    /// Length of the trial (warm-up included), s.
    pub elapsed_s: f64,
    pub closer: Closer,
    /// `net.ipv4.tcp_tw_reuse` of the client's namespace (0, 1 or 2), if
    /// known.
    pub tw_reuse: Option<u8>,
    /// Whether the connections run over loopback (`tcp_tw_reuse` 2 covers
    /// only loopback).
    pub loopback: bool,
    /// QUIC: no TCP, no TIME_WAIT.
    pub quic: bool,
    /// `net.ipv4.tcp_max_tw_buckets` of the closing side, if known.
    pub max_tw_buckets: Option<u64>,
    /// The client binds each port of the range in turn (rather than
    /// letting connect() choose).
    pub port_cycle: bool,
    /// `net.ipv4.tcp_timestamps` of the client's namespace is on, if known.
    pub timestamps: Option<bool>,
}

/// The TIME_WAIT arithmetic of a churn trial: with the client closing
/// first and no reuse, a port stays taken for 60 s after its connection, so
/// one destination sustains ports / 60 s connections per second, and a
/// faster schedule runs out of ports after ports / rate seconds.
pub fn port_pressure(path: &ChurnPath) -> PortPressure {
    let opened = (path.offered_rate * path.elapsed_s.min(TIME_WAIT_S)).round() as u64;
    let cap = |n: u64| path.max_tw_buckets.map_or(n, |max| n.min(max));
    if path.quic {
        return PortPressure {
            side: TimeWaitSide::Neither,
            sustainable_rate: None,
            exhaustion_after_s: None,
            time_wait_expected: 0,
            note: "QUIC has no TIME_WAIT: every connection shares one UDP socket".into(),
        };
    }
    match path.closer {
        Closer::Rst => PortPressure {
            side: TimeWaitSide::Neither,
            sustainable_rate: None,
            exhaustion_after_s: None,
            time_wait_expected: 0,
            note: "RST (SO_LINGER 0) skips TIME_WAIT: each port is free again at once".into(),
        },
        Closer::Server => {
            // A SYN that reuses a 4-tuple in TIME_WAIT replaces it, so the
            // receiver holds at most one per client port in use; and with
            // nothing in TIME_WAIT on its side, connect() keeps to the
            // ports of one parity (it scans those first).
            let ports_used = if path.port_cycle {
                u64::from(path.ports)
            } else {
                u64::from(path.ports).div_ceil(2)
            };
            PortPressure {
                side: TimeWaitSide::Receiver,
                sustainable_rate: None,
                exhaustion_after_s: None,
                time_wait_expected: cap(opened.min(ports_used)),
                note: format!(
                    "the receiver closes first, so TIME_WAIT lands there: about rate x {TIME_WAIT_S:.0} s \
                     sockets, at most one per client port in use (a new SYN replaces a TIME_WAIT of the \
                     same 4-tuple; connect() keeps to half the range) and tcp_max_tw_buckets; the \
                     client's ports are free again at once"
                ),
            }
        }
        // connect() of a socket bound to its port checks TIME_WAIT without
        // the tcp_tw_reuse gate (tcp_twsk_unique without twp): with
        // timestamps it takes the 4-tuple over at once, as TCP_CRR relies on.
        Closer::Client if path.port_cycle && path.timestamps != Some(false) => PortPressure {
            side: TimeWaitSide::Sender,
            sustainable_rate: None,
            exhaustion_after_s: None,
            time_wait_expected: cap(opened.min(u64::from(path.ports))),
            note: "the client binds each port (cycle): connect() takes over a TIME_WAIT of the same \
                   4-tuple at once when timestamps are on (TcpExt TWRecycled counts it), so TIME_WAIT \
                   does not limit the rate"
                .into(),
        },
        Closer::Client => {
            let reuse = match path.tw_reuse {
                Some(1) => Some("tcp_tw_reuse 1"),
                Some(2) if path.loopback => Some("tcp_tw_reuse 2 (loopback)"),
                _ => None,
            };
            let ports = f64::from(path.ports);
            match reuse {
                Some(why) => PortPressure {
                    side: TimeWaitSide::Sender,
                    sustainable_rate: Some(ports / TW_REUSE_DELAY_S),
                    // Faster than that, the ports still run out before the
                    // first can be reused.
                    exhaustion_after_s: (path.offered_rate > ports / TW_REUSE_DELAY_S)
                        .then(|| ports / path.offered_rate),
                    time_wait_expected: cap(opened.min(u64::from(path.ports))),
                    note: format!(
                        "{why}: connect() takes over a TIME_WAIT port whose last timestamp is over \
                         {TW_REUSE_DELAY_S:.0} s old, so about ports / {TW_REUSE_DELAY_S:.0} s"
                    ),
                },
                None => {
                    let sustainable = ports / TIME_WAIT_S;
                    PortPressure {
                        side: TimeWaitSide::Sender,
                        sustainable_rate: Some(sustainable),
                        exhaustion_after_s: (path.offered_rate > sustainable)
                            .then(|| ports / path.offered_rate),
                        time_wait_expected: cap(opened.min(u64::from(path.ports))),
                        note: format!(
                            "the client closes first and TIME_WAIT is not reused: each port stays taken \
                             {TIME_WAIT_S:.0} s, so ports / {TIME_WAIT_S:.0} s to one destination"
                        ),
                    }
                }
            }
        }
    }
}

/// How a connection is set up before its request can go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    Tcp,
    /// TLS 1.3 over TCP, full handshake.
    TcpTls13,
    /// QUIC, 1-RTT handshake.
    Quic,
    /// QUIC resuming with the request in 0-RTT data.
    Quic0Rtt,
}

impl Setup {
    /// Round trips from connect() to the first byte of the response, for a
    /// request sent as soon as the connection allows: the handshake's round
    /// trips, plus one for the request itself.
    pub fn ttfb_rtts(self) -> f64 {
        match self {
            Setup::Tcp => 2.0,
            Setup::TcpTls13 => 3.0,
            Setup::Quic => 2.0,
            Setup::Quic0Rtt => 1.0,
        }
    }
}

/// A step of a rate sweep keeps up while it completes this share of what
/// it offered...
pub const KEEP_UP: f64 = 0.95;
/// ...fails no more than this share of what it started...
pub const MAX_FAILED: f64 = 0.01;
/// ...and, unless told otherwise, keeps its TTFB p99 within this many
/// times the first step's p50.
pub const DEFAULT_P99_FACTOR: u64 = 10;

/// What a sweep step measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepFigures {
    pub offered_rate: f64,
    pub achieved_rate: f64,
    pub started: u64,
    pub failed: u64,
    pub ttfb_p99_ns: u64,
}

/// Why a step is past the knee (its achieved rate stopped following the
/// offered one, it failed connections, or its TTFB p99 broke the bound);
/// `None` while it keeps up.
pub fn past_knee(step: &StepFigures, p99_bound_ns: u64) -> Option<String> {
    if step.achieved_rate < KEEP_UP * step.offered_rate {
        return Some(format!(
            "achieved {:.0}/s of {:.0}/s offered (under {:.0} %)",
            step.achieved_rate,
            step.offered_rate,
            100.0 * KEEP_UP
        ));
    }
    let failed = step.failed as f64 / step.started.max(1) as f64;
    if failed > MAX_FAILED {
        return Some(format!(
            "{:.1} % of connections failed (over {:.0} %)",
            100.0 * failed,
            100.0 * MAX_FAILED
        ));
    }
    if step.ttfb_p99_ns > p99_bound_ns {
        return Some(format!(
            "TTFB p99 {:.2} ms over the bound {:.2} ms",
            step.ttfb_p99_ns as f64 / 1e6,
            p99_bound_ns as f64 / 1e6
        ));
    }
    None
}

/// One agent's sample: time, the namespace's TIME_WAIT total, and the
/// trial's own (when counted).
pub type Sample = (u64, u64, Option<u64>);

/// One point of the merged TIME_WAIT series; times from `t0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeWaitRow {
    pub t_ns: u64,
    pub sender: u64,
    pub sender_trial: Option<u64>,
    /// The receiver's sample nearest in time (total, trial's), if one lies
    /// within an interval; in the last row, the receiver's last sample.
    pub receiver: Option<(u64, Option<u64>)>,
    pub completed: u64,
    pub failed: u64,
    /// p99 connect time of the connections completed since the previous
    /// row (nearest rank); absent when none completed.
    pub connect_p99_ns: Option<u64>,
}

/// A completed transaction: when it ended and how long its connect took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Completion {
    pub done_ns: u64,
    pub connect_ns: u64,
}

/// Merges the agents' samples (time, total, trial's) onto the
/// sender's: `receiver_shift_ns` is added to each receiver time to put it
/// on the sender's clock. `completions` and `failures` are the sorted
/// times transactions ended.
pub fn merge_time_wait(
    t0: u64,
    interval_ns: u64,
    sender: &[Sample],
    receiver: &[Sample],
    receiver_shift_ns: i64,
    completions: &[Completion],
    failures: &[u64],
) -> Vec<TimeWaitRow> {
    let shifted: Vec<(i128, Sample)> = receiver
        .iter()
        .map(|s| (s.0 as i128 + receiver_shift_ns as i128, *s))
        .collect();
    let mut since = 0usize;
    let last = sender.len().saturating_sub(1);
    sender
        .iter()
        .enumerate()
        .map(|(i, &(at, total, trial))| {
            let upto = completions.partition_point(|c| c.done_ns <= at);
            let mut window: Vec<u64> = completions[since.min(upto)..upto]
                .iter()
                .map(|c| c.connect_ns)
                .collect();
            since = upto;
            window.sort_unstable();
            let connect_p99_ns = (!window.is_empty()).then(|| {
                let rank = (0.99 * window.len() as f64).ceil() as usize;
                window[rank.clamp(1, window.len()) - 1]
            });
            // Each side's last sample is what the trial left behind,
            // taken once its closing sockets settled: the receiver's comes
            // after the sender's Stop, later than any interval would allow.
            let nearest = if i == last {
                shifted.last()
            } else {
                shifted
                    .iter()
                    .min_by_key(|(t, _)| (t - at as i128).abs())
                    .filter(|(t, _)| (t - at as i128).unsigned_abs() <= u128::from(interval_ns))
            }
            .map(|(_, r)| (r.1, r.2));
            TimeWaitRow {
                t_ns: at.saturating_sub(t0),
                sender: total,
                sender_trial: trial,
                receiver: nearest,
                completed: upto as u64,
                failed: failures.partition_point(|&f| f <= at) as u64,
                connect_p99_ns,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(closer: Closer) -> ChurnPath {
        ChurnPath {
            ports: 200,
            offered_rate: 400.0,
            elapsed_s: 3.0,
            closer,
            tw_reuse: Some(0),
            loopback: false,
            quic: false,
            max_tw_buckets: Some(262_144),
            port_cycle: false,
            timestamps: Some(true),
        }
    }

    #[test]
    fn client_close_without_reuse_is_ports_over_sixty_seconds() {
        let p = port_pressure(&path(Closer::Client));
        assert_eq!(p.side, TimeWaitSide::Sender);
        assert!((p.sustainable_rate.unwrap() - 200.0 / 60.0).abs() < 1e-9);
        // 200 ports at 400/s: gone after half a second.
        assert!((p.exhaustion_after_s.unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(p.time_wait_expected, 200);
        // The design's example: the default range, 28,232 ports.
        let default = port_pressure(&ChurnPath {
            ports: 28_232,
            offered_rate: 100.0,
            ..path(Closer::Client)
        });
        assert!((default.sustainable_rate.unwrap() - 470.5).abs() < 0.1);
        assert_eq!(default.exhaustion_after_s, None, "100/s is below the knee");
        assert_eq!(default.time_wait_expected, 300);
    }

    #[test]
    fn reuse_lifts_the_limit_only_where_it_applies() {
        // 200 ports, 150/s: out of ports in 1.33 s without reuse; with it,
        // a port comes free again after a second.
        let at = |tw_reuse, loopback| {
            port_pressure(&ChurnPath {
                tw_reuse: Some(tw_reuse),
                loopback,
                offered_rate: 150.0,
                ..path(Closer::Client)
            })
        };
        assert_eq!(at(1, false).exhaustion_after_s, None);
        assert_eq!(at(1, false).sustainable_rate, Some(200.0));
        // 2 is loopback only.
        assert_eq!(at(2, true).exhaustion_after_s, None);
        assert!((at(2, false).exhaustion_after_s.unwrap() - 200.0 / 150.0).abs() < 1e-9);
        // Faster than ports per second, even reuse runs out first.
        let fast = port_pressure(&ChurnPath {
            tw_reuse: Some(1),
            ..path(Closer::Client)
        });
        assert!((fast.exhaustion_after_s.unwrap() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn server_close_and_rst_leave_the_client_ports_free() {
        let server = port_pressure(&path(Closer::Server));
        assert_eq!(server.side, TimeWaitSide::Receiver);
        assert_eq!((server.sustainable_rate, server.exhaustion_after_s), (None, None));
        // 400/s for 3 s, but one per 4-tuple: half of 200 ports.
        assert_eq!(server.time_wait_expected, 100);
        let wide = |max_tw_buckets, port_cycle| {
            port_pressure(&ChurnPath {
                ports: 28_232,
                max_tw_buckets: Some(max_tw_buckets),
                port_cycle,
                ..path(Closer::Server)
            })
            .time_wait_expected
        };
        assert_eq!(wide(262_144, false), 1200, "400/s for 3 s");
        assert_eq!(wide(1000, false), 1000, "tcp_max_tw_buckets");
        let cycled = port_pressure(&ChurnPath {
            port_cycle: true,
            ..path(Closer::Server)
        });
        assert_eq!(cycled.time_wait_expected, 200, "every port of the range");
        // Bound ports take their TIME_WAIT over at once, given timestamps.
        let bound = |timestamps| {
            port_pressure(&ChurnPath {
                port_cycle: true,
                timestamps,
                ..path(Closer::Client)
            })
        };
        assert_eq!(
            (bound(Some(true)).sustainable_rate, bound(None).exhaustion_after_s),
            (None, None)
        );
        assert_eq!(bound(Some(true)).time_wait_expected, 200);
        assert!((bound(Some(false)).exhaustion_after_s.unwrap() - 0.5).abs() < 1e-9);
        let rst = port_pressure(&path(Closer::Rst));
        assert_eq!((rst.side, rst.time_wait_expected), (TimeWaitSide::Neither, 0));
        let quic = port_pressure(&ChurnPath {
            quic: true,
            ..path(Closer::Client)
        });
        assert_eq!((quic.side, quic.sustainable_rate), (TimeWaitSide::Neither, None));
    }

    #[test]
    fn ttfb_round_trips_follow_the_handshakes() {
        let order = [Setup::Quic0Rtt, Setup::Quic, Setup::Tcp, Setup::TcpTls13];
        let rtts: Vec<f64> = order.iter().map(|s| s.ttfb_rtts()).collect();
        assert_eq!(rtts, [1.0, 2.0, 2.0, 3.0]);
    }

    #[test]
    fn a_step_is_past_the_knee_for_the_first_reason_that_holds() {
        let keeping_up = StepFigures {
            offered_rate: 1000.0,
            achieved_rate: 990.0,
            started: 3000,
            failed: 3,
            ttfb_p99_ns: 2_000_000,
        };
        assert_eq!(past_knee(&keeping_up, 5_000_000), None);
        let slow = StepFigures {
            achieved_rate: 900.0,
            ..keeping_up
        };
        assert!(past_knee(&slow, 5_000_000)
            .unwrap()
            .contains("achieved 900/s of 1000/s"));
        let failing = StepFigures {
            failed: 60,
            ..keeping_up
        };
        assert!(past_knee(&failing, 5_000_000)
            .unwrap()
            .contains("2.0 % of connections failed"));
        assert!(past_knee(&keeping_up, 1_000_000)
            .unwrap()
            .contains("TTFB p99 2.00 ms"));
    }

    #[test]
    fn series_merge_on_the_senders_clock() {
        let sender = [(1_000, 5, Some(1)), (1_100, 9, None), (1_200, 9, Some(4))];
        // The receiver's clock runs 10_000 ahead; its second sample is
        // nearest the sender's second.
        let receiver = [(11_010, 2, Some(2)), (11_095, 3, None)];
        let done = |done_ns, connect_ns| Completion { done_ns, connect_ns };
        let completions = [done(1_050, 7), done(1_150, 30), done(1_160, 20)];
        let rows = merge_time_wait(1_000, 100, &sender, &receiver, -10_000, &completions, &[1_100]);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].t_ns, 0);
        assert_eq!(rows[0].receiver, Some((2, Some(2))));
        assert_eq!(rows[1].receiver, Some((3, None)));
        assert_eq!(
            (rows[1].completed, rows[1].failed, rows[1].sender_trial),
            (1, 1, None)
        );
        assert_eq!((rows[2].completed, rows[2].sender_trial), (3, Some(4)));
        // Each row's connect p99 covers only what completed since the last.
        let p99: Vec<_> = rows.iter().map(|r| r.connect_p99_ns).collect();
        assert_eq!(p99, [None, Some(7), Some(30)]);
        // Nothing within an interval: no receiver value, but for the last
        // row, which is the receiver's last sample wherever it fell.
        let far = merge_time_wait(
            0,
            100,
            &sender,
            &[(800, 2, None), (5_000, 1, Some(1))],
            0,
            &[],
            &[],
        );
        assert!(far[..2].iter().all(|r| r.receiver.is_none()), "{far:?}");
        assert_eq!(far[2].receiver, Some((1, Some(1))));
    }
}
