//! Running tc, in this process's network namespace or in a named one
//! (`tc -n NAME`), and reading what it says.

use std::process::{Command, Output};

use crate::qdisc::{parse_leased_root, QdiscHandle, RootQdisc};
use crate::LeaseError;

/// What the kernel has on a device now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Device {
    Missing,
    /// Its root as a lease sees it ([`parse_leased_root`]); `None` when
    /// none is listed (a device that is down).
    Root(Option<RootQdisc>),
}

/// How a handle-checked delete ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deleted {
    Yes,
    /// The kernel refused: the root qdisc does not have that handle.
    NotThatHandle,
    Missing,
}

pub(crate) struct Tc<'a> {
    pub netns: Option<&'a str>,
}

/// iproute2's words for a device that is not there.
const NO_DEVICE: &str = "Cannot find device";

struct Ran {
    command: String,
    output: Output,
}

impl Ran {
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).trim().to_string()
    }

    fn failed(&self, hint: &'static str) -> LeaseError {
        LeaseError::Tc {
            command: self.command.clone(),
            status: self.output.status.to_string(),
            stderr: self.stderr(),
            hint,
        }
    }
}

impl Tc<'_> {
    fn run(&self, args: &[&str]) -> Result<Ran, LeaseError> {
        let mut all: Vec<&str> = Vec::new();
        if let Some(ns) = self.netns {
            all.extend(["-n", ns]);
        }
        all.extend_from_slice(args);
        let output = Command::new("tc")
            .args(&all)
            .output()
            .map_err(|source| LeaseError::TcNotRun { source })?;
        Ok(Ran {
            command: format!("tc {}", all.join(" ")),
            output,
        })
    }

    /// `tc -j qdisc show dev IFACE`.
    pub fn device(&self, iface: &str) -> Result<Device, LeaseError> {
        let ran = self.run(&["-j", "qdisc", "show", "dev", iface])?;
        if !ran.output.status.success() {
            if ran.stderr().contains(NO_DEVICE) {
                return Ok(Device::Missing);
            }
            return Err(ran.failed("is the interface's name right?"));
        }
        parse_leased_root(&String::from_utf8_lossy(&ran.output.stdout))
            .map(Device::Root)
            .map_err(|source| LeaseError::TcOutput {
                command: ran.command.clone(),
                source,
            })
    }

    /// `tc qdisc VERB dev IFACE root handle H: WORDS...` (add, change).
    pub fn set(
        &self,
        verb: &str,
        iface: &str,
        handle: QdiscHandle,
        words: &[String],
    ) -> Result<(), LeaseError> {
        let handle = handle.to_string();
        let mut args = vec!["qdisc", verb, "dev", iface, "root", "handle", &handle];
        args.extend(words.iter().map(String::as_str));
        let ran = self.run(&args)?;
        if ran.output.status.success() {
            Ok(())
        } else {
            Err(ran.failed(
                "check the qdisc's words (`man tc-KIND`) and that this kernel has that qdisc (`modprobe sch_KIND`)",
            ))
        }
    }

    /// `tc qdisc del dev IFACE root handle H:`: the kernel deletes the root
    /// only if it has handle H.
    pub fn delete(&self, iface: &str, handle: QdiscHandle) -> Result<Deleted, LeaseError> {
        let handle = handle.to_string();
        let ran = self.run(&["qdisc", "del", "dev", iface, "root", "handle", &handle])?;
        if ran.output.status.success() {
            return Ok(Deleted::Yes);
        }
        let stderr = ran.stderr();
        if stderr.contains(NO_DEVICE) {
            Ok(Deleted::Missing)
        } else if stderr.contains("Invalid handle") || stderr.contains("handle of zero") {
            Ok(Deleted::NotThatHandle)
        } else {
            Err(ran.failed("the lease's state file is kept: the receiver's next start tries again"))
        }
    }
}
