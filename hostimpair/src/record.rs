//! A lease's state file and what to do with one found on disk. Pure: the
//! facts of the host (boot, namespace, processes, the root qdisc) come in
//! as arguments.

use std::fmt;

use serde::{Deserialize, Serialize};

use testbed::process::ProcStat;

use crate::qdisc::{QdiscHandle, RootQdisc};

/// The version of the state file's layout written here.
pub const RECORD_VERSION: u32 = 1;

/// What a state file says: which qdisc this host's receiver put on which
/// interface, from which process, in which boot. Written before the qdisc
/// is added, so a crash between the two leaves a record behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub version: u32,
    pub iface: String,
    /// The `ip netns` name tc ran in (`tc -n NAME`); null: the receiver's
    /// own namespace.
    pub netns: Option<String>,
    /// That namespace as the kernel tells them apart, `net:[INODE]`: an
    /// interface of the same name in another namespace is another one.
    pub netns_id: String,
    pub handle: QdiscHandle,
    /// The qdisc's kind as tc lists it.
    pub kind: String,
    /// tc's words after `root handle H:`.
    pub words: Vec<String>,
    /// While [`crate::QdiscLease::change`] swaps one kind for another: the
    /// kind that may still be there.
    #[serde(default)]
    pub changing_from: Option<String>,
    pub pid: u32,
    /// Field 22 of /proc/PID/stat, so a PID reused later is not the lessee.
    pub pid_start_time: u64,
    /// /proc/sys/kernel/random/boot_id when the lease was taken: qdiscs do
    /// not outlive a reboot.
    pub boot_id: String,
    /// Seconds since the Unix epoch.
    pub created_unix: u64,
}

impl LeaseRecord {
    /// `root` is the qdisc this record put there: our handle, and a kind
    /// the record names.
    pub fn is_ours(&self, root: &RootQdisc) -> bool {
        root.handle == self.handle
            && (root.kind == self.kind || self.changing_from.as_deref() == Some(root.kind.as_str()))
    }
}

/// The state file's name for `iface` in namespace `netns`: `IFACE.json`,
/// or `NETNS:IFACE.json` (an interface's name never holds `:`, so the two
/// never collide).
pub fn file_name(netns: Option<&str>, iface: &str) -> String {
    match netns {
        Some(ns) => format!("{ns}:{iface}.json"),
        None => format!("{iface}.json"),
    }
}

/// Who holds a record's lease now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lessee {
    /// No process runs that is the one that wrote it.
    Gone,
    /// The process calling: at start-up (recover), a lease it wrote before
    /// is one it leaked; for a new lease, one it may still hold.
    ThisProcess,
    /// Another process that is still running.
    Running,
}

/// Who `record`'s lessee is, given what /proc says of its PID now.
pub fn lessee(record: &LeaseRecord, me: u32, now: Option<ProcStat>) -> Lessee {
    match now {
        Some(stat) if stat.start_time == record.pid_start_time && !stat.has_exited() => {
            if record.pid == me {
                Lessee::ThisProcess
            } else {
                Lessee::Running
            }
        }
        _ => Lessee::Gone,
    }
}

/// What became of a lease, found at start-up or given back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Our qdisc was still the root and is deleted: the kernel's default
    /// is back.
    Removed,
    /// The host has rebooted since the lease was taken, so nothing of it
    /// is left; the interface was not touched.
    Rebooted,
    /// The network namespace is gone or is another one now; nothing was
    /// touched.
    NamespaceGone,
    /// The interface is gone.
    InterfaceGone,
    /// The root is the kernel's default already; nothing to do.
    AlreadyDefault { kind: String },
    /// Someone else's qdisc is the root now: left alone.
    Foreign { kind: String, handle: QdiscHandle },
    /// The process that took the lease still runs: its record and qdisc
    /// are left alone (only from [`crate::LeaseBook::recover`]).
    HeldByRunningProcess { pid: u32 },
    /// The state file did not parse; renamed to `*.unreadable` for a human
    /// to look at, the interface not touched.
    Unreadable { why: String },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Removed => write!(f, "our qdisc deleted, the kernel's default is back"),
            Outcome::Rebooted => write!(
                f,
                "the host rebooted since, nothing left to undo; interface not touched"
            ),
            Outcome::NamespaceGone => {
                write!(
                    f,
                    "its network namespace is gone or another one now; nothing touched"
                )
            }
            Outcome::InterfaceGone => write!(f, "the interface is gone; nothing to undo"),
            Outcome::AlreadyDefault { kind } => {
                write!(
                    f,
                    "the root is the kernel's default ({kind}) already; nothing to undo"
                )
            }
            Outcome::Foreign { kind, handle } => write!(
                f,
                "someone else's qdisc ({kind} {handle}) is the root now; left alone"
            ),
            Outcome::HeldByRunningProcess { pid } => write!(
                f,
                "process {pid}, which took the lease, still runs; its record and qdisc left alone"
            ),
            Outcome::Unreadable { why } => {
                write!(
                    f,
                    "the state file does not parse ({why}); kept as *.unreadable, nothing touched"
                )
            }
        }
    }
}

