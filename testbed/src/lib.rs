//! The one-machine testbed: a sender namespace and a receiver namespace,
//! each with a TUN device, joined by linkemu (one netem pipeline per
//! direction) running on a thread of the calling process.
//!
//! Everything made here is removed when its guard drops — on return, on
//! error and on panic, processes left in the namespaces included. A
//! process killed outright leaves its namespaces behind; each carries a
//! marker naming the process that made it ([`marker`]), by which
//! [`remove_stale`] finds them once that process is gone, stops what runs
//! in them and removes them. Namespaces without a marker are never touched.

pub mod link;
pub mod marker;
pub mod netem_netlink;
pub mod netns;
pub mod probe;
pub mod process;
pub mod schedule;
pub mod tun;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};
use thiserror::Error;

use linkemu::{ImpairSchedule, NetemSpec, ScheduledPipeline};
use transbench_reports::ScheduleChange;
use transbench_wire::clock::mono_now_ns;

use schedule::{NetemChanger, NetemQdisc, ScheduleClock};

pub use link::{Link, LinkStats};
pub use netns::{remove_left_by, remove_stale, Entered, NetNs, RemovedNamespace};

#[derive(Debug, Error)]
pub enum TestbedError {
    #[error(
        "the testbed needs root (network namespaces and TUN devices); run as root, or without impairment"
    )]
    NotRoot,
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl TestbedError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        TestbedError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Namespaces and TUN devices need root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Every name this process makes starts with `tb-<pid>-<n>`.
pub fn name_prefix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "tb-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Addresses on the point-to-point link, private to the two namespaces.
pub const SENDER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
pub const RECEIVER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 2);
/// The TUN device's name inside each namespace.
pub const TUN_NAME: &str = "tb0";
pub const MTU: u32 = 1500;
pub const TXQUEUELEN: u32 = 10_000;

/// Why a schedule that rejects runs on linkemu only.
pub const REJECT_NEEDS_LINKEMU: &str =
    "reject needs linkemu (--impair-backend linkemu, which auto picks for \
     a schedule that rejects): netem only drops, and this testbed adds no firewall rules to answer what it \
     drops";

/// Who impairs the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// linkemu over TUN devices, in this process: works on any kernel.
    Linkemu,
    /// tc netem on a router namespace's veth interfaces (kernel sch_netem).
    Netem,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Linkemu => "linkemu",
            Backend::Netem => "netem",
        }
    }
}

/// What this host's tc netem can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetemSupport {
    /// Whether tc and the kernel take `seed` (iproute2 and Linux >= ~6.6);
    /// without it netem's decisions cannot be repeated.
    pub seed: bool,
}

/// Whether this kernel has sch_netem, and what it takes: tried on the
/// loopback device of a namespace of our own, never on the host's
/// interfaces.
pub fn probe_netem() -> Result<Option<NetemSupport>, TestbedError> {
    let ns = NetNs::create(&format!("{}-probe", name_prefix()))?;
    let tc = |extra: &[&str]| {
        std::process::Command::new("tc")
            .args([
                "-n",
                ns.name(),
                "qdisc",
                "replace",
                "dev",
                "lo",
                "root",
                "netem",
                "delay",
                "1ms",
            ])
            .args(extra)
            .output()
            .map(|o| o.status.success())
            .map_err(|e| TestbedError::io("running tc (is iproute2 installed?)", e))
    };
    if !tc(&[])? {
        return Ok(None);
    }
    Ok(Some(NetemSupport {
        seed: tc(&["seed", "1"])?,
    }))
}

/// Two namespaces and the impaired path between them. Fields drop in
/// order: the link stops (closing its TUN devices) and netem's changers
/// stop before the namespaces go.
pub struct Testbed {
    link: Option<Link>,
    changers: Vec<NetemChanger>,
    /// Each direction's schedule, and when time 0 is: absent when both
    /// profiles are constant.
    schedules: Option<Schedules>,
    /// netem's middle namespace, held so it is removed with the rest.
    _router: Option<NetNs>,
    pub sender: NetNs,
    pub receiver: NetNs,
    pub backend: Backend,
}

