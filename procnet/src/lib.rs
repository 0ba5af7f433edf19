//! What the kernel says about TCP sockets, from `/proc/net`: the TIME_WAIT
//! count of a network namespace (`sockstat`'s `tw`), TIME_WAIT sockets of
//! one trial (`tcp` and `tcp6`, by port), and the `TcpExt` counters of
//! `netstat` (TW, TWRecycled, TCPTimeWaitOverflow...).
//!
//! The parsers are pure and take the files' text; [`ProcNet`] reads them for
//! a process or the calling thread, so each sees the files of its own
//! network namespace.

mod diag;

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("{file}: no `{what}` in it")]
    Missing { file: &'static str, what: String },
    #[error("{file}: malformed line {line:?}")]
    Malformed { file: &'static str, line: String },
}

/// `tw` of the `TCP:` line of `/proc/net/sockstat`: TIME_WAIT sockets of
/// the namespace (IPv4 and IPv6 together).
pub fn sockstat_time_wait(text: &str) -> Result<u64, ParseError> {
    let missing = || ParseError::Missing {
        file: "sockstat",
        what: "TCP: ... tw N".into(),
    };
    let line = text.lines().find(|l| l.starts_with("TCP:")).ok_or_else(missing)?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "tw").ok_or_else(missing)?;
    words
        .get(at + 1)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| ParseError::Malformed {
            file: "sockstat",
            line: line.to_string(),
        })
}

/// The `TcpExt` counters of `/proc/net/netstat`, by name.
pub fn tcp_ext_counters(text: &str) -> Result<BTreeMap<String, u64>, ParseError> {
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return Err(ParseError::Missing {
            file: "netstat",
            what: "TcpExt".into(),
        });
    };
    let names = names.split_whitespace().skip(1);
    let values = values.split_whitespace().skip(1);
    names
        .zip(values)
        .map(|(n, v)| {
            v.parse()
                .map(|v| (n.to_string(), v))
                .map_err(|_| ParseError::Malformed {
                    file: "netstat",
                    line: format!("{n} = {v}"),
                })
        })
        .collect()
}

/// Which sockets of `/proc/net/tcp{,6}` (or sock_diag) count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortFilter {
    /// Every socket.
    Any,
    /// Local port in the range (the client's ephemeral ports of a trial).
    Local(RangeInclusive<u16>),
    /// Local or remote port equal to this (a trial's server port).
    Either(u16),
    /// Remote port equal to this (a client's sockets to a server port).
    Remote(u16),
}

impl PortFilter {
    pub(crate) fn admits(&self, local: u16, remote: u16) -> bool {
        match self {
            PortFilter::Any => true,
            PortFilter::Local(range) => range.contains(&local),
            PortFilter::Either(port) => local == *port || remote == *port,
            PortFilter::Remote(port) => remote == *port,
        }
    }
}

/// A set of TCP states, in the kernel's numbering (`include/net/tcp_states.h`,
/// the `st` column of `/proc/net/tcp` in hex).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpStates(u32);

impl TcpStates {
    pub const TIME_WAIT: TcpStates = TcpStates(1 << 6);
    /// On the way to TIME_WAIT: this side closed first and the peer's FIN
    /// has not come yet (FIN_WAIT1, FIN_WAIT2, CLOSING).
    pub const CLOSING: TcpStates = TcpStates(1 << 4 | 1 << 5 | 1 << 11);

    pub(crate) fn mask(self) -> u32 {
        self.0
    }

    pub(crate) fn contains(self, state: u8) -> bool {
        state < 32 && self.0 & (1 << state) != 0
    }
}

/// Sockets in `states` in the text of `/proc/net/tcp` or `/proc/net/tcp6`
/// that `filter` admits.
pub fn tcp_sockets(text: &str, states: TcpStates, filter: &PortFilter) -> Result<u64, ParseError> {
    let mut count = 0;
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let malformed = || ParseError::Malformed {
            file: "tcp",
            line: line.to_string(),
        };
        if fields.len() < 4 {
            return Err(malformed());
        }
        let state = u8::from_str_radix(fields[3], 16).map_err(|_| malformed())?;
        if !states.contains(state) {
            continue;
        }
        let port = |addr: &str| {
            addr.rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                .ok_or_else(malformed)
        };
        if filter.admits(port(fields[1])?, port(fields[2])?) {
            count += 1;
        }
    }
    Ok(count)
}

