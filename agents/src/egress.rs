//! The receiver impairing its own egress for a trial (`--allow-impair`):
//! which interfaces it may touch, and its leases on them (`hostimpair`),
//! given back at the trial's end, when the session drops, when the
//! receiver stops, and at its next start for what a killed one left.

use anyhow::Context;
use hostimpair::{LeaseBook, QdiscLease};
use linkemu::NetemSpec;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The receiver's flags for impairing its own egress.
#[derive(Debug, Clone, clap::Args)]
pub struct EgressArgs {
    /// Allow impairing this interface's egress with tc netem, a trial (or
    /// a cell) at a time; repeatable. On `receiver`: at an authenticated
    /// sender's request, a cell's reverse profile. On `run --receiver`: a
    /// cell's forward profile, on this host's interface toward the
    /// receiver. Only an interface whose root qdisc is the kernel's
    /// default is touched, and that default comes back after. Needs
    /// CAP_NET_ADMIN.
    #[arg(long = "allow-impair", value_name = "IFACE")]
    pub allow_impair: Vec<String>,
    /// Where leases are recorded before tc runs, so that the next start
    /// (of a receiver, or of a run) gives back what a killed one left.
    #[arg(long, value_name = "DIR", default_value = hostimpair::DEFAULT_STATE_DIR)]
    pub impair_state_dir: PathBuf,
}

impl Default for EgressArgs {
    fn default() -> Self {
        EgressArgs {
            allow_impair: Vec::new(),
            impair_state_dir: hostimpair::DEFAULT_STATE_DIR.into(),
        }
    }
}

/// What this host's transbench may impair, and where its leases are
/// recorded.
pub struct EgressPolicy {
    book: LeaseBook,
    allowed: Vec<String>,
}

/// Gives back, in the receiver's log, what a previous receiver left.
fn recover(book: &LeaseBook) -> anyhow::Result<()> {
    for r in book
        .recover()
        .with_context(|| format!("reading the leases in {}", book.dir().display()))?
    {
        tracing::warn!("given back what an earlier transbench left: {r}");
    }
    Ok(())
}

impl EgressPolicy {
    /// `None` without `--allow-impair`. Either way, what an earlier
    /// receiver left in the state directory is given back first.
    pub fn start(args: &EgressArgs) -> anyhow::Result<Option<Self>> {
        if args.allow_impair.is_empty() {
            // A receiver started again without the flag still cleans up
            // after one that had it.
            if args.impair_state_dir.is_dir() {
                match LeaseBook::open(&args.impair_state_dir, None) {
                    Ok(book) => recover(&book)?,
                    Err(e) => tracing::warn!(
                        "not checking {} for leftover leases: {e}",
                        args.impair_state_dir.display()
                    ),
                }
            }
            return Ok(None);
        }
        let book = LeaseBook::open(&args.impair_state_dir, None).with_context(|| {
            format!(
                "--allow-impair needs a state directory for its leases: cannot use {} (run as root, or pass \
                 --impair-state-dir DIR)",
                args.impair_state_dir.display()
            )
        })?;
        recover(&book)?;
        Ok(Some(EgressPolicy {
            book,
            allowed: args.allow_impair.clone(),
        }))
    }

    /// Puts netem `profile` on the interface this host's traffic to `peer`
    /// leaves by, for as long as the lease lives. The profile is parsed and
    /// written again from its parts: what reaches tc is never the peer's
    /// text.
    pub fn lease_toward(&self, peer: IpAddr, profile: &str) -> anyhow::Result<QdiscLease> {
        let spec = NetemSpec::parse(profile).map_err(|e| anyhow::anyhow!("the profile {profile:?}: {e}"))?;
        let iface = crate::host::interface_name_toward(peer)
            .with_context(|| format!("no route to the sender at {peer}: no interface to impair"))?;
        let words: Vec<String> = std::iter::once("netem".to_string())
            .chain(spec.to_string().split_whitespace().map(str::to_string))
            .collect();
        Ok(self.book.lease(&iface, &self.allowed, &words)?)
    }

    /// Gives back every lease this process still holds: at shutdown, when
    /// the sessions' threads (and the leases they hold) will not be
    /// dropped.
    pub fn give_back_all(&self) {
        if let Err(e) = recover(&self.book) {
            tracing::error!("giving back this process's leases: {e:#}");
        }
    }
}

