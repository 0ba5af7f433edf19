//! What tc says about a device's root qdisc, and the words a lease may ask
//! tc for. Pure: text in, values out.
//!
//! How a qdisc the kernel attached is told from one somebody added, as
//! observed with iproute2 6.1 on Linux 6.18 (`tc -j qdisc show dev X`):
//!
//! - the kernel's own root qdisc has handle `0:` — `noqueue` on veth and
//!   loopback, `pfifo_fast` (the `net.core.default_qdisc`) on a real NIC,
//!   `mq` with per-queue children on a multiqueue one;
//! - a qdisc anyone adds gets a non-zero handle: the one asked for
//!   (`handle 1:`), or one the kernel picks (`8001:`, `8002:`, ...) when
//!   none is given or `handle 0:` is asked for; `tc qdisc add dev X root
//!   noqueue` gives `noqueue` with handle `8003:`, not `0:`;
//! - a device that is down lists no root qdisc at all (`[]`: its qdisc is
//!   the kernel's `noop`, which is not dumped) — also the kernel's;
//! - `ingress` and `clsact` (handle `ffff:`, parent `ffff:fff1`) are not
//!   root qdiscs and do not count.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A qdisc's handle: its major number (a qdisc's minor is always 0), as tc
/// writes it, `7462:` in hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QdiscHandle(pub u16);

impl QdiscHandle {
    /// The handle of every root qdisc the kernel attaches by itself.
    pub const KERNEL: QdiscHandle = QdiscHandle(0);
}

impl fmt::Display for QdiscHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}:", self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0:?} is not a qdisc handle (hex major and a colon, like 7462:)")]
pub struct BadHandle(String);

impl FromStr for QdiscHandle {
    type Err = BadHandle;

    /// `7462:`, and `7462:0` (a qdisc's minor is 0).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadHandle(s.to_string());
        let (major, minor) = s.split_once(':').ok_or_else(bad)?;
        if !matches!(minor, "" | "0") || major.is_empty() || major.len() > 4 {
            return Err(bad());
        }
        if !major.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        u16::from_str_radix(major, 16).map(QdiscHandle).map_err(|_| bad())
    }
}

impl TryFrom<String> for QdiscHandle {
    type Error = BadHandle;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<QdiscHandle> for String {
    fn from(h: QdiscHandle) -> String {
        h.to_string()
    }
}

/// A device's root qdisc as tc lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootQdisc {
    pub kind: String,
    pub handle: QdiscHandle,
}

impl RootQdisc {
    /// The kernel attached it (handle `0:`), so nobody has configured the
    /// device's root: what `tc qdisc del dev X root` gives back.
    pub fn is_kernel_default(&self) -> bool {
        self.handle == QdiscHandle::KERNEL
    }
}

