//! Network namespaces made with iproute2 (`ip netns`), so they are visible
//! to `ip netns exec` and removed with `ip netns del`; each marked as ours
//! ([`crate::marker`]) for as long as it exists.

use std::collections::HashSet;
use std::fs::File;
use std::marker::PhantomData;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::marker::{self, judge, Marker, Owner, Verdict};
use crate::process::{Pidfd, ProcStat};
use crate::TestbedError;

/// Where `ip netns` keeps its names.
const NETNS_RUN_DIR: &str = "/run/netns";

/// A named network namespace, marked as this process's; on drop the
/// processes in it are stopped and it is deleted, its marker with it.
pub struct NetNs {
    name: String,
}

fn run_ip(args: &[&str]) -> Result<(), TestbedError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| TestbedError::io("running ip (is iproute2 installed?)", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(TestbedError::Command {
            what: format!("ip {}", args.join(" ")),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

impl NetNs {
    /// Makes namespace `name` and marks it as this process's. Marked after
    /// it is made, so a marker never claims a namespace someone else made
    /// under the name; a process killed in between leaves one unmarked,
    /// which nothing removes for it.
    pub fn create(name: &str) -> Result<Self, TestbedError> {
        let owner = Owner::current().map_err(|e| TestbedError::io("reading this process's start time", e))?;
        run_ip(&["netns", "add", name])?;
        // From here on, dropping it removes it again.
        let ns = NetNs {
            name: name.to_string(),
        };
        let id = NsId::named(name)
            .map_err(|e| TestbedError::io(format!("reading namespace {name} just made"), e))?;
        let marker = Marker {
            owner,
            netns_inode: id.inode,
        };
        marker::write(name, &marker).map_err(|e| {
            TestbedError::io(format!("marking namespace {name} in {}", marker::MARKER_DIR), e)
        })?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS...`
    pub fn ip(&self, args: &[&str]) -> Result<(), TestbedError> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run_ip(&all)
    }

    /// The processes in the namespace, this one excepted.
    pub fn pids(&self) -> Vec<u32> {
        NsId::named(&self.name).map(members).unwrap_or_default()
    }

    /// Moves the calling thread into the namespace: sockets it opens, and
    /// processes it starts, live there until the guard is dropped, which
    /// moves the thread back to the namespace it came from.
    pub fn enter(&self) -> Result<Entered, TestbedError> {
        let previous =
            File::open(THREAD_NETNS).map_err(|e| TestbedError::io(format!("opening {THREAD_NETNS}"), e))?;
        let path = format!("{NETNS_RUN_DIR}/{}", self.name);
        let file = File::open(&path).map_err(|e| TestbedError::io(format!("opening {path}"), e))?;
        setns(&file).map_err(|e| TestbedError::io(format!("entering network namespace {}", self.name), e))?;
        Ok(Entered {
            previous,
            name: self.name.clone(),
            _this_thread: PhantomData,
        })
    }

    /// Runs `f` on a fresh thread inside the namespace (file descriptors it
    /// returns keep working anywhere).
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, TestbedError> {
        let name = self.name.clone();
        let ns = NetNs { name: name.clone() };
        let joined = std::thread::spawn(move || {
            let entered = ns.enter();
            std::mem::forget(ns);
            entered.map(|_inside| f())
        })
        .join();
        match joined {
            Ok(result) => result,
            Err(_) => Err(TestbedError::Command {
                what: format!("a task in namespace {name}"),
                detail: "panicked".into(),
            }),
        }
    }
}

/// The calling thread's network namespace.
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

fn setns(ns: &File) -> std::io::Result<()> {
    // SAFETY: setns on a namespace fd we hold open; it affects only the
    // calling thread.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Which network namespace the calling thread is in, as the kernel names
/// it (`net:[4026531840]`): equal for threads in the same one.
pub fn current() -> std::io::Result<String> {
    Ok(std::fs::read_link(THREAD_NETNS)?.to_string_lossy().into_owned())
}

/// The calling thread inside a namespace ([`NetNs::enter`]); dropping it
/// moves the thread back. Bound to the thread that entered (not `Send`).
#[must_use = "the thread leaves the namespace again when this is dropped"]
pub struct Entered {
    previous: File,
    name: String,
    _this_thread: PhantomData<*const ()>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.previous) {
            // Everything this thread opens from now on would land in the
            // wrong namespace: no measurement can be trusted after this.
            tracing::error!("cannot leave network namespace {}: {e}", self.name);
            std::process::abort();
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // A process left in it would keep the namespace alive, nameless,
        // after `ip netns del`.
        if let Ok(id) = NsId::named(&self.name) {
            let stopped = stop_processes_in(id);
            if !stopped.left.is_empty() {
                tracing::warn!(
                    "processes {:?} in network namespace {} outlived SIGKILL",
                    stopped.left,
                    self.name
                );
            }
        }
        match run_ip(&["netns", "del", &self.name]) {
            Ok(()) => {
                if let Err(e) = marker::remove(&self.name) {
                    tracing::warn!(
                        "could not remove the marker of network namespace {}: {e}",
                        self.name
                    );
                }
            }
            // The marker stays: once this process is gone, the next
            // remove_stale tries again.
            Err(e) => tracing::warn!("could not remove network namespace {}: {e}", self.name),
        }
    }
}

/// A network namespace as the kernel tells them apart: the device and
/// inode of its nsfs file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NsId {
    dev: u64,
    inode: u64,
}

impl NsId {
    fn of(path: impl AsRef<Path>) -> std::io::Result<NsId> {
        let meta = std::fs::metadata(path)?;
        Ok(NsId {
            dev: meta.dev(),
            inode: meta.ino(),
        })
    }

    /// The namespace `ip netns` has under `name`.
    fn named(name: &str) -> std::io::Result<NsId> {
        NsId::of(format!("{NETNS_RUN_DIR}/{name}"))
    }

    /// The namespace process `pid` is in (its main thread's, as `ip netns
    /// pids` counts).
    fn of_process(pid: u32) -> std::io::Result<NsId> {
        NsId::of(format!("/proc/{pid}/ns/net"))
    }
}

/// The processes in namespace `ns`, this one excepted (its threads may be
/// inside; it is never stopped here).
fn members(ns: NsId) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && NsId::of_process(pid).is_ok_and(|id| id == ns))
        .collect()
}

/// How long processes get to exit after SIGTERM, and after SIGKILL (one in
/// uninterruptible sleep may take a while); how often the namespace is
/// looked at meanwhile. Bounds, not expectations: a process that exits
/// ends the wait.
const TERM_GRACE: Duration = Duration::from_secs(2);
const KILL_GRACE: Duration = Duration::from_secs(5);
const RESCAN: Duration = Duration::from_millis(50);

/// What [`stop_processes_in`] did.
struct Stopped {
    /// Processes it signalled.
    count: usize,
    /// Processes still in the namespace at the end.
    left: Vec<u32>,
}

/// Stops every process in namespace `ns`: SIGTERM, and SIGKILL to those
/// still there after [`TERM_GRACE`]; processes that appear meanwhile (a
/// child forked at the last moment) get the same. Waits at most
/// [`TERM_GRACE`] + [`KILL_GRACE`].
fn stop_processes_in(ns: NsId) -> Stopped {
    let mut signalled = HashSet::new();
    for (signal, grace) in [(libc::SIGTERM, TERM_GRACE), (libc::SIGKILL, KILL_GRACE)] {
        let mut this_signal = HashSet::new();
        let deadline = Instant::now() + grace;
        loop {
            let pids = members(ns);
            if pids.is_empty() {
                return Stopped {
                    count: signalled.len(),
                    left: Vec::new(),
                };
            }
            if Instant::now() >= deadline {
                break;
            }
            for pid in pids {
                // One SIGTERM each: some programs take a second one as
                // "quit now"; SIGKILL again costs nothing.
                if (signal == libc::SIGKILL || this_signal.insert(pid)) && signal_member(pid, ns, signal) {
                    signalled.insert(pid);
                }
            }
            std::thread::sleep(RESCAN);
        }
    }
    Stopped {
        count: signalled.len(),
        left: members(ns),
    }
}

/// Signals process `pid` if it is in namespace `ns`. The check comes after
/// the pidfd is held: the signal reaches the process that was checked or,
/// if that one has exited since, none, never one that took its PID.
fn signal_member(pid: u32, ns: NsId, signal: libc::c_int) -> bool {
    let Ok(pidfd) = Pidfd::open(pid) else {
        return false;
    };
    NsId::of_process(pid).is_ok_and(|id| id == ns) && pidfd.signal(signal).is_ok()
}

/// A namespace [`remove_stale`] or [`remove_left_by`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedNamespace {
    pub name: String,
    /// The process that made it, gone without removing it.
    pub owner: Owner,
    /// How many processes were stopped in it.
    pub stopped: usize,
}

impl std::fmt::Display for RemovedNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "removed network namespace {}, left behind by process {}, which was killed",
            self.name, self.owner.pid
        )?;
        match self.stopped {
            0 => {}
            1 => write!(f, " (stopped the process in it)")?,
            n => write!(f, " (stopped the {n} processes in it)")?,
        }
        Ok(())
    }
}