/// What the host is now, as far as a record needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNow<'a> {
    pub boot_id: &'a str,
    /// The identity of the record's namespace now; `None`: it is gone.
    pub netns_id: Option<&'a str>,
    pub lessee: Lessee,
}

/// What to do with a record found at start-up, before looking at the
/// interface: `Err(outcome)` when the facts settle it without touching
/// anything, `Ok(())` when the interface's root decides ([`on_interface`]).
/// A lease of the calling process is taken for leaked: recover runs at
/// start-up, before this process leases anything.
pub fn before_interface(record: &LeaseRecord, host: &HostNow<'_>) -> Result<(), Outcome> {
    if record.boot_id != host.boot_id {
        return Err(Outcome::Rebooted);
    }
    if host.lessee == Lessee::Running {
        return Err(Outcome::HeldByRunningProcess { pid: record.pid });
    }
    if host.netns_id != Some(record.netns_id.as_str()) {
        return Err(Outcome::NamespaceGone);
    }
    Ok(())
}

/// What the interface's root says about the lease: `None` when it is ours
/// and to be deleted; otherwise what happened, with nothing to do.
pub fn on_interface(record: &LeaseRecord, root: Option<&RootQdisc>) -> Option<Outcome> {
    match root {
        Some(root) if record.is_ours(root) => None,
        Some(root) if root.is_kernel_default() => Some(Outcome::AlreadyDefault {
            kind: root.kind.clone(),
        }),
        Some(root) => Some(Outcome::Foreign {
            kind: root.kind.clone(),
            handle: root.handle,
        }),
        None => Some(Outcome::AlreadyDefault { kind: "noop".into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> LeaseRecord {
        LeaseRecord {
            version: RECORD_VERSION,
            iface: "v0".into(),
            netns: Some("tb-1-0".into()),
            netns_id: "net:[4026532238]".into(),
            handle: QdiscHandle(0x7462),
            kind: "tbf".into(),
            words: ["tbf", "rate", "100mbit", "burst", "32kbit", "latency", "50ms"]
                .map(String::from)
                .to_vec(),
            changing_from: None,
            pid: 1234,
            pid_start_time: 5678,
            boot_id: "24488f3b-4647-44ef-a177-c2cec4257574".into(),
            created_unix: 1_700_000_000,
        }
    }

    fn host(lessee: Lessee) -> HostNow<'static> {
        HostNow {
            boot_id: "24488f3b-4647-44ef-a177-c2cec4257574",
            netns_id: Some("net:[4026532238]"),
            lessee,
        }
    }

    fn root(kind: &str, handle: u16) -> RootQdisc {
        RootQdisc {
            kind: kind.into(),
            handle: QdiscHandle(handle),
        }
    }

    #[test]
    fn records_round_trip_through_json_with_the_handle_as_tc_writes_it() {
        let r = record();
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""handle":"7462:""#), "{json}");
        assert!(json.contains(r#""boot_id":"24488f3b"#), "{json}");
        assert_eq!(serde_json::from_str::<LeaseRecord>(&json).unwrap(), r);
        // changing_from may be absent.
        let without: String = json.replace(r#","changing_from":null"#, "");
        assert_ne!(without, json);
        assert_eq!(serde_json::from_str::<LeaseRecord>(&without).unwrap(), r);
    }

    #[test]
    fn state_file_names_keep_namespaces_apart() {
        assert_eq!(file_name(None, "eth1"), "eth1.json");
        assert_eq!(file_name(Some("lab"), "eth1"), "lab:eth1.json");
        assert_ne!(file_name(Some("lab"), "eth1"), file_name(None, "eth1"));
        // The interface is what follows the last ':' (names never hold one),
        // even when the namespace's name holds some.
        let name = file_name(Some("a:b"), "eth1");
        assert_eq!(
            name.strip_suffix(".json").unwrap().rsplit_once(':'),
            Some(("a:b", "eth1"))
        );
    }

    #[test]
    fn the_lessee_is_the_pid_that_started_when_recorded() {
        let r = record();
        let alive = |start| {
            Some(ProcStat {
                state: 'S',
                start_time: start,
            })
        };
        assert_eq!(lessee(&r, 1, alive(5678)), Lessee::Running);
        assert_eq!(lessee(&r, 1234, alive(5678)), Lessee::ThisProcess);
        // The PID went to another process since.
        assert_eq!(lessee(&r, 1, alive(9999)), Lessee::Gone);
        assert_eq!(lessee(&r, 1, None), Lessee::Gone);
        let zombie = Some(ProcStat {
            state: 'Z',
            start_time: 5678,
        });
        assert_eq!(lessee(&r, 1, zombie), Lessee::Gone);
    }

    #[test]
    fn host_facts_settle_a_record_before_the_interface_is_looked_at() {
        let r = record();
        assert_eq!(before_interface(&r, &host(Lessee::Gone)), Ok(()));
        assert_eq!(before_interface(&r, &host(Lessee::ThisProcess)), Ok(()));
        assert_eq!(
            before_interface(&r, &host(Lessee::Running)),
            Err(Outcome::HeldByRunningProcess { pid: 1234 })
        );
        let rebooted = HostNow {
            boot_id: "00000000-0000-0000-0000-000000000000",
            ..host(Lessee::Running)
        };
        // After a reboot the PID means nothing: the reboot decides.
        assert_eq!(before_interface(&r, &rebooted), Err(Outcome::Rebooted));
        let gone = HostNow {
            netns_id: None,
            ..host(Lessee::Gone)
        };
        assert_eq!(before_interface(&r, &gone), Err(Outcome::NamespaceGone));
        let other = HostNow {
            netns_id: Some("net:[1]"),
            ..host(Lessee::Gone)
        };
        assert_eq!(before_interface(&r, &other), Err(Outcome::NamespaceGone));
    }

    #[test]
    fn only_our_handle_with_our_kind_is_deleted() {
        let mut r = record();
        assert_eq!(on_interface(&r, Some(&root("tbf", 0x7462))), None);
        assert_eq!(
            on_interface(&r, Some(&root("pfifo", 0x7462))),
            Some(Outcome::Foreign {
                kind: "pfifo".into(),
                handle: QdiscHandle(0x7462)
            })
        );
        assert_eq!(
            on_interface(&r, Some(&root("tbf", 1))),
            Some(Outcome::Foreign {
                kind: "tbf".into(),
                handle: QdiscHandle(1)
            })
        );
        assert_eq!(
            on_interface(&r, Some(&root("noqueue", 0))),
            Some(Outcome::AlreadyDefault {
                kind: "noqueue".into()
            })
        );
        assert_eq!(
            on_interface(&r, None),
            Some(Outcome::AlreadyDefault { kind: "noop".into() })
        );
        // Mid-change from pfifo to tbf, either may be there.
        r.changing_from = Some("pfifo".into());
        assert_eq!(on_interface(&r, Some(&root("pfifo", 0x7462))), None);
        assert_eq!(on_interface(&r, Some(&root("tbf", 0x7462))), None);
    }

    #[test]
    fn every_outcome_says_what_was_done() {
        for o in [
            Outcome::Removed,
            Outcome::Rebooted,
            Outcome::NamespaceGone,
            Outcome::InterfaceGone,
            Outcome::AlreadyDefault {
                kind: "noqueue".into(),
            },
            Outcome::Foreign {
                kind: "tbf".into(),
                handle: QdiscHandle(1),
            },
            Outcome::HeldByRunningProcess { pid: 7 },
            Outcome::Unreadable { why: "EOF".into() },
        ] {
            let text = o.to_string();
            assert!(text.len() > 20, "{o:?}: {text}");
        }
        assert!(Outcome::Foreign {
            kind: "tbf".into(),
            handle: QdiscHandle(1)
        }
        .to_string()
        .contains("tbf 1:"));
    }
}
