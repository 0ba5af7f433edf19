//! The options of the workloads that open a connection per transaction:
//! churn (TIME_WAIT and port pressure) and handshake (setup cost).

use anyhow::bail;
use transbench_wire::CloseMode;

use super::{positive_rate, ClientPortArg, TrialArgs, TrialSpec};

pub const FLAGS: &[&str] = &[
    "--conn-rate",
    "--max-inflight",
    "--close",
    "--port-range",
    "--tw-reuse",
    "--client-port",
];
/// Connections per second unless --conn-rate says.
pub const CHURN_RATE: f64 = 200.0;
pub const HANDSHAKE_RATE: f64 = 20.0;
pub const DEFAULT_SIZE: usize = 64;

#[derive(Debug, Clone)]
pub struct ChurnSpec {
    /// Connections per second, open-loop.
    pub rate: f64,
    pub options: ChurnOptions,
}

impl ChurnSpec {
    pub fn from_args(args: &TrialArgs, default_rate: f64) -> Self {
        ChurnSpec {
            rate: args.conn_rate.unwrap_or(default_rate),
            options: ChurnOptions {
                close: args.close.unwrap_or_default(),
                max_inflight: args.max_inflight.unwrap_or(DEFAULT_MAX_INFLIGHT),
                port_cycle: args.client_port == Some(ClientPortArg::Cycle),
                port_range: args.port_range,
                port_range_in_namespace: false,
                tw_reuse: args.tw_reuse,
            },
        }
    }

    pub fn check(&self, trial: &TrialSpec) -> anyhow::Result<()> {
        positive_rate(self.rate, "--conn-rate", "connections")?;
        let quic = trial.transport.is_quic();
        if self.options.close == CloseMode::Rst && quic {
            bail!(
                "--close rst is TCP's abortive close (SO_LINGER 0); QUIC has none: use --close client or \
                 server, or leave QUIC out (--transport tcp,tcp+tls)"
            );
        }
        if !(1..=MAX_INFLIGHT).contains(&self.options.max_inflight) {
            bail!(
                "--max-inflight {} is out of range: 1 to {MAX_INFLIGHT}",
                self.options.max_inflight
            );
        }
        if self.options.port_cycle && quic {
            bail!(
                "--client-port cycle binds TCP client ports; QUIC uses one UDP socket for every connection: \
                 leave QUIC out (--transport tcp,tcp+tls)"
            );
        }
        Ok(())
    }
}

/// The churn knobs of a trial.
#[derive(Debug, Clone, PartialEq)]
pub struct ChurnOptions {
    pub close: CloseMode,
    /// Most transactions in flight at once.
    pub max_inflight: u32,
    /// Bind each local port of the range in turn instead of letting
    /// connect() choose.
    pub port_cycle: bool,
    /// Ephemeral ports for the client.
    pub port_range: Option<(u16, u16)>,
    /// Whether `port_range` is already the namespace's sysctl (the testbed
    /// set it); otherwise each socket gets IP_LOCAL_PORT_RANGE.
    pub port_range_in_namespace: bool,
    /// `net.ipv4.tcp_tw_reuse` for the testbed to set in the sender's
    /// namespace.
    pub tw_reuse: Option<u8>,
}

impl Default for ChurnOptions {
    fn default() -> Self {
        ChurnOptions {
            close: CloseMode::Client,
            max_inflight: DEFAULT_MAX_INFLIGHT,
            port_cycle: false,
            port_range: None,
            port_range_in_namespace: false,
            tw_reuse: None,
        }
    }
}

pub const DEFAULT_MAX_INFLIGHT: u32 = 1000;
pub const MAX_INFLIGHT: u32 = 65_536;

/// `LO-HI` (or `LO HI`, as the sysctl has it): an inclusive port range.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let err = || format!("{s:?} is not a port range: expected LO-HI, e.g. 40000-40199");
    let (lo, hi) = s.trim().split_once(['-', ' ', '\t']).ok_or_else(err)?;
    let (lo, hi): (u16, u16) = (
        lo.trim().parse().map_err(|_| err())?,
        hi.trim().parse().map_err(|_| err())?,
    );
    if lo == 0 || lo > hi {
        return Err(format!(
            "port range {lo}-{hi} is empty or starts at 0: LO must be 1 to HI"
        ));
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_parse_both_spellings() {
        assert_eq!(parse_port_range("40000-40199"), Ok((40000, 40199)));
        assert_eq!(parse_port_range("32768\t60999"), Ok((32768, 60999)));
        assert!(parse_port_range("5-4").unwrap_err().contains("empty"));
        assert!(parse_port_range("0-10").is_err());
        assert!(parse_port_range("40000").unwrap_err().contains("LO-HI"));
        assert!(parse_port_range("a-b").is_err());
    }
}