/// One thing `receiver --check` looked at: what it found, and whether the
/// receiver as configured would work with it.
pub struct Finding {
    pub ok: bool,
    pub text: String,
}

impl Finding {
    fn ok(text: String) -> Self {
        Finding { ok: true, text }
    }
    fn problem(text: String) -> Self {
        Finding { ok: false, text }
    }
}

/// What this host can do for impairment, as `receiver --check` says it:
/// tc netem, each allowed interface, and the state directory.
pub fn check(args: &EgressArgs) -> Vec<Finding> {
    let mut found = Vec::new();
    let wanted = !args.allow_impair.is_empty();
    found.push(match (testbed::is_root(), testbed::probe_netem()) {
        (false, _) => Finding {
            ok: !wanted,
            text: "tc netem: cannot tell without root (--allow-impair needs CAP_NET_ADMIN)".into(),
        },
        (true, Ok(Some(support))) => Finding::ok(format!(
            "tc netem: available{}",
            if support.seed {
                ", with seed"
            } else {
                ", without seed (decisions not repeatable)"
            }
        )),
        (true, Ok(None)) => Finding {
            ok: !wanted,
            text: "tc netem: not in this kernel (modprobe sch_netem; linkemu cannot impair a real \
                   interface): impaired cells cannot run against this host"
                .into(),
        },
        (true, Err(e)) => Finding {
            ok: !wanted,
            text: format!("tc netem: could not be probed: {e}"),
        },
    });
    if !wanted {
        found.push(Finding::ok(
            "impairment: no interface allowed (--allow-impair IFACE): impaired cells are refused".into(),
        ));
    }
    for iface in &args.allow_impair {
        found.push(check_interface(iface));
    }
    found.push(check_state_dir(&args.impair_state_dir, wanted));
    found
}

fn check_interface(iface: &str) -> Finding {
    let shown = std::process::Command::new("tc")
        .args(["-j", "qdisc", "show", "dev", iface])
        .output();
    let out = match shown {
        Ok(out) if out.status.success() => out,
        Ok(out) => {
            return Finding::problem(format!(
                "--allow-impair {iface}: no such interface here ({})",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
        Err(e) => return Finding::problem(format!("--allow-impair {iface}: cannot run tc: {e}")),
    };
    // What a lease would meet there, as the lease itself reads it.
    match hostimpair::parse_leased_root(&String::from_utf8_lossy(&out.stdout)) {
        Ok(Some(root)) if !root.is_kernel_default() && root.handle != hostimpair::LEASE_HANDLE => {
            Finding::problem(format!(
                "--allow-impair {iface}: its root qdisc {root} was set by someone else: trials will be \
                 refused until it is removed (tc qdisc del dev {iface} root)"
            ))
        }
        Ok(Some(root)) if root.handle == hostimpair::LEASE_HANDLE => Finding::ok(format!(
            "--allow-impair {iface}: impaired now by a lease ({root}), given back at the receiver's start \
             if its holder is gone"
        )),
        Ok(root) => Finding::ok(format!(
            "--allow-impair {iface}: can be impaired (root qdisc {}, the kernel's own)",
            root.map_or("none".into(), |r| r.kind)
        )),
        Err(e) => Finding::problem(format!(
            "--allow-impair {iface}: tc's answer was not understood: {e}"
        )),
    }
}

fn check_state_dir(base: &Path, wanted: bool) -> Finding {
    // This namespace's own records: another's are not this receiver's.
    let dir = match hostimpair::namespace_dir(base) {
        Ok(dir) => dir,
        Err(e) => return Finding::problem(format!("lease records: {e}")),
    };
    let dir = dir.as_path();
    let leftover = std::fs::read_dir(dir).map(|entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .count()
    });
    match leftover {
        Ok(0) => Finding::ok(format!("lease records: {} (none)", dir.display())),
        Ok(n) => Finding::ok(format!(
            "lease records: {} holds {n}, given back at the receiver's start unless their receiver still runs",
            dir.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Finding::ok(format!(
            "lease records: {} (made at the first start with --allow-impair)",
            dir.display()
        )),
        Err(e) => Finding {
            ok: !wanted,
            text: format!("lease records: cannot read {}: {e}", dir.display()),
        },
    }
}
