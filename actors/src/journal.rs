//! Durable append-only JSON-lines files: loading them safely after a crash, and one writer
//! thread per file that batches appends under a single fsync (group commit).
//!
//! Every durable file of the exchange (the catalog's trade journal, each replica's order log)
//! goes through here, so the crash rules live in one place:
//! - a record is one line, written with its newline in one `write`; a last line that is
//!   incomplete or unparsable was never acknowledged, so it is cut on load (rule 7);
//! - a bad line with good lines after it is corruption, and loading stops with the file and
//!   line number instead of skipping it;
//! - the writer thread takes every record waiting, writes them, calls `fdatasync` once, and
//!   only then reports them durable, so no actor thread ever blocks on the disk.
//!
//! A failed write or fsync stops the process: after a failed fsync the kernel may have
//! dropped the dirty pages, so nothing written since the last good sync can be trusted;
//! restarting and reading the file back is the only safe recovery.

use crate::{Error, Result};
use serde::de::DeserializeOwned;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Upper bound on bytes gathered into one write, so one batch cannot grow without limit.
const MAX_BATCH_BYTES: usize = 8 << 20;

/// What `load` found in a file (tests read whole files this way).
#[cfg(test)]
#[derive(Debug)]
pub struct Loaded<T> {
    /// The records, in file order.
    pub records: Vec<T>,
    /// Byte offset where each record's line starts (same length as `records`).
    pub offsets: Vec<u64>,
    /// Length of the file after any torn tail was cut.
    pub len: u64,
    /// Bytes cut from a torn tail (0 when the file ended cleanly).
    pub cut: u64,
}

/// Opens (creating if needed) a JSON-lines file, parses every record, and cuts a torn last
/// line. Returns the open file positioned for appending and what it held.
#[cfg(test)]
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<(File, Loaded<T>)> {
    let (mut file, bytes) = open_and_read(path)?;
    let loaded = parse_lines(path, &bytes)?;
    cut_tail(path, &mut file, loaded.len, loaded.cut)?;
    Ok((file, loaded))
}

fn open_and_read(path: &Path) -> Result<(File, Vec<u8>)> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    Ok((file, bytes))
}

fn cut_tail(path: &Path, file: &mut File, len: u64, cut: u64) -> Result<()> {
    if cut > 0 {
        log::warn!(
            "{}: cut a torn last line ({cut} bytes) left by a crash",
            path.display()
        );
        file.set_len(len)
            .and_then(|_| file.sync_all())
            .map_err(|e| Error::io(format!("truncate {}", path.display()), e))?;
    }
    Ok(())
}

/// Opens (creating if needed) a JSON-lines file and hands each record to `each` with its
/// 1-based line number, so a large file is never held as parsed records all at once; a torn
/// last line is cut, a corrupt one in the middle is an error naming file and line. Returns
/// the open file, positioned for appending, and its length after any cut.
pub fn load_each<T: DeserializeOwned>(
    path: &Path,
    mut each: impl FnMut(usize, T) -> Result<()>,
) -> Result<(File, u64)> {
    let (mut file, bytes) = open_and_read(path)?;
    let (len, cut) = for_each_line(path, &bytes, |line, _, record| each(line, record))?;
    drop(bytes);
    cut_tail(path, &mut file, len, cut)?;
    Ok((file, len))
}

/// Parses JSON lines; see `load`. Separate from the file so it can be tested on bytes.
#[cfg(test)]
pub fn parse_lines<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<Loaded<T>> {
    let mut records = Vec::new();
    let mut offsets = Vec::new();
    let (len, cut) = for_each_line(path, bytes, |_, offset, record| {
        records.push(record);
        offsets.push(offset);
        Ok(())
    })?;
    Ok(Loaded {
        records,
        offsets,
        len,
        cut,
    })
}

/// Calls `each(line, offset, record)` for every good record of `bytes` (the contents of
/// `path`); returns (good length, bytes of a torn tail to cut). A bad line with good lines
/// after it is corruption. `load_each` reads files this way; the simulator's disks too.
pub fn for_each_line<T: DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
    mut each: impl FnMut(usize, u64, T) -> Result<()>,
) -> Result<(u64, u64)> {
    let mut pos = 0usize;
    let mut line_no = 0usize;
    let torn = |good: usize| Ok((good as u64, (bytes.len() - good) as u64));
    while pos < bytes.len() {
        line_no += 1;
        let Some(end) = bytes[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|e| pos + e)
        else {
            // No newline: the write that made this line did not finish.
            return torn(pos);
        };
        match serde_json::from_slice::<T>(&bytes[pos..end]) {
            Ok(record) => each(line_no, pos as u64, record)?,
            // A complete but unreadable last line: a torn write the file system padded.
            Err(_) if end + 1 == bytes.len() => return torn(pos),
            Err(err) => {
                return Err(Error::Corrupt {
                    path: path.to_path_buf(),
                    line: line_no,
                    reason: format!("unreadable record with good records after it ({err})"),
                })
            }
        }
        pos = end + 1;
    }
    Ok((bytes.len() as u64, 0))
}

