//! Which network namespaces transbench made, and for whom: a marker file
//! per namespace, `/run/transbench/netns/NAME`, written when the
//! namespace is made and removed with it. Only a marked namespace whose
//! owner is gone is ever cleaned up ([`crate::remove_stale`]); a name that
//! merely looks like ours is never taken as ours.
//!
//! A marker names its owner by PID *and* start time, so a PID the kernel
//! has given to another process since does not pass for a live owner, and
//! the namespace by its inode, so a namespace that got the name after ours
//! was deleted is not taken for ours. /run is a tmpfs, like /run/netns:
//! markers and namespaces go together at a reboot.

use std::io::Write;
use std::path::PathBuf;
use thiserror::Error;

use crate::process::ProcStat;

/// Where the markers are.
pub const MARKER_DIR: &str = "/run/transbench/netns";

/// A process, told apart from any later one that reuses its PID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    /// Field 22 of /proc/PID/stat.
    pub start_time: u64,
}

impl Owner {
    pub fn current() -> std::io::Result<Owner> {
        let pid = std::process::id();
        Owner::of(pid).ok_or_else(|| std::io::Error::other(format!("cannot read /proc/{pid}/stat")))
    }

    /// The process that has `pid` now, if any.
    pub fn of(pid: u32) -> Option<Owner> {
        ProcStat::read(pid).map(|s| Owner {
            pid,
            start_time: s.start_time,
        })
    }

    /// Whether this owner still runs, given what /proc says about its PID
    /// now (`None`: no process has it).
    pub fn runs_as(&self, now: Option<&ProcStat>) -> bool {
        now.is_some_and(|s| s.start_time == self.start_time && !s.has_exited())
    }

    pub fn is_running(&self) -> bool {
        self.runs_as(ProcStat::read(self.pid).as_ref())
    }
}

/// What a marker file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub owner: Owner,
    /// The namespace's inode (`stat -L /run/netns/NAME`) when it was made.
    pub netns_inode: u64,
}

const HEADER: &str = "transbench network namespace";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MarkerError {
    #[error("not a transbench marker: first line {0:?}")]
    Header(String),
    #[error("no {0} line")]
    Missing(&'static str),
    #[error("{key} {value:?}: not a number")]
    Number { key: &'static str, value: String },
    #[error("unexpected line {0:?}")]
    Unexpected(String),
}

impl Marker {
    pub fn format(&self) -> String {
        format!(
            "{HEADER}\nowner_pid {}\nowner_start_time {}\nnetns_inode {}\n",
            self.owner.pid, self.owner.start_time, self.netns_inode
        )
    }

    pub fn parse(text: &str) -> Result<Marker, MarkerError> {
        let mut lines = text.lines();
        let first = lines.next().unwrap_or("");
        if first != HEADER {
            return Err(MarkerError::Header(first.to_string()));
        }
        let (mut pid, mut start_time, mut inode) = (None, None, None);
        for line in lines {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            let slot = match key {
                "owner_pid" => &mut pid,
                "owner_start_time" => &mut start_time,
                "netns_inode" => &mut inode,
                _ => return Err(MarkerError::Unexpected(line.to_string())),
            };
            if slot.is_some() {
                return Err(MarkerError::Unexpected(line.to_string()));
            }
            *slot = Some(value);
        }
        fn number<T: std::str::FromStr>(key: &'static str, value: Option<&str>) -> Result<T, MarkerError> {
            let value = value.ok_or(MarkerError::Missing(key))?;
            value.parse().map_err(|_| MarkerError::Number {
                key,
                value: value.to_string(),
            })
        }
        Ok(Marker {
            owner: Owner {
                pid: number("owner_pid", pid)?,
                start_time: number("owner_start_time", start_time)?,
            },
            netns_inode: number("netns_inode", inode)?,
        })
    }
}

/// What to do about a marked namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Its owner runs: the owner removes it.
    OwnerRunning,
    /// Its owner is gone and the name still names the namespace it made:
    /// stop the processes in it, remove it and the marker.
    Stale,
    /// Its owner is gone and the name names no namespace, or another one
    /// than the owner made: only the marker is left to remove.
    MarkerOnly,
}

/// The decision, from the marker, the process that has the owner's PID now
/// (if any) and the inode of the namespace the name now names (if any).
pub fn judge(marker: &Marker, owner_pid_now: Option<&ProcStat>, netns_inode_now: Option<u64>) -> Verdict {
    if marker.owner.runs_as(owner_pid_now) {
        Verdict::OwnerRunning
    } else if netns_inode_now == Some(marker.netns_inode) {
        Verdict::Stale
    } else {
        Verdict::MarkerOnly
    }
}

/// The marker file of namespace `name`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(MARKER_DIR).join(name)
}

