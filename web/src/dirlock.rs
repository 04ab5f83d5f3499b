//! One process per data directory: a service takes an exclusive advisory lock (`flock`) on
//! `<dir>/LOCK` before it reads its files, and holds it until it exits (the kernel drops it
//! then, also after SIGKILL). A second process pointed at the same directory stops at once,
//! naming the directory and the holder's PID, instead of, say, folding a live catalog's
//! journal into a snapshot under the first one's feet.

use anyhow::bail;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Name of the lock file inside a service's data directory.
pub const LOCK_FILE: &str = "LOCK";

/// The held lock; dropping it (or exiting) releases it.
pub struct DirLock {
    _lock: Flock<File>,
    /// The lock file.
    pub path: PathBuf,
}

impl DirLock {
    /// Locks `dir` (created if missing) for `service`, or says who holds it.
    pub fn acquire(dir: &Path, service: &str) -> anyhow::Result<DirLock> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("{service}: cannot create {}: {e}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("{service}: cannot open {}: {e}", path.display()))?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another process".to_string()
                } else {
                    format!("process {holder}")
                };
                bail!(
                    "{service}: data directory {} is in use by {who} (lock file {}); stop that process first, or give this one another data_dir",
                    dir.display(),
                    path.display()
                );
            }
            Err((_, errno)) => bail!("{service}: cannot lock {}: {errno}", path.display()),
        };
        lock.set_len(0)?;
        lock.rewind()?;
        writeln!(lock, "{}", std::process::id())?;
        Ok(DirLock { _lock: lock, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path(), "catalog").unwrap();
        // flock locks belong to the open file description: a second open in this process
        // conflicts just as another process would.
        let err = DirLock::acquire(dir.path(), "catalog")
            .err()
            .expect("refused");
        let msg = err.to_string();
        assert!(msg.contains("in use by process"), "{msg}");
        assert!(msg.contains(&std::process::id().to_string()), "{msg}");
        drop(first);
        DirLock::acquire(dir.path(), "catalog").expect("free again once dropped");
    }
}