fn configure_endpoint(ns: &NetNs, dev: &str, local: Ipv4Addr, peer: Ipv4Addr) -> Result<(), TestbedError> {
    // Only the trials' traffic crosses the link: no IPv6 link-local chatter
    // (router solicitations would take random draws and show in counters).
    let conf = format!("/proc/sys/net/ipv6/conf/{dev}/disable_ipv6");
    ns.run(move || std::fs::write(&conf, "1"))?
        .map_err(|e| TestbedError::io(format!("disabling IPv6 on {dev} in {}", ns.name()), e))?;
    ns.ip(&["link", "set", "lo", "up"])?;
    ns.ip(&[
        "link",
        "set",
        dev,
        "mtu",
        &MTU.to_string(),
        "txqueuelen",
        &TXQUEUELEN.to_string(),
        "up",
    ])?;
    ns.ip(&[
        "addr",
        "add",
        &format!("{local}/32"),
        "peer",
        &format!("{peer}/32"),
        "dev",
        dev,
    ])
}

impl Testbed {
    /// A link whose profiles hold throughout: `forward` impairs sender ->
    /// receiver, `reverse` the way back; `seed` seeds linkemu's pipelines
    /// (each direction differently) unless the profiles carry their own.
    pub fn up(
        backend: Backend,
        forward: &NetemSpec,
        reverse: &NetemSpec,
        seed: u64,
    ) -> Result<Self, TestbedError> {
        Self::up_scheduled(
            backend,
            &ImpairSchedule::constant(forward.clone()),
            &ImpairSchedule::constant(reverse.clone()),
            seed,
        )
    }