/// Removes the namespaces transbench made whose maker is gone without
/// removing them (a run killed outright): the processes in each are
/// stopped first. Only namespaces with a marker are looked at, so one
/// named like ours but made by anyone else is never touched.
pub fn remove_stale() -> Vec<RemovedNamespace> {
    remove_marked(|_| true)
}

/// [`remove_stale`] for what `owner` left, once it is gone.
pub fn remove_left_by(owner: Owner) -> Vec<RemovedNamespace> {
    remove_marked(|m| m.owner == owner)
}

fn remove_marked(select: impl Fn(&Marker) -> bool) -> Vec<RemovedNamespace> {
    // No directory: nothing was ever marked.
    let Ok(entries) = std::fs::read_dir(marker::MARKER_DIR) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.'))
        .filter_map(|name| remove_if_stale(&name, &select))
        .collect()
}

/// Removes namespace `name` if its marker is selected and says it is
/// stale; the marker alone if it names a namespace that is gone.
fn remove_if_stale(name: &str, select: impl Fn(&Marker) -> bool) -> Option<RemovedNamespace> {
    let path = marker::path(name);
    let file = File::open(&path).ok()?;
    // Two cleaners at once (a watchdog and the next run): the one holding
    // the lock does it; a cleaner killed meanwhile lets go of it.
    // SAFETY: flock on a descriptor we hold.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return None;
    }
    // Still at that path: not a marker the cleaner before us removed.
    let same = |a: &std::fs::Metadata, b: &std::fs::Metadata| (a.dev(), a.ino()) == (b.dev(), b.ino());
    if !same(&file.metadata().ok()?, &std::fs::metadata(&path).ok()?) {
        return None;
    }
    let text = std::io::read_to_string(&file).ok()?;
    let marker = match Marker::parse(&text) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!("{}: {e}; leaving namespace {name} alone", path.display());
            return None;
        }
    };
    if !select(&marker) {
        return None;
    }
    let ns = NsId::named(name).ok();
    match (
        judge(
            &marker,
            ProcStat::read(marker.owner.pid).as_ref(),
            ns.map(|n| n.inode),
        ),
        ns,
    ) {
        (Verdict::OwnerRunning, _) => None,
        (Verdict::Stale, Some(ns)) => {
            let stopped = stop_processes_in(ns);
            if !stopped.left.is_empty() {
                tracing::warn!(
                    "processes {:?} in network namespace {name} outlived SIGKILL",
                    stopped.left
                );
            }
            if let Err(e) = run_ip(&["netns", "del", name]) {
                tracing::warn!("could not remove stale network namespace {name}: {e}");
                return None;
            }
            forget(name);
            Some(RemovedNamespace {
                name: name.to_string(),
                owner: marker.owner,
                stopped: stopped.count,
            })
        }
        (Verdict::MarkerOnly | Verdict::Stale, _) => {
            forget(name);
            None
        }
    }
}

fn forget(name: &str) {
    if let Err(e) = marker::remove(name) {
        tracing::warn!("could not remove the marker of network namespace {name}: {e}");
    }
}
