//! A replica's durable files, read at start: `orders.jsonl` (one order a line, group-committed
//! by a `JournalWriter`) and `epoch.json` (the newest term this replica accepted, so a
//! restart keeps fencing older leaders, rule 5). Loading cuts a torn last line and stops with
//! the file and line on corruption (rule 7). The replica's driver then hands the log and term
//! to the machine and the file to a writer thread.

use super::msg::Term;
use crate::journal;
use crate::orderlog::{Order, OrderLog};
use crate::{Error, Result};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Name of the order log inside a replica's data folder.
pub const ORDERS_FILE: &str = "orders.jsonl";
/// Name of the term file inside a replica's data folder.
pub const EPOCH_FILE: &str = "epoch.json";

/// What a replica's files held.
pub struct ReplicaFiles {
    /// The orders.
    pub log: OrderLog,
    /// The accepted term.
    pub term: Term,
    /// The order file, open for appending after its last good line.
    pub file: File,
    /// Its path.
    pub path: PathBuf,
    /// The term file's path.
    pub epoch_path: PathBuf,
}

impl ReplicaFiles {
    /// Loads `dir/orders.jsonl` (cutting a torn tail) and `dir/epoch.json`, creating `dir`.
    pub fn load(dir: &Path) -> Result<ReplicaFiles> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let path = dir.join(ORDERS_FILE);
        let mut log = OrderLog::default();
        let (file, len) = journal::load_each::<Order>(&path, |line, order| {
            log.load(order).map_err(|reason| Error::Corrupt {
                path: path.clone(),
                line,
                reason,
            })
        })?;
        log.set_file_len(len);
        release_freed_memory();
        let epoch_path = dir.join(EPOCH_FILE);
        let term = match std::fs::read(&epoch_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                path: epoch_path.clone(),
                line: e.line(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Term::default(),
            Err(e) => return Err(Error::io(format!("read {}", epoch_path.display()), e)),
        };
        log::info!(
            "order log {} loaded: {} orders, last {:?}, epoch {}",
            path.display(),
            log.len(),
            log.last(),
            term.epoch
        );
        Ok(ReplicaFiles {
            log,
            term,
            file,
            path,
            epoch_path,
        })
    }
}

/// Loading parses the whole file through short-lived buffers; hand the freed heap back to the
/// system so a replica with a large log stays small at rest (glibc keeps it otherwise).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{RequestId, TradeKind};

    fn line(n: u64) -> String {
        let o = Order {
            number: n,
            epoch: 1,
            rid: RequestId(u128::from(n) + 7),
            name: "GameStart".into(),
            kind: TradeKind::Buy,
            quantity: 1,
            cseq: n + 1,
        };
        serde_json::to_string(&o).unwrap()
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_term_kept() {
        let dir = tempfile::tempdir().unwrap();
        let body = format!("{}\n{}\n{{\"number\":2,\"ep", line(0), line(1));
        std::fs::write(dir.path().join(ORDERS_FILE), body).unwrap();
        std::fs::write(dir.path().join(EPOCH_FILE), r#"{"epoch":4,"leader":3}"#).unwrap();
        let f = ReplicaFiles::load(dir.path()).unwrap();
        assert_eq!(f.log.next_number(), 2);
        assert_eq!(
            f.term,
            Term {
                epoch: 4,
                leader: Some(3)
            }
        );
    }

    #[test]
    fn a_corrupt_middle_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let body = format!("{}\nnot json\n{}\n", line(0), line(1));
        std::fs::write(dir.path().join(ORDERS_FILE), body).unwrap();
        let err = ReplicaFiles::load(dir.path()).err().expect("corrupt");
        assert!(err.to_string().contains("orders.jsonl:2"), "{err}");
    }
}
