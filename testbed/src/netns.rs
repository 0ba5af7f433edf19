//! Network namespaces made with iproute2 (`ip netns`), so they are visible
//! to `ip netns exec` and removed with `ip netns del`.

use std::fs::File;
use std::marker::PhantomData;
use std::os::fd::AsRawFd;
use std::process::Command;

use crate::TestbedError;

/// A named network namespace, deleted on drop.
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
    pub fn create(name: &str) -> Result<Self, TestbedError> {
        run_ip(&["netns", "add", name])?;
        Ok(NetNs {
            name: name.to_string(),
        })
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

    /// Processes running in the namespace (`ip netns pids`).
    pub fn pids(&self) -> Vec<u32> {
        Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Moves the calling thread into the namespace: sockets it opens, and
    /// processes it starts, live there until the guard is dropped, which
    /// moves the thread back to the namespace it came from.
    pub fn enter(&self) -> Result<Entered, TestbedError> {
        let previous =
            File::open(THREAD_NETNS).map_err(|e| TestbedError::io(format!("opening {THREAD_NETNS}"), e))?;
        let path = format!("/run/netns/{}", self.name);
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
        if let Err(e) = run_ip(&["netns", "del", &self.name]) {
            tracing::warn!("could not remove network namespace {}: {e}", self.name);
        }
    }
}

/// Removes namespaces named `tb-<pid>-...` whose process is gone (a run
/// killed before it could clean up); returns their names.
pub fn remove_stale() -> Vec<String> {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(pid) = name.strip_prefix("tb-").and_then(|rest| rest.split('-').next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if run_ip(&["netns", "del", name]).is_ok() {
            removed.push(name.to_string());
        }
    }
    removed
}