/// Writes `bytes` to `path` atomically and durably: a temporary file, fsync, rename, fsync of
/// the directory. Used for snapshots and the replica's epoch file.
pub fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Called by the writer thread after each durable batch with the largest tag in it.
pub type OnDurable = Box<dyn FnMut(u64) + Send>;

/// One group commit, as the writer thread saw it (for metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncStats {
    /// Record lines in the batch.
    pub records: usize,
    /// Bytes written.
    pub bytes: usize,
    /// Time to write the batch and `fdatasync` it (write only, when fsync is off).
    pub duration: std::time::Duration,
}

/// Called by the writer thread after each group commit, before `OnDurable`; keep it cheap
/// (a histogram observation).
pub type OnSync = Box<dyn FnMut(SyncStats) + Send>;

enum Command {
    Append {
        tag: u64,
        bytes: Vec<u8>,
    },
    Truncate {
        len: u64,
        done: oneshot::Sender<Result<()>>,
    },
    Replace {
        path: PathBuf,
        bytes: Vec<u8>,
        truncate_journal: bool,
        done: oneshot::Sender<Result<()>>,
    },
}

/// Handle to a file's writer thread. Commands run in the order they were sent.
#[derive(Clone)]
pub struct JournalWriter {
    tx: mpsc::Sender<Command>,
}

impl JournalWriter {
    /// Starts the writer thread for `file` (opened by `load`). `fsync = false` skips the
    /// syncs, for benchmarks only.
    pub fn spawn(path: &Path, file: File, fsync: bool, on_durable: OnDurable) -> JournalWriter {
        JournalWriter::spawn_observed(path, file, fsync, on_durable, None)
    }

    /// Like `spawn`, and `on_sync` hears of every group commit (records, bytes, time).
    pub fn spawn_observed(
        path: &Path,
        file: File,
        fsync: bool,
        on_durable: OnDurable,
        on_sync: Option<OnSync>,
    ) -> JournalWriter {
        let (tx, rx) = mpsc::channel();
        let mut thread = WriterThread {
            path: path.to_path_buf(),
            file,
            fsync,
            on_durable,
            on_sync,
            buf: Vec::with_capacity(64 << 10),
            max_tag: None,
        };
        let name = format!(
            "writer-{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        std::thread::Builder::new()
            .name(name)
            .spawn(move || thread.run(rx))
            .expect("spawn journal writer thread");
        JournalWriter { tx }
    }

    /// Queues one record line (a trailing newline is added). `tag` is reported to
    /// `on_durable` once the line is on disk; tags must grow.
    pub fn append(&self, tag: u64, mut bytes: Vec<u8>) {
        bytes.push(b'\n');
        // A closed channel means the writer thread already stopped the process.
        let _ = self.tx.send(Command::Append { tag, bytes });
    }

    /// Cuts the file to `len` bytes once everything queued before is written.
    pub fn truncate(&self, len: u64) -> oneshot::Receiver<Result<()>> {
        let (done, rx) = oneshot::channel();
        let _ = self.tx.send(Command::Truncate { len, done });
        rx
    }

    /// Atomically replaces another file (snapshot, epoch) in order with the appends; with
    /// `truncate_journal` the journal is emptied afterwards (the snapshot now holds it).
    pub fn replace(
        &self,
        path: PathBuf,
        bytes: Vec<u8>,
        truncate_journal: bool,
    ) -> oneshot::Receiver<Result<()>> {
        let (done, rx) = oneshot::channel();
        let _ = self.tx.send(Command::Replace {
            path,
            bytes,
            truncate_journal,
            done,
        });
        rx
    }
}

struct WriterThread {
    path: PathBuf,
    file: File,
    fsync: bool,
    on_durable: OnDurable,
    on_sync: Option<OnSync>,
    buf: Vec<u8>,
    max_tag: Option<u64>,
}

impl WriterThread {
    fn run(&mut self, rx: mpsc::Receiver<Command>) {
        while let Ok(first) = rx.recv() {
            self.handle(first);
            while self.buf.len() < MAX_BATCH_BYTES {
                match rx.try_recv() {
                    Ok(cmd) => self.handle(cmd),
                    Err(_) => break,
                }
            }
            self.flush();
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Append { tag, bytes } => {
                self.buf.extend_from_slice(&bytes);
                self.max_tag = Some(tag);
            }
            Command::Truncate { len, done } => {
                self.flush();
                let r = self
                    .file
                    .set_len(len)
                    .and_then(|_| self.sync())
                    .map_err(|e| Error::io(format!("truncate {}", self.path.display()), e));
                let _ = done.send(r);
            }
            Command::Replace {
                path,
                bytes,
                truncate_journal,
                done,
            } => {
                self.flush();
                let mut r = replace_file(&path, &bytes)
                    .map_err(|e| Error::io(format!("write {}", path.display()), e));
                if r.is_ok() && truncate_journal {
                    r = self
                        .file
                        .set_len(0)
                        .and_then(|_| self.sync())
                        .map_err(|e| Error::io(format!("truncate {}", self.path.display()), e));
                }
                let _ = done.send(r);
            }
        }
    }

