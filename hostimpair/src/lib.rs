//! A lease on a real interface's root qdisc: `transbench receiver`
//! impairs its own host's egress for one trial, at an authenticated
//! sender's request, and gives the interface back afterwards.
//!
//! The contract (issue 20):
//!
//! - only interfaces the receiver was started with (`--allow-impair
//!   IFACE`) are ever changed: [`LeaseBook::lease`] takes that list and
//!   refuses any other name ([`LeaseError::NotAllowed`]);
//! - only an interface whose root qdisc is the kernel's own (handle `0:`,
//!   see [`qdisc`]) is leased: one with a qdisc somebody else set is
//!   refused ([`LeaseError::ForeignQdisc`]) and left as it is;
//! - the lease is written to disk ([`LeaseBook`], one JSON file per
//!   interface, temporary file + fsync + link into place) *before* tc adds
//!   the qdisc, under a handle of our own ([`LEASE_HANDLE`]), so a crash
//!   at any point leaves a record;
//! - the kernel's default comes back at the trial's end
//!   ([`QdiscLease::restore`]), when the lease is dropped (a session that
//!   ends any way at all), and at the receiver's next start for what a
//!   killed receiver left ([`LeaseBook::recover`]). Giving back deletes
//!   our root qdisc (`tc qdisc del dev X root handle 7462:`, which the
//!   kernel refuses if the root has another handle by then), so whatever
//!   the kernel attaches by default is back; nothing else is touched:
//!   not after a reboot, not an interface that went away, not a qdisc
//!   somebody put there since.
//!
//! Pure parts: [`qdisc`] (tc's JSON, handles, the words of a qdisc,
//! interface names) and [`record`] (the state file and the decisions on
//! one found at start-up). The I/O: [`LeaseBook`], [`QdiscLease`] and the
//! tc runner.

mod book;
pub mod qdisc;
pub mod record;
mod tc;

use std::path::PathBuf;

use thiserror::Error;

pub use book::{namespace_dir, LeaseBook, QdiscLease, Recovered};
pub use qdisc::{parse_leased_root, parse_root_qdisc, parse_set_below_root, QdiscHandle, RootQdisc};
pub use record::{LeaseRecord, Outcome};

/// Where the receiver keeps its leases in production.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/transbench/impair";

/// The handle of every root qdisc a lease adds ("tb" in ASCII). A root
/// qdisc with this handle and no state file is somebody else's as far as
/// a lease is concerned.
pub const LEASE_HANDLE: QdiscHandle = QdiscHandle(0x7462);

#[derive(Debug, Error)]
pub enum LeaseError {
    #[error(
        "interface {iface} is not one this host may impair (allowed: {}); to allow it, add --allow-impair {iface} where this host's transbench starts (`transbench receiver` on the receiver's host, `transbench run` on the sender's)",
        list_or_none(allowed)
    )]
    NotAllowed { iface: String, allowed: Vec<String> },
    #[error("{iface:?} cannot be an interface's name: {why}; name it as `ip link` shows it")]
    BadInterfaceName { iface: String, why: &'static str },
    #[error(
        "no interface named {iface}{}; check the name with `ip link`",
        in_netns(netns)
    )]
    NoSuchInterface { iface: String, netns: Option<String> },
    #[error(
        "network namespace {netns} does not exist (no /run/netns/{netns}); name one `ip netns list` shows"
    )]
    NoSuchNamespace { netns: String },
    #[error(
        "interface {iface} already has a qdisc transbench did not set ({kind} {handle}); it is left as it is: remove it (`tc qdisc del dev {iface} root`) if nothing needs it, or impair another interface"
    )]
    ForeignQdisc {
        iface: String,
        kind: String,
        handle: QdiscHandle,
    },
    #[error(
        "interface {iface} is leased already, by process {pid} (state file {}); end that trial first, or stop that process and restart the receiver, which gives the interface back",
        path.display()
    )]
    AlreadyLeased { iface: String, pid: u32, path: PathBuf },
    #[error("bad qdisc: {0}")]
    BadQdisc(#[from] qdisc::QdiscWordsError),
    #[error("`{command}` failed ({status}): {stderr}; {hint}")]
    Tc {
        command: String,
        status: String,
        stderr: String,
        hint: &'static str,
    },
    #[error("could not run tc ({source}); is iproute2 installed and on PATH?")]
    TcNotRun {
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` printed what this does not understand: {source}")]
    TcOutput {
        command: String,
        #[source]
        source: qdisc::TcOutputError,
    },
    #[error(
        "{what} {}: {source}; the state directory must be the receiver's to write (run it as root, or give it a directory it owns)",
        path.display()
    )]
    State {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {}: {source}; a lease needs Linux's /proc", path.display())]
    Host {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{netns:?} cannot be a network namespace's name (empty, ., .., or holds '/'); name one `ip netns list` shows")]
    BadNamespaceName { netns: String },
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn in_netns(netns: &Option<String>) -> String {
    match netns {
        Some(ns) => format!(" in network namespace {ns}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_was_wrong_and_what_to_do() {
        let e = LeaseError::NotAllowed {
            iface: "eth1".into(),
            allowed: vec!["eth2".into(), "eth3".into()],
        };
        let text = e.to_string();
        assert!(
            text.contains("eth2, eth3") && text.contains("--allow-impair eth1"),
            "{text}"
        );
        let none = LeaseError::NotAllowed {
            iface: "eth1".into(),
            allowed: vec![],
        };
        assert!(none.to_string().contains("(allowed: none)"), "{none}");
        let foreign = LeaseError::ForeignQdisc {
            iface: "eth1".into(),
            kind: "tbf".into(),
            handle: QdiscHandle(1),
        }
        .to_string();
        assert!(
            foreign.contains("(tbf 1:)") && foreign.contains("tc qdisc del dev eth1 root"),
            "{foreign}"
        );
        let missing = LeaseError::NoSuchInterface {
            iface: "eth9".into(),
            netns: Some("lab".into()),
        }
        .to_string();
        assert!(missing.contains("eth9 in network namespace lab"), "{missing}");
    }
}