/// Reads `/proc/net` as one process (or the calling thread) sees it: the
/// files of its network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcNet {
    dir: PathBuf,
}

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Parse(#[from] ParseError),
}

impl ProcNet {
    /// The calling thread's namespace (it may have entered another with
    /// setns; `/proc/self/net` would show the process's first thread's).
    pub fn this_thread() -> Self {
        ProcNet {
            dir: PathBuf::from("/proc/thread-self/net"),
        }
    }

    /// The namespace of process `pid`.
    pub fn of_process(pid: u32) -> Self {
        ProcNet {
            dir: PathBuf::from(format!("/proc/{pid}/net")),
        }
    }

    fn read(&self, file: &str) -> Result<String, ReadError> {
        let path = self.dir.join(file);
        std::fs::read_to_string(&path).map_err(|source| ReadError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// All TIME_WAIT sockets of the namespace.
    pub fn time_wait_total(&self) -> Result<u64, ReadError> {
        Ok(sockstat_time_wait(&self.read("sockstat")?)?)
    }

    /// Sockets (IPv4 and IPv6) in `states` that `filter` admits, from the
    /// text tables (slow with many sockets: see [`diag_sockets`]).
    pub fn sockets(&self, states: TcpStates, filter: &PortFilter) -> Result<u64, ReadError> {
        let mut n = tcp_sockets(&self.read("tcp")?, states, filter)?;
        // A kernel without IPv6 has no tcp6.
        if let Ok(text) = self.read("tcp6") {
            n += tcp_sockets(&text, states, filter)?;
        }
        Ok(n)
    }

    pub fn tcp_ext(&self) -> Result<BTreeMap<String, u64>, ReadError> {
        Ok(tcp_ext_counters(&self.read("netstat")?)?)
    }
}

/// Sockets (IPv4 and IPv6) in `states` of the calling thread's namespace
/// that `filter` admits, asked of the kernel over netlink (sock_diag, as
/// `ss` does): the kernel sends only sockets in those states, as binary
/// records, about a hundred times cheaper than formatting `/proc/net/tcp`
/// when tens of thousands are open.
pub fn diag_sockets(states: TcpStates, filter: &PortFilter) -> Result<u64, ReadError> {
    let socket = diag::DiagSocket::open().map_err(|source| ReadError::Io {
        path: "netlink sock_diag".into(),
        source,
    })?;
    let mut n = 0;
    for family in [libc::AF_INET, libc::AF_INET6] {
        n += socket
            .count(family as u8, states, filter)
            .map_err(|source| ReadError::Io {
                path: "netlink sock_diag".into(),
                source,
            })?;
    }
    Ok(n)
}

/// The sysctls that shape TIME_WAIT and the choice of ephemeral ports; a
/// churn trial records them as in force in each agent's namespace.
pub const CHURN_SYSCTLS: &[&str] = &[
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_max_tw_buckets",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_syncookies",
    "net.core.somaxconn",
];

/// The `TcpExt` counters a churn trial records before and after.
pub const TIME_WAIT_COUNTERS: &[&str] = &["TW", "TWRecycled", "TWKilled", "TCPTimeWaitOverflow"];

fn sysctl_path(name: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(name.replace('.', "/"))
}

/// Reads sysctls as the calling thread's network namespace has them (the
/// `net.*` tree belongs to the namespace of whoever opens it); a value is
/// its words joined by one space, and unreadable ones are left out.
pub fn read_sysctls(names: &[&str]) -> BTreeMap<String, String> {
    names
        .iter()
        .filter_map(|name| {
            let text = std::fs::read_to_string(sysctl_path(name)).ok()?;
            Some((
                name.to_string(),
                text.split_whitespace().collect::<Vec<_>>().join(" "),
            ))
        })
        .collect()
}

/// Sets a sysctl in the calling thread's network namespace.
pub fn write_sysctl(name: &str, value: &str) -> Result<(), ReadError> {
    let path = sysctl_path(name);
    std::fs::write(&path, value).map_err(|source| ReadError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Keeps only `names` of a counter map.
pub fn select_counters(all: &BTreeMap<String, u64>, names: &[&str]) -> BTreeMap<String, u64> {
    all.iter()
        .filter(|(k, _)| names.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// One sample: when, the namespace's TIME_WAIT total, and the sockets the
/// filter admits (`None` when not counted this time; see [`CountBudget`]).
pub type Sample = (u64, u64, Option<u64>);

/// Share of one core the per-trial count may take.
pub const COUNT_BUDGET: f64 = 0.02;

/// When the per-trial count may run again. Counting walks every TIME_WAIT
/// socket of the namespace in the kernel (~200 ns each: 20 ms at 100,000),
/// so a count that cost `c` waits `c / share` before the next: the sampler
/// never takes more than `share` of a core, however many sockets a
/// namespace holds; the cheap namespace total is sampled every time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CountBudget {
    share: f64,
    next_at: u64,
}

impl CountBudget {
    pub fn new(share: f64) -> Self {
        CountBudget { share, next_at: 0 }
    }

    pub fn due(&self, now: u64) -> bool {
        now >= self.next_at
    }

    /// A count ran from `start` to `end`.
    pub fn spent(&mut self, start: u64, end: u64) {
        self.next_at = end + ((end.saturating_sub(start)) as f64 / self.share) as u64;
    }
}

/// How long the last sample waits for the filter's sockets still closing
/// (FIN_WAIT1, FIN_WAIT2, CLOSING) to reach TIME_WAIT. A connection closed
/// just before the stop is in FIN_WAIT2 until its peer closes too, which a
/// busy peer may do hundreds of ms later: counted at once it would be
/// missing from the count the trial leaves behind. A peer that never
/// closes (gone, or behind a dead link) only delays the stop by this much.
pub const SETTLE_BOUND_NS: u64 = 2_000_000_000;

fn settle(filter: &PortFilter, proc_net: &ProcNet, clock: fn() -> u64) {
    let until = clock().saturating_add(SETTLE_BOUND_NS);
    let closing = || {
        diag_sockets(TcpStates::CLOSING, filter)
            .or_else(|_| proc_net.sockets(TcpStates::CLOSING, filter))
            .unwrap_or(0)
    };
    while closing() > 0 && clock() < until {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Samples TIME_WAIT at a fixed interval on a thread of its own, in the
/// network namespace of the thread that started it (threads inherit it).
/// The thread stops when the sampler is stopped or dropped.
pub struct TimeWaitSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Sample>>>,
}

impl TimeWaitSampler {
    /// `clock` gives the time of each sample (ns); the first is taken at
    /// once, the rest every `interval_ns` after it, and one more on stop,
    /// once the filter's sockets still closing have settled (see
    /// [`SETTLE_BOUND_NS`]).
    /// The first and the last always count the filter's sockets; the rest
    /// do within [`COUNT_BUDGET`]; without a filter, none do. A file that
    /// cannot be read skips that sample.
    pub fn start(interval_ns: u64, filter: Option<PortFilter>, clock: fn() -> u64) -> std::io::Result<Self> {
        use std::sync::atomic::Ordering;
        let interval_ns = interval_ns.max(1);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("time-wait sampler".into())
            .spawn(move || {
                let proc_net = ProcNet::this_thread();
                let mut budget = CountBudget::new(COUNT_BUDGET);
                let mut sample = |always: bool| {
                    let t = clock();
                    let total = proc_net.time_wait_total().ok()?;
                    let counted = filter.as_ref().filter(|_| always || budget.due(t));
                    let trial = counted.and_then(|filter| {
                        let start = clock();
                        let n = diag_sockets(TcpStates::TIME_WAIT, filter)
                            .or_else(|_| proc_net.sockets(TcpStates::TIME_WAIT, filter))
                            .ok();
                        budget.spent(start, clock());
                        n
                    });
                    Some((t, total, trial))
                };
                let mut samples = Vec::new();
                samples.extend(sample(true));
                let start = clock();
                let mut due = start + interval_ns;
                while !stopping.load(Ordering::Acquire) {
                    let now = clock();
                    if now < due {
                        std::thread::park_timeout(std::time::Duration::from_nanos(due - now));
                        continue;
                    }
                    samples.extend(sample(false));
                    // A late sample is not made up for: the next is due on
                    // the next tick still ahead.
                    due = start + ((clock() - start) / interval_ns + 1) * interval_ns;
                }
                if let Some(filter) = filter.as_ref() {
                    settle(filter, &proc_net, clock);
                }
                samples.extend(sample(true));
                samples
            })?;
        Ok(TimeWaitSampler {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops sampling (after one last sample) and returns the samples.
    pub fn stop(mut self) -> Vec<Sample> {
        self.halt()
    }

    fn halt(&mut self) -> Vec<Sample> {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        match self.thread.take() {
            Some(t) => {
                t.thread().unpark();
                t.join().unwrap_or_default()
            }
            None => Vec::new(),
        }
    }
}

impl Drop for TimeWaitSampler {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOCKSTAT: &str =
        "sockets: used 8\nTCP: inuse 1 orphan 0 tw 17 alloc 1 mem 10\nUDP: inuse 0 mem 0\n";

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1134 1 0 100 0 0 10 0
   1: 0100007F:9C40 0100007F:1F90 06 00000000:00000000 03:00001620 00000000     0        0 0 3 0
   2: 0100007F:9C41 0100007F:1F90 06 00000000:00000000 03:00001620 00000000     0        0 0 3 0
   3: 0100007F:1F90 0100007F:9C42 06 00000000:00000000 03:00001620 00000000     0        0 0 3 0
   4: 0100007F:C000 0100007F:0050 06 00000000:00000000 03:00001620 00000000     0        0 0 3 0
   5: 0100007F:9C43 0100007F:1F90 05 00000000:00000000 03:00001620 00000000     0        0 0 3 0
   6: 0100007F:9C44 0100007F:1F90 0B 00000000:00000000 03:00001620 00000000     0        0 0 3 0
";

    #[test]
    fn sockstat_gives_the_namespace_total() {
        assert_eq!(sockstat_time_wait(SOCKSTAT), Ok(17));
        assert!(matches!(
            sockstat_time_wait("UDP: inuse 0\n"),
            Err(ParseError::Missing { .. })
        ));
        assert!(matches!(
            sockstat_time_wait("TCP: inuse 1 tw x\n"),
            Err(ParseError::Malformed { .. })
        ));
    }

    #[test]
    fn tcp_counts_sockets_by_state_and_port() {
        // Ports: 0x9C40 = 40000, 0x1F90 = 8080, 0xC000 = 49152, 0x50 = 80.
        let tw = |filter: PortFilter| tcp_sockets(TCP, TcpStates::TIME_WAIT, &filter);
        assert_eq!(tw(PortFilter::Any), Ok(4));
        assert_eq!(tw(PortFilter::Local(40000..=40001)), Ok(2));
        assert_eq!(tw(PortFilter::Either(8080)), Ok(3));
        assert_eq!(tw(PortFilter::Either(80)), Ok(1));
        assert_eq!(tw(PortFilter::Remote(8080)), Ok(2));
        assert_eq!(tw(PortFilter::Local(8080..=8080)), Ok(1));
        // FIN_WAIT2 (05) and CLOSING (0B) are on their way; LISTEN (0A) is not.
        assert_eq!(tcp_sockets(TCP, TcpStates::CLOSING, &PortFilter::Any), Ok(2));
        assert_eq!(
            tcp_sockets(TCP, TcpStates::CLOSING, &PortFilter::Local(40003..=40003)),
            Ok(1)
        );
        assert!(tcp_sockets("header\n 1: x\n", TcpStates::TIME_WAIT, &PortFilter::Any).is_err());
        assert!(tcp_sockets("header\n 1: a b zz\n", TcpStates::TIME_WAIT, &PortFilter::Any).is_err());
    }

    #[test]
    fn the_count_waits_in_proportion_to_its_cost() {
        let mut b = CountBudget::new(0.02);
        assert!(b.due(0));
        // A 1 ms count: the next after 50 ms more.
        b.spent(100_000_000, 101_000_000);
        assert!(!b.due(150_000_000));
        assert!(b.due(151_000_000));
        // A 20 ms one (100,000 sockets): one a second.
        b.spent(200_000_000, 220_000_000);
        assert!(!b.due(1_000_000_000));
        assert!(b.due(1_220_000_000));
    }

    #[test]
    fn netstat_pairs_names_with_values() {
        let text = "TcpExt: SyncookiesSent TW TWRecycled TCPTimeWaitOverflow\nTcpExt: 0 2096 3 5\nIpExt: InNoRoutes\nIpExt: 0\n";
        let c = tcp_ext_counters(text).unwrap();
        assert_eq!((c["TW"], c["TWRecycled"], c["TCPTimeWaitOverflow"]), (2096, 3, 5));
        assert!(tcp_ext_counters("IpExt: a\nIpExt: 1\n").is_err());
    }
}
