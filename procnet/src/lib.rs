//! What the kernel says about TCP sockets, from `/proc/net`: the TIME_WAIT
//! count of a network namespace (`sockstat`'s `tw`), TIME_WAIT sockets of
//! one trial (`tcp` and `tcp6`, by port), and the `TcpExt` counters of
//! `netstat` (TW, TWRecycled, TCPTimeWaitOverflow...).
//!
//! The parsers are pure and take the files' text; [`ProcNet`] reads them for
//! a process or the calling thread, so each sees the files of its own
//! network namespace.

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

/// Which TIME_WAIT sockets of `/proc/net/tcp{,6}` count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortFilter {
    /// Every socket.
    Any,
    /// Local port in the range (the client's ephemeral ports of a trial).
    Local(RangeInclusive<u16>),
    /// Local or remote port equal to this (a trial's server port).
    Either(u16),
}

impl PortFilter {
    fn admits(&self, local: u16, remote: u16) -> bool {
        match self {
            PortFilter::Any => true,
            PortFilter::Local(range) => range.contains(&local),
            PortFilter::Either(port) => local == *port || remote == *port,
        }
    }
}

/// The `st` of a TIME_WAIT socket in `/proc/net/tcp` (TCP_TIME_WAIT).
const TIME_WAIT: &str = "06";

/// TIME_WAIT sockets in the text of `/proc/net/tcp` or `/proc/net/tcp6`
/// that `filter` admits.
pub fn tcp_time_wait(text: &str, filter: &PortFilter) -> Result<u64, ParseError> {
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
        if fields[3] != TIME_WAIT {
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

    /// TIME_WAIT sockets (IPv4 and IPv6) that `filter` admits.
    pub fn time_wait(&self, filter: &PortFilter) -> Result<u64, ReadError> {
        let mut n = tcp_time_wait(&self.read("tcp")?, filter)?;
        // A kernel without IPv6 has no tcp6.
        if let Ok(text) = self.read("tcp6") {
            n += tcp_time_wait(&text, filter)?;
        }
        Ok(n)
    }

    pub fn tcp_ext(&self) -> Result<BTreeMap<String, u64>, ReadError> {
        Ok(tcp_ext_counters(&self.read("netstat")?)?)
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
    fn tcp_counts_time_wait_by_port() {
        // Ports: 0x9C40 = 40000, 0x1F90 = 8080, 0xC000 = 49152, 0x50 = 80.
        assert_eq!(tcp_time_wait(TCP, &PortFilter::Any), Ok(4));
        assert_eq!(tcp_time_wait(TCP, &PortFilter::Local(40000..=40001)), Ok(2));
        assert_eq!(tcp_time_wait(TCP, &PortFilter::Either(8080)), Ok(3));
        assert_eq!(tcp_time_wait(TCP, &PortFilter::Either(80)), Ok(1));
        assert!(tcp_time_wait("header\n 1: x\n", &PortFilter::Any).is_err());
    }

    #[test]
    fn netstat_pairs_names_with_values() {
        let text = "TcpExt: SyncookiesSent TW TWRecycled TCPTimeWaitOverflow\nTcpExt: 0 2096 3 5\nIpExt: InNoRoutes\nIpExt: 0\n";
        let c = tcp_ext_counters(text).unwrap();
        assert_eq!((c["TW"], c["TWRecycled"], c["TCPTimeWaitOverflow"]), (2096, 3, 5));
        assert!(tcp_ext_counters("IpExt: a\nIpExt: 1\n").is_err());
    }
}