impl fmt::Display for RootQdisc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.handle)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TcOutputError {
    #[error("tc's JSON did not parse ({0}); is iproute2 recent enough to know `tc -j`?")]
    Json(String),
    #[error("tc listed {0} root qdiscs for one device; expected at most one")]
    SeveralRoots(usize),
    #[error(transparent)]
    Handle(#[from] BadHandle),
}

#[derive(Deserialize)]
struct Listed {
    kind: String,
    handle: String,
    #[serde(default)]
    root: bool,
}

/// The root qdisc in the output of `tc -j qdisc show dev X`; `None` when
/// none is listed (a device that is down: the kernel's `noop`, its own
/// like a `0:` handle).
pub fn parse_root_qdisc(json: &str) -> Result<Option<RootQdisc>, TcOutputError> {
    let listed: Vec<Listed> = serde_json::from_str(json).map_err(|e| TcOutputError::Json(e.to_string()))?;
    let mut roots = listed.into_iter().filter(|q| q.root).collect::<Vec<_>>();
    if roots.len() > 1 {
        return Err(TcOutputError::SeveralRoots(roots.len()));
    }
    roots
        .pop()
        .map(|q| {
            Ok(RootQdisc {
                handle: q.handle.parse()?,
                kind: q.kind,
            })
        })
        .transpose()
}

/// A qdisc below a kernel-default root (under `mq`, say) that someone
/// set: the first listed with a handle of its own, ingress and clsact
/// (which hang off the device, not the root) left out. A root qdisc
/// added over it would delete it, and giving the lease back would not
/// bring it back.
pub fn parse_set_below_root(json: &str) -> Result<Option<RootQdisc>, TcOutputError> {
    let listed: Vec<Listed> = serde_json::from_str(json).map_err(|e| TcOutputError::Json(e.to_string()))?;
    for q in listed {
        if q.root || q.kind == "ingress" || q.kind == "clsact" {
            continue;
        }
        let handle: QdiscHandle = q.handle.parse()?;
        if handle != QdiscHandle::KERNEL {
            return Ok(Some(RootQdisc { handle, kind: q.kind }));
        }
    }
    Ok(None)
}

/// The root qdisc as a lease sees it, in `tc -j qdisc show dev X`'s
/// output: the root, or under a root of the kernel's a qdisc someone set
/// ([`parse_set_below_root`]), theirs as much as a root would be, since
/// a lease would delete it.
pub fn parse_leased_root(json: &str) -> Result<Option<RootQdisc>, TcOutputError> {
    Ok(match (parse_root_qdisc(json)?, parse_set_below_root(json)?) {
        (Some(root), Some(below)) if root.is_kernel_default() => Some(below),
        (root, _) => root,
    })
}

/// Words that come before a qdisc's kind in tc's grammar, or name
/// something a root lease cannot be: a first word among them would not be
/// a kind.
const NOT_A_KIND: &[&str] = &[
    "dev",
    "root",
    "parent",
    "handle",
    "estimator",
    "stab",
    "ingress",
    "clsact",
];

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QdiscWordsError {
    #[error("no qdisc given: pass tc's words after `root`, a kind first (like `tbf rate 100mbit burst 32kbit latency 50ms`)")]
    Empty,
    #[error("{0:?} is not a qdisc kind (lower-case letters, digits and _, like tbf or netem); pass tc's words after `root`, the kind first, without handle or parent")]
    NotAKind(String),
    #[error("word {0} of the qdisc is empty; pass each tc word separately")]
    EmptyWord(usize),
}

/// The kind `words` (tc's words after `root`) ask for: their first word.
pub fn qdisc_kind(words: &[String]) -> Result<&str, QdiscWordsError> {
    let kind = words.first().ok_or(QdiscWordsError::Empty)?;
    let plain = kind
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if kind.is_empty() || !plain || NOT_A_KIND.contains(&kind.as_str()) {
        return Err(QdiscWordsError::NotAKind(kind.clone()));
    }
    if let Some(i) = words.iter().position(|w| w.is_empty()) {
        return Err(QdiscWordsError::EmptyWord(i));
    }
    Ok(kind)
}

/// Why `name` cannot be a network interface's name (Linux's
/// `dev_valid_name`: 1 to 15 bytes, no `/`, `:` or white space, not `.`
/// or `..`), if it cannot.
pub fn interface_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > 15 {
        Some("it is longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("it is . or ..")
    } else if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
    {
        Some("it holds '/', ':', white space or NUL")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured on this project's build machine (iproute2 6.1, Linux 6.18)
    // with `tc -j qdisc show dev X`.
    const VETH_UP: &str = r#"[{"kind":"noqueue","handle":"0:","root":true,"refcnt":2,"options":{}}]"#;
    const DOWN: &str = "[]";
    const HOST_NIC: &str = r#"[{"kind":"pfifo_fast","handle":"0:","dev":"eth0","root":true,"refcnt":2,"options":{"bands":3,"priomap":[1,2,2,2,1,2,0,0,1,1,1,1,1,1,1,1],"multiqueue":false}}]"#;
    const TBF_NO_HANDLE: &str = r#"[{"kind":"tbf","handle":"8001:","root":true,"refcnt":3,"options":{"rate":12500000,"burst":4087,"lat":50000}}]"#;
    const TBF_1: &str = r#"[{"kind":"tbf","handle":"1:","root":true,"refcnt":3,"options":{"rate":12500000,"burst":4087,"lat":50000}}]"#;
    const TBF_OURS: &str = r#"[{"kind":"tbf","handle":"7462:","root":true,"refcnt":3,"options":{"rate":12500000,"burst":4087,"lat":50000}}]"#;
    const USER_NOQUEUE: &str = r#"[{"kind":"noqueue","handle":"8003:","root":true,"refcnt":3,"options":{}}]"#;
    const WITH_CLSACT: &str = r#"[{"kind":"noqueue","handle":"0:","root":true,"refcnt":2,"options":{}},{"kind":"clsact","handle":"ffff:","parent":"ffff:fff1","options":{}}]"#;
    const WITH_INGRESS: &str = r#"[{"kind":"noqueue","handle":"0:","root":true,"refcnt":2,"options":{}},{"kind":"ingress","handle":"ffff:","parent":"ffff:fff1","options":{}}]"#;
    // Made up in tc's shape: a multiqueue NIC's default and its children.
    const MQ: &str = r#"[{"kind":"mq","handle":"0:","root":true,"options":{}},{"kind":"fq_codel","handle":"0:","parent":":1","options":{}},{"kind":"fq_codel","handle":"0:","parent":":2","options":{}}]"#;

    fn root(json: &str) -> Option<RootQdisc> {
        parse_root_qdisc(json).unwrap()
    }

    #[test]
    fn a_qdisc_someone_set_under_the_kernels_root_is_found() {
        let fq_under_mq = MQ.replacen(
            r#""kind":"fq_codel","handle":"0:""#,
            r#""kind":"fq","handle":"8001:""#,
            1,
        );
        assert_eq!(parse_set_below_root(&fq_under_mq).unwrap(), q("fq", 0x8001));
        for kernel_only in [MQ, VETH_UP, DOWN, WITH_CLSACT, WITH_INGRESS, HOST_NIC] {
            assert_eq!(parse_set_below_root(kernel_only).unwrap(), None, "{kernel_only}");
        }
        // As a lease sees the device: theirs, in place of the kernel's root.
        assert_eq!(parse_leased_root(&fq_under_mq).unwrap(), q("fq", 0x8001));
        assert_eq!(parse_leased_root(MQ).unwrap(), q("mq", 0));
        assert_eq!(parse_leased_root(TBF_1).unwrap(), q("tbf", 1));
    }

    fn q(kind: &str, handle: u16) -> Option<RootQdisc> {
        Some(RootQdisc {
            kind: kind.into(),
            handle: QdiscHandle(handle),
        })
    }

    #[test]
    fn the_kernels_own_root_qdiscs_have_handle_zero() {
        for (json, kind) in [(VETH_UP, "noqueue"), (HOST_NIC, "pfifo_fast"), (MQ, "mq")] {
            let r = root(json).unwrap();
            assert_eq!(r.kind, kind);
            assert!(r.is_kernel_default(), "{json}");
        }
        assert_eq!(root(DOWN), None);
    }

    #[test]
    fn an_added_qdisc_has_a_non_zero_handle_whatever_its_kind() {
        assert_eq!(root(TBF_NO_HANDLE), q("tbf", 0x8001));
        assert_eq!(root(TBF_1), q("tbf", 1));
        assert_eq!(root(TBF_OURS), q("tbf", 0x7462));
        assert_eq!(root(USER_NOQUEUE), q("noqueue", 0x8003));
        for json in [TBF_NO_HANDLE, TBF_1, TBF_OURS, USER_NOQUEUE] {
            assert!(!root(json).unwrap().is_kernel_default(), "{json}");
        }
    }

    #[test]
    fn ingress_and_clsact_are_not_the_root() {
        assert_eq!(root(WITH_CLSACT), q("noqueue", 0));
        assert_eq!(root(WITH_INGRESS), q("noqueue", 0));
        let only_clsact = r#"[{"kind":"clsact","handle":"ffff:","parent":"ffff:fff1","options":{}}]"#;
        assert_eq!(root(only_clsact), None);
    }

    #[test]
    fn output_that_is_not_one_devices_list_is_an_error() {
        assert!(matches!(parse_root_qdisc(""), Err(TcOutputError::Json(_))));
        assert!(matches!(
            parse_root_qdisc("qdisc noqueue 0: root"),
            Err(TcOutputError::Json(_))
        ));
        assert!(matches!(
            parse_root_qdisc(r#"[{"handle":"0:"}]"#),
            Err(TcOutputError::Json(_))
        ));
        let two = r#"[{"kind":"noqueue","handle":"0:","dev":"lo","root":true},{"kind":"pfifo_fast","handle":"0:","dev":"eth0","root":true}]"#;
        assert_eq!(parse_root_qdisc(two), Err(TcOutputError::SeveralRoots(2)));
        let bad_handle = r#"[{"kind":"tbf","handle":"1:2","root":true}]"#;
        assert!(matches!(
            parse_root_qdisc(bad_handle),
            Err(TcOutputError::Handle(_))
        ));
    }

    #[test]
    fn handles_read_and_print_as_tc_writes_them() {
        for (text, major) in [
            ("0:", 0),
            ("1:", 1),
            ("7462:", 0x7462),
            ("ffff:", 0xffff),
            ("8001:0", 0x8001),
        ] {
            assert_eq!(text.parse(), Ok(QdiscHandle(major)), "{text}");
        }
        assert_eq!(QdiscHandle(0x7462).to_string(), "7462:");
        assert_eq!(QdiscHandle(0).to_string(), "0:");
        for bad in ["", ":", "7462", "1:1", "10000:", "x:", "-1:", "+1:", " 1:"] {
            assert!(bad.parse::<QdiscHandle>().is_err(), "{bad:?}");
        }
        let json = serde_json::to_string(&QdiscHandle(0x7462)).unwrap();
        assert_eq!(json, r#""7462:""#);
        assert_eq!(
            serde_json::from_str::<QdiscHandle>(&json).unwrap(),
            QdiscHandle(0x7462)
        );
        assert!(serde_json::from_str::<QdiscHandle>(r#""7462""#).is_err());
    }

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn the_kind_is_the_first_word_and_must_look_like_one() {
        assert_eq!(qdisc_kind(&words("netem delay 10ms loss 1%")), Ok("netem"));
        assert_eq!(
            qdisc_kind(&words("tbf rate 100mbit burst 32kbit latency 50ms")),
            Ok("tbf")
        );
        assert_eq!(qdisc_kind(&words("fq_codel")), Ok("fq_codel"));
        assert_eq!(qdisc_kind(&[]), Err(QdiscWordsError::Empty));
        for bad in [
            "handle 1: tbf",
            "parent 1:1 tbf",
            "root tbf",
            "Tbf rate 1mbit",
            "-n x",
            "ingress",
        ] {
            assert!(
                matches!(qdisc_kind(&words(bad)), Err(QdiscWordsError::NotAKind(_))),
                "{bad}"
            );
        }
        assert_eq!(
            qdisc_kind(&words("tbf  rate")),
            Err(QdiscWordsError::EmptyWord(1))
        );
        assert!(matches!(
            qdisc_kind(&words("")),
            Err(QdiscWordsError::NotAKind(_))
        ));
    }

    #[test]
    fn interface_names_follow_the_kernels_rules() {
        for ok in [
            "eth0",
            "v0",
            "enp0s31f6",
            "tb-123-4-rcv",
            "a@b",
            "123456789012345",
        ] {
            assert_eq!(interface_name_problem(ok), None, "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "eth0:1", "a b", "1234567890123456", "a\tb"] {
            assert!(interface_name_problem(bad).is_some(), "{bad:?}");
        }
    }
}
