//! The leases on disk and on the interfaces: taking one, changing it,
//! giving it back, and recovering what a receiver that died left behind.

use std::fmt;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::qdisc::{interface_name_problem, qdisc_kind};
use crate::record::{
    before_interface, file_name, lessee, on_interface, HostNow, LeaseRecord, Lessee, Outcome, RECORD_VERSION,
};
use crate::tc::{Deleted, Device, Tc};
use crate::{LeaseError, QdiscHandle, LEASE_HANDLE};
use testbed::process::ProcStat;

const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
/// The calling thread's network namespace: the one tc started from it
/// runs in.
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";
/// Where `ip netns` keeps its names.
const NETNS_RUN_DIR: &str = "/run/netns";

/// The record, on disk, of the interfaces this host's receiver has
/// impaired: one state file per leased interface, in a directory only
/// root reads ([`crate::DEFAULT_STATE_DIR`] in production).
#[derive(Debug)]
pub struct LeaseBook {
    dir: PathBuf,
    netns: Option<String>,
    /// Where this book's own leases are recorded: `dir` for a named
    /// namespace (its records name it, and tc reaches it from anywhere);
    /// for the calling thread's, a directory of that namespace's own
    /// (`net-INODE`), so two namespaces sharing `dir` (two agents on one
    /// host) neither collide on an interface's name nor settle each
    /// other's leases, which only their own namespace can reach.
    own: PathBuf,
}

/// One state file found by [`LeaseBook::recover`], and what was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub iface: String,
    pub netns: Option<String>,
    pub state_file: PathBuf,
    pub outcome: Outcome,
}

impl fmt::Display for Recovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = match &self.netns {
            Some(ns) => format!(" in network namespace {ns}"),
            None => String::new(),
        };
        write!(
            f,
            "impairment of {}{ns} left by an earlier run ({}): {}",
            self.iface,
            self.state_file.display(),
            self.outcome
        )
    }
}

