//! The shared secret both agents hold: from a file only its owner can
//! read, or from the environment.

use anyhow::{bail, Context};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use transbench_wire::auth::Secret;

pub const SECRET_ENV: &str = "TRANSBENCH_SECRET";

/// Shorter secrets work, with a warning.
const MIN_SECRET_LEN: usize = 16;

/// The secret in `file`, or else in [`SECRET_ENV`]; `None` if neither is
/// given. A file that others may read is refused, as ssh refuses an open
/// private key: whoever reads it can drive this host's traffic.
pub fn load(file: Option<&Path>) -> anyhow::Result<Option<Secret>> {
    let (bytes, origin) = match file {
        Some(path) => {
            let mode = std::fs::metadata(path)
                .with_context(|| format!("cannot read --secret-file {}", path.display()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                bail!(
                    "--secret-file {} is open to other users (mode {:04o}): whoever reads it can drive \
                     this host's traffic; make it its owner's alone with `chmod 600 {}`",
                    path.display(),
                    mode & 0o7777,
                    path.display()
                );
            }
            (
                std::fs::read(path)
                    .with_context(|| format!("cannot read --secret-file {}", path.display()))?,
                format!("--secret-file {}", path.display()),
            )
        }
        None => match std::env::var_os(SECRET_ENV) {
            Some(v) => (v.into_encoded_bytes(), SECRET_ENV.to_string()),
            None => return Ok(None),
        },
    };
    let secret = Secret::new(&bytes).map_err(|_| {
        anyhow::anyhow!("the shared secret in {origin} is empty: put at least 16 random bytes in it")
    })?;
    if bytes.trim_ascii().len() < MIN_SECRET_LEN {
        tracing::warn!(
            "the shared secret in {origin} is only {} bytes: anyone who can guess it can drive this \
             host's traffic, and one handshake recorded on the path lets guesses be tested offline; use at least {MIN_SECRET_LEN} random bytes (e.g. `head -c 32 /dev/urandom | base64`)",
            bytes.trim_ascii().len()
        );
    }
    Ok(Some(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_others_can_read_is_refused_and_its_owners_alone_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "a long enough shared secret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = |path: &Path| match load(Some(path)) {
            Ok(_) => panic!("{} was read", path.display()),
            Err(e) => e.to_string(),
        };
        let e = refused(&path);
        assert!(e.contains("mode 0644") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load(Some(&path)).unwrap().is_some());
        let missing = refused(&dir.path().join("none"));
        assert!(missing.contains("cannot read --secret-file"), "{missing}");
    }
}
