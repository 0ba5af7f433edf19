//! The one-machine testbed: a sender namespace and a receiver namespace,
//! each with a TUN device, joined by linkemu (one netem pipeline per
//! direction) running on a thread of the calling process.
//!
//! Everything made here is removed when its guard drops — on return, on
//! error and on panic; a process killed outright leaves namespaces behind,
//! which [`remove_stale`] finds by the dead PID in their name and removes.

pub mod link;
pub mod netns;
pub mod probe;
pub mod tun;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};
use thiserror::Error;

use linkemu::{NetemSpec, Pipeline};

pub use link::{Link, LinkStats};
pub use netns::{remove_stale, NetNs};

#[derive(Debug, Error)]
pub enum TestbedError {
    #[error(
        "the testbed needs root (network namespaces and TUN devices); run as root, or without impairment"
    )]
    NotRoot,
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
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

/// Two namespaces and the emulated link between them. Drop order matters:
/// the link stops (closing the TUN devices) before the namespaces go.
pub struct Testbed {
    pub link: Link,
    pub sender: NetNs,
    pub receiver: NetNs,
}

impl Testbed {
    /// `forward` impairs sender -> receiver, `reverse` the way back;
    /// `seed` seeds both pipelines (each direction differently) unless the
    /// profiles carry their own.
    pub fn up(forward: &NetemSpec, reverse: &NetemSpec, seed: u64) -> Result<Self, TestbedError> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(TestbedError::NotRoot);
        }
        let prefix = name_prefix();
        let sender = NetNs::create(&format!("{prefix}-snd"))?;
        let receiver = NetNs::create(&format!("{prefix}-rcv"))?;
        let sender_tun = sender.run(|| tun::open(TUN_NAME))??;
        let receiver_tun = receiver.run(|| tun::open(TUN_NAME))??;
        for (ns, local, peer) in [
            (&sender, SENDER_ADDR, RECEIVER_ADDR),
            (&receiver, RECEIVER_ADDR, SENDER_ADDR),
        ] {
            ns.ip(&["link", "set", "lo", "up"])?;
            ns.ip(&[
                "link",
                "set",
                TUN_NAME,
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
                TUN_NAME,
            ])?;
        }
        let link = Link::start(
            sender_tun,
            receiver_tun,
            Pipeline::new(forward, seed),
            Pipeline::new(reverse, seed ^ 0x9e37_79b9_7f4a_7c15),
        )?;
        Ok(Testbed {
            link,
            sender,
            receiver,
        })
    }
}