/// Writes namespace `name`'s marker whole or not at all (a temporary file
/// renamed into place): a process killed meanwhile leaves no half marker.
pub fn write(name: &str, marker: &Marker) -> std::io::Result<()> {
    std::fs::create_dir_all(MARKER_DIR)?;
    // Dot files are never taken for markers.
    let temporary = PathBuf::from(MARKER_DIR).join(format!(".{name}.new"));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(marker.format().as_bytes())?;
    drop(file);
    std::fs::rename(&temporary, path(name))
}

/// Removes namespace `name`'s marker; one already gone is no error.
pub fn remove(name: &str) -> std::io::Result<()> {
    match std::fs::remove_file(path(name)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: Owner = Owner {
        pid: 4242,
        start_time: 987_654,
    };
    const MARKER: Marker = Marker {
        owner: OWNER,
        netns_inode: 4_026_532_999,
    };

    fn running(start_time: u64) -> Option<ProcStat> {
        Some(ProcStat {
            state: 'S',
            start_time,
        })
    }

    #[test]
    fn a_marker_reads_back_as_written() {
        let text = MARKER.format();
        assert_eq!(
            text,
            "transbench network namespace\nowner_pid 4242\nowner_start_time 987654\nnetns_inode 4026532999\n"
        );
        assert_eq!(Marker::parse(&text), Ok(MARKER));
    }

    #[test]
    fn anything_else_is_not_a_marker() {
        let good = MARKER.format();
        assert_eq!(Marker::parse(""), Err(MarkerError::Header(String::new())));
        assert_eq!(
            Marker::parse("4242 987654\n"),
            Err(MarkerError::Header("4242 987654".into()))
        );
        assert_eq!(
            Marker::parse(&good.replace("netns_inode 4026532999\n", "")),
            Err(MarkerError::Missing("netns_inode"))
        );
        assert_eq!(
            Marker::parse(&good.replace("4242", "-1")),
            Err(MarkerError::Number {
                key: "owner_pid",
                value: "-1".into()
            })
        );
        assert_eq!(
            Marker::parse(&format!("{good}owner_pid 1\n")),
            Err(MarkerError::Unexpected("owner_pid 1".into()))
        );
        assert_eq!(
            Marker::parse(&format!("{good}color blue\n")),
            Err(MarkerError::Unexpected("color blue".into()))
        );
    }

    #[test]
    fn an_owner_that_runs_keeps_its_namespace() {
        assert_eq!(
            judge(&MARKER, running(987_654).as_ref(), Some(MARKER.netns_inode)),
            Verdict::OwnerRunning
        );
        // Even where the namespace is not (yet, or any more) the one marked:
        // the owner is in charge of its own.
        assert_eq!(
            judge(&MARKER, running(987_654).as_ref(), None),
            Verdict::OwnerRunning
        );
    }

    #[test]
    fn a_gone_owner_leaves_a_stale_namespace() {
        assert_eq!(judge(&MARKER, None, Some(MARKER.netns_inode)), Verdict::Stale);
    }

    #[test]
    fn an_owner_that_exited_but_was_not_reaped_is_gone() {
        let zombie = ProcStat {
            state: 'Z',
            start_time: 987_654,
        };
        assert_eq!(
            judge(&MARKER, Some(&zombie), Some(MARKER.netns_inode)),
            Verdict::Stale
        );
    }

    #[test]
    fn a_reused_pid_is_not_the_owner() {
        for other_start in [987_653, 987_655, 0] {
            assert_eq!(
                judge(&MARKER, running(other_start).as_ref(), Some(MARKER.netns_inode)),
                Verdict::Stale,
                "{other_start}"
            );
        }
    }

    #[test]
    fn a_name_that_names_another_namespace_or_none_is_not_touched() {
        assert_eq!(
            judge(&MARKER, None, Some(MARKER.netns_inode + 1)),
            Verdict::MarkerOnly
        );
        assert_eq!(judge(&MARKER, None, None), Verdict::MarkerOnly);
    }

    #[test]
    fn this_process_is_a_running_owner() {
        let me = Owner::current().unwrap();
        assert!(me.is_running());
        let reused = Owner {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!reused.is_running());
    }
}