impl LeaseBook {
    /// The book in `dir`, made (mode 0700) if missing. `netns`: tc runs as
    /// `tc -n NETNS` for leases taken here (tests); `None`, in the calling
    /// thread's namespace (the receiver).
    pub fn open(dir: &Path, netns: Option<&str>) -> Result<LeaseBook, LeaseError> {
        if let Some(ns) = netns {
            if ns.is_empty() || ns == "." || ns == ".." || ns.contains('/') || ns.contains('\0') {
                return Err(LeaseError::BadNamespaceName { netns: ns.into() });
            }
        }
        let own = match netns {
            Some(_) => dir.to_path_buf(),
            None => namespace_dir(dir)?,
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&own)
            .map_err(|source| LeaseError::State {
                what: "making the state directory",
                path: own.clone(),
                source,
            })?;
        Ok(LeaseBook {
            dir: dir.to_path_buf(),
            netns: netns.map(str::to_string),
            own,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the state file of a lease on `iface` (in this book's
    /// namespace) is while the lease lasts.
    pub fn state_file(&self, iface: &str) -> PathBuf {
        self.own.join(file_name(self.netns.as_deref(), iface))
    }

    /// For the receiver's start: settles every lease an earlier run left
    /// (one killed, or a host that crashed). Our qdisc still the root of
    /// its interface: deleted, the kernel's default back. Otherwise (a
    /// reboot since, the namespace or interface gone, the kernel's default
    /// there already, or someone else's qdisc) nothing on the interface is
    /// touched. Either way the state file goes. Left alone, file and all:
    /// a lease whose process still runs (another receiver sharing the
    /// directory). A lease of the calling process counts as left behind:
    /// call this before leasing anything. A state file that does not parse
    /// is renamed `*.unreadable` and reported.
    ///
    /// Stops at the first failure to run tc or to write the directory,
    /// that lease's state file kept for the next try.
    pub fn recover(&self) -> Result<Vec<Recovered>, LeaseError> {
        let mut paths = Vec::new();
        // The named namespaces' records, and this namespace's own.
        let dirs = if self.own == self.dir {
            vec![&self.dir]
        } else {
            vec![&self.dir, &self.own]
        };
        for dir in dirs {
            let entries = std::fs::read_dir(dir).map_err(|source| LeaseError::State {
                what: "reading the state directory",
                path: dir.clone(),
                source,
            })?;
            for entry in entries {
                let entry = entry.map_err(|source| LeaseError::State {
                    what: "reading the state directory",
                    path: dir.clone(),
                    source,
                })?;
                if let Ok(name) = entry.file_name().into_string() {
                    paths.push((dir.join(&name), name));
                }
            }
        }
        paths.sort();
        let mut recovered = Vec::new();
        for (path, name) in paths {
            if let Some(pid) = temporary_file_pid(&name) {
                // A writer that died before linking its record into place:
                // no qdisc was added after it.
                if ProcStat::read(pid).is_none() {
                    remove_file(&path)?;
                }
            } else if name.ends_with(".json") && !name.starts_with('.') {
                recovered.extend(settle(&path)?);
            }
        }
        Ok(recovered)
    }

    /// Impairs `iface` with `qdisc` (tc's words after `root`, such as
    /// `tbf rate 100mbit burst 32kbit latency 50ms`) until the lease is
    /// given back or dropped.
    ///
    /// Refused: an interface not in `allowed`, or not there; one whose
    /// root qdisc is not the kernel's own (handle `0:`); one leased
    /// already, by a process that still runs (this one included). A state
    /// file left by a process that is gone is settled first, as
    /// [`LeaseBook::recover`] would, and logged.
    pub fn lease(&self, iface: &str, allowed: &[String], qdisc: &[String]) -> Result<QdiscLease, LeaseError> {
        if !allowed.iter().any(|a| a == iface) {
            return Err(LeaseError::NotAllowed {
                iface: iface.into(),
                allowed: allowed.to_vec(),
            });
        }
        if let Some(why) = interface_name_problem(iface) {
            return Err(LeaseError::BadInterfaceName {
                iface: iface.into(),
                why,
            });
        }
        let kind = qdisc_kind(qdisc)?.to_string();
        let path = self.state_file(iface);
        let me = Owner::current()?;
        let boot_id = read_boot_id()?;
        if let Some(found) = read_record(&path)? {
            if let Ok(found) = &found {
                let held = found.boot_id == boot_id
                    && lessee(found, me.pid, ProcStat::read(found.pid)) != Lessee::Gone;
                if held {
                    return Err(LeaseError::AlreadyLeased {
                        iface: iface.into(),
                        pid: found.pid,
                        path,
                    });
                }
            }
            if let Some(settled) = settle(&path)? {
                tracing::warn!("{settled}");
            }
        }
        let netns_id = netns_id(self.netns.as_deref())?.ok_or_else(|| LeaseError::NoSuchNamespace {
            netns: self.netns.clone().unwrap_or_default(),
        })?;
        let tc = Tc {
            netns: self.netns.as_deref(),
        };
        match tc.device(iface)? {
            Device::Missing => {
                return Err(LeaseError::NoSuchInterface {
                    iface: iface.into(),
                    netns: self.netns.clone(),
                })
            }
            Device::Root(Some(root)) if !root.is_kernel_default() => {
                return Err(LeaseError::ForeignQdisc {
                    iface: iface.into(),
                    kind: root.kind,
                    handle: root.handle,
                })
            }
            Device::Root(_) => {}
        }
        let mut record = LeaseRecord {
            version: RECORD_VERSION,
            iface: iface.into(),
            netns: self.netns.clone(),
            netns_id,
            handle: LEASE_HANDLE,
            kind,
            words: qdisc.to_vec(),
            changing_from: None,
            pid: me.pid,
            pid_start_time: me.start_time,
            boot_id,
            created_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        if !write_new(&path, &record)? {
            let pid = read_record(&path)?
                .and_then(Result::ok)
                .map(|r| r.pid)
                .unwrap_or(0);
            return Err(LeaseError::AlreadyLeased {
                iface: iface.into(),
                pid,
                path,
            });
        }
        // The record is on disk: from here on a crash leaves something for
        // recover() to act on. tc's add fails if a root qdisc appeared
        // meanwhile ("NLM_F_REPLACE needed").
        if let Err(e) = tc.set("add", iface, LEASE_HANDLE, qdisc) {
            remove_file(&path)?;
            return Err(e);
        }
        // tc may list the kind under another name than the word asked for:
        // the record names it as listed, which is what recover() compares.
        if let Ok(Device::Root(Some(root))) = tc.device(iface) {
            if root.handle == LEASE_HANDLE && root.kind != record.kind {
                record.kind = root.kind;
                write_over(&path, &record)?;
            }
        }
        Ok(QdiscLease {
            path,
            record,
            finished: false,
        })
    }
}

/// A root qdisc of ours on an interface, until [`QdiscLease::restore`] or
/// drop gives the interface its kernel default back.
#[derive(Debug)]
#[must_use = "dropping the lease gives the interface back at once"]
pub struct QdiscLease {
    path: PathBuf,
    record: LeaseRecord,
    finished: bool,
}

impl QdiscLease {
    pub fn iface(&self) -> &str {
        &self.record.iface
    }

    pub fn netns(&self) -> Option<&str> {
        self.record.netns.as_deref()
    }

    pub fn handle(&self) -> QdiscHandle {
        self.record.handle
    }

    /// The kind of qdisc in place, as tc lists it.
    pub fn kind(&self) -> &str {
        &self.record.kind
    }

    /// tc's words of the qdisc in place.
    pub fn words(&self) -> &[String] {
        &self.record.words
    }

    pub fn state_file(&self) -> &Path {
        &self.path
    }

    fn tc(&self) -> Tc<'_> {
        Tc {
            netns: self.record.netns.as_deref(),
        }
    }

    /// Puts `qdisc` in place of the present one, same handle. The same
    /// kind: `tc qdisc change`, in place. Another kind (which tc cannot
    /// change or replace under the same handle): ours is deleted and the
    /// new one added, the record naming both kinds meanwhile, so a crash
    /// in between leaves nothing recover() would not take back; if the add
    /// fails, the interface is left at the kernel's default and the error
    /// says so.
    pub fn change(&mut self, qdisc: &[String]) -> Result<(), LeaseError> {
        let kind = qdisc_kind(qdisc)?.to_string();
        let before = self.record.clone();
        if kind == self.record.kind {
            self.tc().set("change", &before.iface, before.handle, qdisc)?;
            self.record.words = qdisc.to_vec();
            return write_over(&self.path, &self.record);
        }
        self.record.changing_from = Some(before.kind.clone());
        self.record.kind = kind;
        self.record.words = qdisc.to_vec();
        write_over(&self.path, &self.record)?;
        let tc = Tc {
            netns: before.netns.as_deref(),
        };
        let swapped = match tc.delete(&before.iface, before.handle) {
            Ok(Deleted::Yes) => tc.set("add", &before.iface, before.handle, qdisc).map_err(|e| match e {
                LeaseError::Tc {
                    command,
                    status,
                    stderr,
                    ..
                } => LeaseError::Tc {
                    command,
                    status,
                    stderr,
                    hint: "the interface is at the kernel's default now (the earlier qdisc was deleted first); check the new qdisc's words",
                },
                other => other,
            }),
            Ok(Deleted::NotThatHandle) => {
                let now = self.current_root();
                Err(LeaseError::ForeignQdisc {
                    iface: before.iface.clone(),
                    kind: now.as_ref().map_or_else(|| "noop".into(), |r| r.kind.clone()),
                    handle: now.map_or(QdiscHandle::KERNEL, |r| r.handle),
                })
            }
            Ok(Deleted::Missing) => Err(LeaseError::NoSuchInterface {
                iface: before.iface.clone(),
                netns: before.netns.clone(),
            }),
            Err(e) => Err(e),
        };
        match swapped {
            Ok(()) => {
                self.record.changing_from = None;
                write_over(&self.path, &self.record)
            }
            Err(e) => {
                self.record = before;
                write_over(&self.path, &self.record)?;
                Err(e)
            }
        }
    }

    fn current_root(&self) -> Option<crate::RootQdisc> {
        match self.tc().device(&self.record.iface) {
            Ok(Device::Root(root)) => root,
            _ => None,
        }
    }

    /// Gives the interface back: our root qdisc deleted if it still is the
    /// root (the kernel's default returns), nothing touched otherwise;
    /// then the state file goes. On error the state file stays, for the
    /// receiver's next start.
    pub fn restore(mut self) -> Result<Outcome, LeaseError> {
        self.finished = true;
        give_back(&self.path, &self.record)
    }
}

impl Drop for QdiscLease {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        match give_back(&self.path, &self.record) {
            Ok(outcome) => tracing::info!("impairment of {} given back: {outcome}", self.record.iface),
            Err(e) => tracing::error!(
                "could not give back the impairment of {}: {e}; the receiver's next start tries again",
                self.record.iface
            ),
        }
    }
}

/// Ends a lease of this process: deletes our qdisc where it still is
/// the root, then the state file.
fn give_back(path: &Path, record: &LeaseRecord) -> Result<Outcome, LeaseError> {
    let outcome = on_interface_now(record)?;
    remove_file(path)?;
    Ok(outcome)
}

/// What to do with the lease recorded in `path`, done: see
/// [`LeaseBook::recover`]. `None`: the file was gone already (settled by
/// someone else meanwhile).
fn settle(path: &Path) -> Result<Option<Recovered>, LeaseError> {
    let from_name = |name: &str| {
        let stem = name.strip_suffix(".json").unwrap_or(name);
        match stem.rsplit_once(':') {
            Some((ns, iface)) => (iface.to_string(), Some(ns.to_string())),
            None => (stem.to_string(), None),
        }
    };
    let record = match read_record(path)? {
        None => return Ok(None),
        Some(Err(why)) => {
            let (iface, netns) = from_name(&path.file_name().unwrap_or_default().to_string_lossy());
            let mut aside = path.as_os_str().to_owned();
            aside.push(".unreadable");
            std::fs::rename(path, &aside).map_err(|source| LeaseError::State {
                what: "renaming an unreadable state file",
                path: path.to_path_buf(),
                source,
            })?;
            return Ok(Some(Recovered {
                iface,
                netns,
                state_file: path.to_path_buf(),
                outcome: Outcome::Unreadable { why },
            }));
        }
        Some(Ok(record)) => record,
    };
    let boot_id = read_boot_id()?;
    let netns_now = netns_id(record.netns.as_deref())?;
    let host = HostNow {
        boot_id: &boot_id,
        netns_id: netns_now.as_deref(),
        lessee: lessee(&record, std::process::id(), ProcStat::read(record.pid)),
    };
    let outcome = match before_interface(&record, &host) {
        Err(outcome @ Outcome::HeldByRunningProcess { .. }) => outcome,
        Err(outcome) => {
            remove_file(path)?;
            outcome
        }
        Ok(()) => {
            let outcome = on_interface_now(&record)?;
            remove_file(path)?;
            outcome
        }
    };
    Ok(Some(Recovered {
        iface: record.iface,
        netns: record.netns,
        state_file: path.to_path_buf(),
        outcome,
    }))
}

/// Looks at the record's interface and deletes our qdisc if it is the
/// root; what it found. Touches nothing else.
fn on_interface_now(record: &LeaseRecord) -> Result<Outcome, LeaseError> {
    if netns_id(record.netns.as_deref())?.as_deref() != Some(record.netns_id.as_str()) {
        return Ok(Outcome::NamespaceGone);
    }
    let tc = Tc {
        netns: record.netns.as_deref(),
    };
    // Twice at most: a qdisc put in ours' place between the look and the
    // delete makes the kernel refuse the delete, and is then looked at.
    for _ in 0..2 {
        let root = match tc.device(&record.iface)? {
            Device::Missing => return Ok(Outcome::InterfaceGone),
            Device::Root(root) => root,
        };
        if let Some(outcome) = on_interface(record, root.as_ref()) {
            return Ok(outcome);
        }
        match tc.delete(&record.iface, record.handle)? {
            Deleted::Yes => return Ok(Outcome::Removed),
            Deleted::Missing => return Ok(Outcome::InterfaceGone),
            Deleted::NotThatHandle => continue,
        }
    }
    match tc.device(&record.iface)? {
        Device::Missing => Ok(Outcome::InterfaceGone),
        Device::Root(root) => Ok(on_interface(record, root.as_ref()).unwrap_or(Outcome::Foreign {
            kind: record.kind.clone(),
            handle: record.handle,
        })),
    }
}

/// This process, as a record names it.
struct Owner {
    pid: u32,
    start_time: u64,
}

impl Owner {
    fn current() -> Result<Owner, LeaseError> {
        let pid = std::process::id();
        let stat = ProcStat::read(pid).ok_or_else(|| LeaseError::Host {
            path: PathBuf::from(format!("/proc/{pid}/stat")),
            source: std::io::Error::new(ErrorKind::InvalidData, "no start time in it"),
        })?;
        Ok(Owner {
            pid,
            start_time: stat.start_time,
        })
    }
}

fn read_boot_id() -> Result<String, LeaseError> {
    std::fs::read_to_string(BOOT_ID)
        .map(|s| s.trim().to_string())
        .map_err(|source| LeaseError::Host {
            path: BOOT_ID.into(),
            source,
        })
}

/// Where the calling thread's namespace keeps its own lease records in
/// the state directory `dir`: `dir/net-INODE`.
pub fn namespace_dir(dir: &Path) -> Result<PathBuf, LeaseError> {
    let id = netns_id(None)?.unwrap_or_default();
    let inode: String = id.chars().filter(char::is_ascii_digit).collect();
    Ok(dir.join(format!("net-{inode}")))
}

/// The network namespace tc runs in, `net:[INODE]`: the named one's, or
/// the calling thread's; `None` if the named one does not exist.
fn netns_id(netns: Option<&str>) -> Result<Option<String>, LeaseError> {
    match netns {
        Some(name) => {
            let path = Path::new(NETNS_RUN_DIR).join(name);
            match std::fs::metadata(&path) {
                Ok(meta) => Ok(Some(format!("net:[{}]", meta.ino()))),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(source) => Err(LeaseError::Host { path, source }),
            }
        }
        None => std::fs::read_link(THREAD_NETNS)
            .map(|p| Some(p.to_string_lossy().into_owned()))
            .map_err(|source| LeaseError::Host {
                path: THREAD_NETNS.into(),
                source,
            }),
    }
}

/// The record in `path`: `None` if there is no such file, `Some(Err(why))`
/// if it does not parse.
fn read_record(path: &Path) -> Result<Option<Result<LeaseRecord, String>>, LeaseError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|e| e.to_string()))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LeaseError::State {
            what: "reading state file",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `.NAME.PID-N.tmp`: a record being written, by process PID.
fn temporary_file_pid(name: &str) -> Option<u32> {
    let inner = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (_, tail) = inner.rsplit_once('.')?;
    tail.split_once('-')?.0.parse().ok()
}

/// Writes `record` to a temporary file next to `path`, synced.
fn write_temporary(path: &Path, record: &LeaseRecord) -> Result<PathBuf, LeaseError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = dir.join(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let state = |what, source| LeaseError::State {
        what,
        path: temporary.clone(),
        source,
    };
    let mut json = serde_json::to_vec_pretty(record).expect("a record always serializes");
    json.push(b'\n');
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|e| state("creating state file", e))?;
    file.write_all(&json)
        .and_then(|()| file.sync_all())
        .map_err(|e| state("writing state file", e))?;
    Ok(temporary)
}

/// Puts `record` at `path` whole, unless a file is there already: whether
/// it did. Synced, directory included, before it returns.
fn write_new(path: &Path, record: &LeaseRecord) -> Result<bool, LeaseError> {
    let temporary = write_temporary(path, record)?;
    let linked = std::fs::hard_link(&temporary, path);
    remove_file(&temporary)?;
    match linked {
        Ok(()) => {
            sync_dir(path)?;
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(source) => Err(LeaseError::State {
            what: "linking state file into place at",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Puts `record` at `path` whole, in place of what is there.
fn write_over(path: &Path, record: &LeaseRecord) -> Result<(), LeaseError> {
    let temporary = write_temporary(path, record)?;
    if let Err(source) = std::fs::rename(&temporary, path) {
        let _ = std::fs::remove_file(&temporary);
        return Err(LeaseError::State {
            what: "renaming state file into place at",
            path: path.to_path_buf(),
            source,
        });
    }
    sync_dir(path)
}

/// Removes `path` (one gone already is no error), durably.
fn remove_file(path: &Path) -> Result<(), LeaseError> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(path),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(source) => Err(LeaseError::State {
            what: "removing state file",
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn sync_dir(path: &Path) -> Result<(), LeaseError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| LeaseError::State {
            what: "syncing the state directory",
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_files_name_their_writer() {
        assert_eq!(temporary_file_pid(".eth1.json.4242-0.tmp"), Some(4242));
        assert_eq!(temporary_file_pid(".ns:eth1.json.7-13.tmp"), Some(7));
        assert_eq!(temporary_file_pid("eth1.json"), None);
        assert_eq!(temporary_file_pid(".eth1.json.tmp"), None);
        assert_eq!(temporary_file_pid("eth1.json.unreadable"), None);
    }

    #[test]
    fn the_book_makes_its_directory_private_and_refuses_bad_namespace_names() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("a/b");
        let book = LeaseBook::open(&dir, None).unwrap();
        let own = namespace_dir(&dir).unwrap();
        for private in [&dir, &own] {
            let mode = std::fs::metadata(private).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", private.display());
        }
        // This namespace's own, apart from any other's.
        assert_eq!(book.state_file("eth1"), own.join("eth1.json"));
        assert!(own.file_name().unwrap().to_string_lossy().starts_with("net-"));
        let in_ns = LeaseBook::open(&dir, Some("lab")).unwrap();
        assert_eq!(in_ns.state_file("eth1"), dir.join("lab:eth1.json"));
        for bad in ["", "..", "a/b"] {
            assert!(matches!(
                LeaseBook::open(&dir, Some(bad)),
                Err(LeaseError::BadNamespaceName { .. })
            ));
        }
    }

    #[test]
    fn refusals_that_need_no_interface_come_first() {
        let dir = tempfile::tempdir().unwrap();
        let book = LeaseBook::open(dir.path(), Some("tb-no-such-namespace")).unwrap();
        let tbf: Vec<String> = ["tbf", "rate", "1mbit", "burst", "32kbit", "latency", "50ms"]
            .map(String::from)
            .to_vec();
        let allowed = vec!["eth1".to_string(), "a/b".to_string()];
        let e = book.lease("eth2", &allowed, &tbf).unwrap_err();
        assert!(
            matches!(e, LeaseError::NotAllowed { ref iface, .. } if iface == "eth2"),
            "{e}"
        );
        let e = book.lease("a/b", &allowed, &tbf).unwrap_err();
        assert!(matches!(e, LeaseError::BadInterfaceName { .. }), "{e}");
        let e = book.lease("eth1", &allowed, &[]).unwrap_err();
        assert!(matches!(e, LeaseError::BadQdisc(_)), "{e}");
        let e = book.lease("eth1", &allowed, &tbf).unwrap_err();
        assert!(
            matches!(e, LeaseError::NoSuchNamespace { ref netns } if netns == "tb-no-such-namespace"),
            "{e}"
        );
        // Nothing was written.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn recover_sets_unreadable_records_aside_and_clears_dead_writers_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let book = LeaseBook::open(dir.path(), None).unwrap();
        std::fs::write(dir.path().join("lab:eth1.json"), "{\"version\": 1, \"iface\"").unwrap();
        // PIDs never exceed 2^22: this writer is gone.
        std::fs::write(dir.path().join(".eth2.json.999999999-0.tmp"), "{").unwrap();
        let live = format!(".eth3.json.{}-0.tmp", std::process::id());
        std::fs::write(dir.path().join(&live), "{").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not ours").unwrap();

        let recovered = book.recover().unwrap();
        assert_eq!(recovered.len(), 1, "{recovered:?}");
        assert_eq!(recovered[0].iface, "eth1");
        assert_eq!(recovered[0].netns.as_deref(), Some("lab"));
        assert!(
            matches!(&recovered[0].outcome, Outcome::Unreadable { why } if why.contains("EOF")),
            "{recovered:?}"
        );
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let own = namespace_dir(dir.path()).unwrap();
        let own = own.file_name().unwrap().to_str().unwrap();
        let mut expected = [live.as_str(), "lab:eth1.json.unreadable", "notes.txt", own];
        expected.sort();
        assert_eq!(names, expected);
        // Set aside, it is not reported again.
        assert!(book.recover().unwrap().is_empty());
    }

    #[test]
    fn records_are_written_whole_and_never_over_another() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eth1.json");
        let mut record = LeaseRecord {
            version: RECORD_VERSION,
            iface: "eth1".into(),
            netns: None,
            netns_id: "net:[1]".into(),
            handle: LEASE_HANDLE,
            kind: "tbf".into(),
            words: vec!["tbf".into()],
            changing_from: None,
            pid: 1,
            pid_start_time: 2,
            boot_id: "b".into(),
            created_unix: 3,
        };
        assert!(write_new(&path, &record).unwrap());
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        record.pid = 9;
        assert!(!write_new(&path, &record).unwrap());
        assert_eq!(read_record(&path).unwrap().unwrap().unwrap().pid, 1);
        write_over(&path, &record).unwrap();
        assert_eq!(read_record(&path).unwrap().unwrap().unwrap().pid, 9);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["eth1.json"], "no temporary file left");
        remove_file(&path).unwrap();
        remove_file(&path).unwrap();
        assert!(read_record(&path).unwrap().is_none());
    }
}