    fn sync(&self) -> std::io::Result<()> {
        if self.fsync {
            self.file.sync_data()
        } else {
            Ok(())
        }
    }

    fn flush(&mut self) {
        let Some(tag) = self.max_tag.take() else {
            return;
        };
        let started = std::time::Instant::now();
        let written = self.file.write_all(&self.buf).and_then(|_| self.sync());
        if let Err(err) = written {
            log::error!(
                "{}: write or fsync failed ({err}); stopping so that recovery re-reads the file",
                self.path.display()
            );
            std::process::exit(74);
        }
        if let Some(on_sync) = &mut self.on_sync {
            on_sync(SyncStats {
                records: self.buf.iter().filter(|&&b| b == b'\n').count(),
                bytes: self.buf.len(),
                duration: started.elapsed(),
            });
        }
        self.buf.clear();
        (self.on_durable)(tag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct R {
        n: u32,
    }

    fn parse(bytes: &[u8]) -> Result<Loaded<R>> {
        parse_lines(Path::new("f.jsonl"), bytes)
    }

    #[test]
    fn clean_file_loads_every_record_with_offsets() {
        let l = parse(b"{\"n\":1}\n{\"n\":2}\n").unwrap();
        assert_eq!(l.records, vec![R { n: 1 }, R { n: 2 }]);
        assert_eq!(l.offsets, vec![0, 8]);
        assert_eq!((l.len, l.cut), (16, 0));
    }

    #[test]
    fn torn_tail_without_newline_is_cut() {
        let l = parse(b"{\"n\":1}\n{\"n\":2").unwrap();
        assert_eq!(l.records, vec![R { n: 1 }]);
        assert_eq!((l.len, l.cut), (8, 6));
        // Even a parsable tail without its newline was never acknowledged.
        let l = parse(b"{\"n\":1}\n{\"n\":2}").unwrap();
        assert_eq!(l.records.len(), 1);
    }

    #[test]
    fn garbage_last_line_is_cut() {
        let l = parse(b"{\"n\":1}\n\0\0\0\n").unwrap();
        assert_eq!(l.records.len(), 1);
        assert_eq!(l.cut, 4);
    }

    #[test]
    fn corrupt_middle_line_names_file_and_line() {
        let err = parse(b"{\"n\":1}\nxx\n{\"n\":3}\n").unwrap_err();
        match &err {
            Error::Corrupt { line, .. } => assert_eq!(*line, 2),
            other => panic!("expected corruption, got {other:?}"),
        }
        assert!(err.to_string().starts_with("f.jsonl:2:"), "{err}");
    }

    #[test]
    fn writer_groups_appends_and_reports_the_last_tag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let (file, loaded) = load::<R>(&path).unwrap();
        assert!(loaded.records.is_empty());
        let (tx, rx) = mpsc::channel();
        let w = JournalWriter::spawn(&path, file, true, Box::new(move |t| tx.send(t).unwrap()));
        for n in 1..=100u64 {
            w.append(n, format!("{{\"n\":{n}}}").into_bytes());
        }
        let mut last = 0;
        while last < 100 {
            let t = rx.recv().unwrap();
            assert!(t > last, "tags reported in order");
            last = t;
        }
        let (_, again) = load::<R>(&path).unwrap();
        assert_eq!(again.records.len(), 100);
        futures::executor::block_on(w.truncate(again.offsets[10]))
            .unwrap()
            .unwrap();
        let (_, cut) = load::<R>(&path).unwrap();
        assert_eq!(cut.records.len(), 10);
    }

    #[test]
    fn the_observer_hears_every_record_of_every_group_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let (file, _) = load::<R>(&path).unwrap();
        let (tx, rx) = mpsc::channel();
        let (stx, srx) = mpsc::channel();
        let w = JournalWriter::spawn_observed(
            &path,
            file,
            true,
            Box::new(move |t| tx.send(t).unwrap()),
            Some(Box::new(move |s| stx.send(s).unwrap())),
        );
        for n in 1..=50u64 {
            w.append(n, format!("{{\"n\":{n}}}").into_bytes());
        }
        while rx.recv().unwrap() < 50 {}
        let stats: Vec<SyncStats> = srx.try_iter().collect();
        assert!(!stats.is_empty());
        assert_eq!(stats.iter().map(|s| s.records).sum::<usize>(), 50);
        let bytes = std::fs::metadata(&path).unwrap().len() as usize;
        assert_eq!(stats.iter().map(|s| s.bytes).sum::<usize>(), bytes);
    }

    #[test]
    fn torn_tail_is_cut_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        std::fs::write(&path, b"{\"n\":1}\n{\"n\"").unwrap();
        let (_, l) = load::<R>(&path).unwrap();
        assert_eq!(l.records.len(), 1);
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"n\":1}\n");
    }
}