    /// A link following a schedule each way, held at their first profiles
    /// until [`Testbed::start_schedules`].
    pub fn up_scheduled(
        backend: Backend,
        forward: &ImpairSchedule,
        reverse: &ImpairSchedule,
        seed: u64,
    ) -> Result<Self, TestbedError> {
        if !is_root() {
            return Err(TestbedError::NotRoot);
        }
        if backend == Backend::Netem && (forward.rejects() || reverse.rejects()) {
            return Err(TestbedError::Unsupported(REJECT_NEEDS_LINKEMU.into()));
        }
        let schedules = (!forward.is_constant() || !reverse.is_constant()).then(|| Schedules {
            forward: forward.clone(),
            reverse: reverse.clone(),
            clock: ScheduleClock::default(),
        });
        let clock = schedules.as_ref().map(|s| s.clock.clone());
        let prefix = name_prefix();
        let sender = NetNs::create(&format!("{prefix}-snd"))?;
        let receiver = NetNs::create(&format!("{prefix}-rcv"))?;
        match backend {
            Backend::Linkemu => {
                let sender_tun = sender.run(|| tun::open(TUN_NAME))??;
                let receiver_tun = receiver.run(|| tun::open(TUN_NAME))??;
                configure_endpoint(&sender, TUN_NAME, SENDER_ADDR, RECEIVER_ADDR)?;
                configure_endpoint(&receiver, TUN_NAME, RECEIVER_ADDR, SENDER_ADDR)?;
                let link = Link::start(
                    sender_tun,
                    receiver_tun,
                    ScheduledPipeline::held(forward.clone(), seed),
                    ScheduledPipeline::held(reverse.clone(), seed ^ 0x9e37_79b9_7f4a_7c15),
                    clock,
                )?;
                Ok(Testbed {
                    link: Some(link),
                    changers: Vec::new(),
                    schedules,
                    _router: None,
                    sender,
                    receiver,
                    backend,
                })
            }
            Backend::Netem => {
                let router = NetNs::create(&format!("{prefix}-rtr"))?;
                netem_path(&sender, &router, &receiver, &forward.at(0), &reverse.at(0))?;
                let changers = match &clock {
                    None => Vec::new(),
                    Some(clock) => [
                        (forward, FORWARD_DEV, "forward"),
                        (reverse, REVERSE_DEV, "reverse"),
                    ]
                    .into_iter()
                    .filter(|(s, _, _)| !s.is_constant())
                    .map(|(s, device, direction)| {
                        let qdisc = NetemQdisc {
                            device: device.to_string(),
                            direction,
                        };
                        NetemChanger::start(s.clone(), &router, qdisc, clock)
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                };
                Ok(Testbed {
                    link: None,
                    changers,
                    schedules,
                    _router: Some(router),
                    sender,
                    receiver,
                    backend,
                })
            }
        }
    }

    /// Schedule time 0 is `epoch_ns` (the monotonic clock): the schedules
    /// run from their first profile, and keep running until
    /// [`Testbed::hold_schedules`]. Nothing happens without schedules.
    pub fn start_schedules(&self, epoch_ns: u64) {
        if let Some(clock) = self.schedule_clock() {
            clock.start(epoch_ns);
        }
    }

    /// The schedules' clock, for whoever knows when a trial starts.
    pub fn schedule_clock(&self) -> Option<ScheduleClock> {
        self.schedules.as_ref().map(|s| s.clock.clone())
    }

    /// Both schedules back to their first profiles; the changes made since
    /// the start, by schedule time (none without schedules or a start).
    pub fn hold_schedules(&self) -> Vec<ScheduleChange> {
        let Some(s) = &self.schedules else {
            return Vec::new();
        };
        let held_at = mono_now_ns();
        let Some(epoch) = s.clock.hold() else {
            return Vec::new();
        };
        let mut changes: Vec<ScheduleChange> = match self.backend {
            Backend::Netem => self.changers.iter().flat_map(NetemChanger::take_log).collect(),
            // linkemu makes each change at its time exactly.
            Backend::Linkemu => [(&s.forward, "forward"), (&s.reverse, "reverse")]
                .into_iter()
                .flat_map(|(schedule, direction)| {
                    let until = held_at.saturating_sub(epoch);
                    std::iter::successors(schedule.next_change_after(0), |&t| schedule.next_change_after(t))
                        .take_while(move |&t| t <= until)
                        .map(move |t| ScheduleChange {
                            direction: direction.into(),
                            at_ns: t,
                            profile: schedule.describe_at(t),
                            issued_ns: t,
                            applied_ns: t,
                            error: None,
                        })
                })
                .collect(),
        };
        changes.sort_by_key(|c| c.at_ns);
        changes
    }

    /// linkemu's per-direction counters (none for netem).
    pub fn link_stats(&self) -> Option<LinkStats> {
        self.link.as_ref().map(Link::stats)
    }
}

/// A scheduled link's schedules and clock.
struct Schedules {
    forward: ImpairSchedule,
    reverse: ImpairSchedule,
    clock: ScheduleClock,
}

/// The router's devices netem impairs: toward the receiver (forward) and
/// toward the sender (reverse).
const FORWARD_DEV: &str = "tbrr";
const REVERSE_DEV: &str = "tbrs";

/// A device's MAC address in a namespace.
fn mac(ns: &NetNs, dev: &str) -> Result<String, TestbedError> {
    let out = std::process::Command::new("ip")
        .args(["-n", ns.name(), "-o", "link", "show", "dev", dev])
        .output()
        .map_err(|e| TestbedError::io("running ip link show", e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .map(str::to_string)
        .ok_or_else(|| TestbedError::Command {
            what: format!("ip -n {} link show dev {dev}", ns.name()),
            detail: format!("no link/ether address in: {}", text.trim()),
        })
}

/// sender --veth-- router --veth-- receiver, with netem on the router's
/// egress towards each end, so neither end's own queues see the delay.
fn netem_path(
    sender: &NetNs,
    router: &NetNs,
    receiver: &NetNs,
    forward: &NetemSpec,
    reverse: &NetemSpec,
) -> Result<(), TestbedError> {
    const ROUTER_TO_SENDER: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 254);
    const ROUTER_TO_RECEIVER: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 253);
    for (end, end_dev, rtr_dev) in [(sender, "tbs", "tbrs"), (receiver, "tbr", "tbrr")] {
        router.ip(&[
            "link",
            "add",
            rtr_dev,
            "type",
            "veth",
            "peer",
            "name",
            end_dev,
            "netns",
            end.name(),
        ])?;
    }
    configure_endpoint(sender, "tbs", SENDER_ADDR, ROUTER_TO_SENDER)?;
    configure_endpoint(receiver, "tbr", RECEIVER_ADDR, ROUTER_TO_RECEIVER)?;
    configure_endpoint(router, "tbrs", ROUTER_TO_SENDER, SENDER_ADDR)?;
    configure_endpoint(router, "tbrr", ROUTER_TO_RECEIVER, RECEIVER_ADDR)?;
    sender.ip(&[
        "route",
        "add",
        &format!("{RECEIVER_ADDR}/32"),
        "via",
        &ROUTER_TO_SENDER.to_string(),
    ])?;
    receiver.ip(&[
        "route",
        "add",
        &format!("{SENDER_ADDR}/32"),
        "via",
        &ROUTER_TO_RECEIVER.to_string(),
    ])?;
    // ARP would cross netem too: a lost request stalls a path for a second
    // (the retry interval), longer than a probe lasts. Pin the neighbours.
    for (end, end_dev, end_addr, rtr_dev, rtr_addr) in [
        (sender, "tbs", SENDER_ADDR, "tbrs", ROUTER_TO_SENDER),
        (receiver, "tbr", RECEIVER_ADDR, "tbrr", ROUTER_TO_RECEIVER),
    ] {
        let (end_mac, rtr_mac) = (mac(end, end_dev)?, mac(router, rtr_dev)?);
        let pin = |ns: &NetNs, addr: Ipv4Addr, lladdr: &str, dev: &str| {
            ns.ip(&[
                "neigh",
                "replace",
                &addr.to_string(),
                "lladdr",
                lladdr,
                "dev",
                dev,
                "nud",
                "permanent",
            ])
        };
        pin(end, rtr_addr, &rtr_mac, end_dev)?;
        pin(router, end_addr, &end_mac, rtr_dev)?;
    }
    router
        .run(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"))?
        .map_err(|e| TestbedError::io("enabling forwarding in the router namespace", e))?;
    // Loss must hit real packets, not 64 KB aggregates (TCP or UDP GSO).
    for (ns, dev) in [
        (sender, "tbs"),
        (router, "tbrs"),
        (router, "tbrr"),
        (receiver, "tbr"),
    ] {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", ns.name(), "ethtool", "-K", dev])
            .args([
                "gso",
                "off",
                "gro",
                "off",
                "tso",
                "off",
                "tx-udp-segmentation",
                "off",
            ])
            .output()
            .map_err(|e| TestbedError::io("running ethtool (install it: netem needs offloads off)", e))?;
        if !out.status.success() {
            return Err(TestbedError::Command {
                what: format!("ethtool -K {dev} gso off gro off tso off tx-udp-segmentation off"),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
    }
    for (dev, spec) in [(FORWARD_DEV, forward), (REVERSE_DEV, reverse)] {
        let words = spec.to_string();
        let out = std::process::Command::new("tc")
            .args([
                "-n",
                router.name(),
                "qdisc",
                "replace",
                "dev",
                dev,
                "root",
                "netem",
            ])
            .args(words.split_whitespace())
            .output()
            .map_err(|e| TestbedError::io("running tc", e))?;
        if !out.status.success() {
            return Err(TestbedError::Command {
                what: format!("tc qdisc replace dev {dev} root netem {words}"),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
    }
    Ok(())
}
