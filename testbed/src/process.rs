//! Processes as /proc and pidfds see them: what a PID is now (its start
//! time tells a reused PID apart from the process that had it before), and
//! signals that cannot reach a process which took a PID over after the one
//! meant had exited.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// The fields of /proc/PID/stat used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: R, S, D, ... Z for a zombie, X (or x) for one being reaped.
    pub state: char,
    /// Field 22: when it started, in clock ticks after boot.
    pub start_time: u64,
}

impl ProcStat {
    /// Parses the text of /proc/PID/stat. The command name (field 2) is in
    /// parentheses and may itself hold spaces and parentheses, so fields
    /// are counted from the last ')'.
    pub fn parse(text: &str) -> Option<ProcStat> {
        let (_, rest) = text.rsplit_once(')')?;
        let mut fields = rest.split_whitespace();
        let mut state = fields.next()?.chars();
        let (Some(state), None) = (state.next(), state.next()) else {
            return None;
        };
        // Fields 4 to 21 come between.
        let start_time = fields.nth(18)?.parse().ok()?;
        Some(ProcStat { state, start_time })
    }

    /// The process that has `pid` now, if any.
    pub fn read(pid: u32) -> Option<ProcStat> {
        Self::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// It has exited (a zombie waiting for its parent, or being reaped):
    /// it runs no more code.
    pub fn has_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// A process held by a pidfd (Linux 5.3): signals sent through it reach
/// that process or, once it has exited, none, even if its PID is reused.
#[derive(Debug)]
pub struct Pidfd(OwnedFd);

impl Pidfd {
    pub fn open(pid: u32) -> std::io::Result<Pidfd> {
        // SAFETY: pidfd_open takes a PID and flags and returns a new fd.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        Ok(Pidfd(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
    }

    pub fn signal(&self, signal: libc::c_int) -> std::io::Result<()> {
        // SAFETY: our pidfd, a signal number, no siginfo, no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until the process has exited (it is a zombie or gone), at
    /// most `timeout` if one is given; whether it has.
    pub fn wait_exited(&self, timeout: Option<Duration>) -> std::io::Result<bool> {
        let millis = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as libc::c_int);
        let mut fd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: one valid pollfd we own.
            let n = unsafe { libc::poll(&mut fd, 1, millis) };
            if n >= 0 {
                return Ok(n > 0);
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real line's shape (from `cat /proc/self/stat`), with its command
    /// name replaced.
    fn stat_line(comm: &str, state: char, start_time: u64) -> String {
        format!(
            "4242 ({comm}) {state} 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 {start_time} \
             8310784 224 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0"
        )
    }

    #[test]
    fn state_and_start_time_come_from_fields_3_and_22() {
        assert_eq!(
            ProcStat::parse(&stat_line("sleep", 'S', 987_654)),
            Some(ProcStat {
                state: 'S',
                start_time: 987_654
            })
        );
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let stat = ProcStat::parse(&stat_line("a) R 1 (b", 'Z', 55)).unwrap();
        assert_eq!((stat.state, stat.start_time), ('Z', 55));
    }

    #[test]
    fn truncated_or_garbled_text_is_refused() {
        let full = stat_line("x", 'S', 1);
        assert_eq!(ProcStat::parse(&full[..40]), None);
        assert_eq!(ProcStat::parse("4242 x S 1"), None);
        assert_eq!(
            ProcStat::parse(&stat_line("x", 'S', 1).replace(" S ", " SS ")),
            None
        );
        assert_eq!(ProcStat::parse(""), None);
    }

    #[test]
    fn zombies_and_reaped_processes_have_exited() {
        for (state, exited) in [
            ('R', false),
            ('S', false),
            ('D', false),
            ('T', false),
            ('Z', true),
            ('X', true),
        ] {
            let stat = ProcStat { state, start_time: 1 };
            assert_eq!(stat.has_exited(), exited, "{state}");
        }
    }

    #[test]
    fn this_process_reads_as_running() {
        let me = ProcStat::read(std::process::id()).unwrap();
        assert!(!me.has_exited() && me.start_time > 0, "{me:?}");
    }
}
