//! The run: one reader thread, parser threads classifying chunks in parallel, and the
//! aggregator folding their events in log order. Channels are bounded, so memory holds a
//! few chunks at a time whatever the input's size.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::aggregate::{Aggregator, Clock};
use crate::event::Event;
use crate::input::{Chunk, Source};
use crate::mapped::Mapped;
use crate::report::Report;

/// The (month, day) of the last line in `bytes` with a classic syslog stamp (no year), looking
/// back at most 1 MiB; `None` when the last stamped line carries its year (RFC 3339) or none
/// is found.
fn last_yearless_day(bytes: &[u8]) -> Option<(u8, u8)> {
    let tail = &bytes[bytes.len().saturating_sub(1 << 20)..];
    for line in tail.rsplit(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        if let Some(l) = crate::syslog::parse(line) {
            return l
                .stamp
                .year
                .is_none()
                .then_some((l.stamp.month, l.stamp.day));
        }
    }
    None
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The year of the first yearless line (default: guessed from today).
    pub year: Option<i32>,
    /// Parser threads (default: all cores).
    pub threads: Option<usize>,
    /// Show a progress bar on stderr when it is a terminal.
    pub progress: bool,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No input named.
    #[error("no log files given (use - for standard input, or name servers with mail_log)")]
    NoInput,
    /// The reading thread failed (a panic, or the runtime shut down).
    #[error("the report's reading failed: {0}")]
    Thread(String),
    /// A file could not be opened.
    #[error("{path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

enum Work {
    /// Sequence number, lines, host for hostless lines.
    Chunk(u64, Chunk, Option<Arc<str>>),
    Failed(u64, String),
}

struct Parsed {
    seq: u64,
    events: Vec<Event>,
    hosts: Vec<Arc<str>>,
    /// Lines not understood, counted here rather than sent one by one.
    unparsed: rustc_hash::FxHashMap<crate::event::Unknown, u64>,
    lines: u64,
    bytes: u64,
    error: Option<String>,
    /// The mapped file this chunk came from and where the chunk ends: once it is folded,
    /// in order, the pages before that end are released.
    mapped: Option<(Arc<Mapped>, usize)>,
}

/// Emptied event vectors, handed back by the aggregator for the next chunks: a fresh
/// megabyte-sized vector per chunk costs page faults on every chunk.
type Recycled = Mutex<Vec<Vec<Event>>>;

fn parse_chunk(seq: u64, data: &[u8], unnamed: Option<Arc<str>>, recycled: &Recycled) -> Parsed {
    let mut events = recycled
        .lock()
        .ok()
        .and_then(|mut s| s.pop())
        .unwrap_or_else(|| Vec::with_capacity(data.len() / 120));
    let mut lines = 0;
    let mut parser = crate::LineParser::new(unnamed);
    let mut unparsed = rustc_hash::FxHashMap::default();
    let mut run: Option<(crate::event::Unknown, u64)> = None;
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', data).chain(std::iter::once(data.len()));
    for end in ends {
        let line = &data[start..end];
        start = end + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        lines += 1;
        let e = parser.classify(line);
        match e.kind {
            crate::event::Kind::Ignored => {}
            // Runs of one kind are common (a verbose daemon, a foreign program): count a run
            // before touching the map.
            crate::event::Kind::Unparsed { kind } => match &mut run {
                Some((k, n)) if *k == kind => *n += 1,
                _ => {
                    if let Some((k, n)) = run.replace((kind, 1)) {
                        *unparsed.entry(k).or_insert(0) += n;
                    }
                }
            },
            _ => events.push(e),
        }
    }
    if let Some((k, n)) = run {
        *unparsed.entry(k).or_insert(0) += n;
    }
    Parsed {
        seq,
        events,
        hosts: parser.into_names(),
        unparsed,
        lines,
        bytes: data.len() as u64,
        error: None,
        mapped: None,
    }
}

/// Parses one work item.
fn process(item: Work, pool: &SyncSender<Vec<u8>>, recycled: &Recycled) -> Parsed {
    match item {
        Work::Chunk(seq, chunk, unnamed) => {
            let mut parsed = parse_chunk(seq, chunk.bytes(), unnamed, recycled);
            match chunk {
                // Hand the buffer back to the reader; if its pool is full, drop it.
                Chunk::Owned(buf, _) => {
                    let _ = pool.try_send(buf);
                }
                Chunk::Mapped(map, range) => parsed.mapped = Some((map, range.end)),
            }
            parsed
        }
        Work::Failed(seq, e) => Parsed {
            seq,
            events: Vec::new(),
            hosts: Vec::new(),
            unparsed: Default::default(),
            lines: 0,
            bytes: 0,
            error: Some(e),
            mapped: None,
        },
    }
}

fn worker(
    work: &Mutex<Receiver<Work>>,
    out: &SyncSender<Parsed>,
    pool: &SyncSender<Vec<u8>>,
    recycled: &Recycled,
) {
    loop {
        // The lock is held only to take one item; a poisoned lock means a sibling panicked.
        let item = match work.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(item) = item else { return };
        if out.send(process(item, pool, recycled)).is_err() {
            return;
        }
    }
}

/// A work item for the aggregator to parse itself while the chunk it needs next is still
/// being parsed elsewhere: its core would otherwise idle.
fn work_to_take(work: &Mutex<Receiver<Work>>) -> Option<Work> {
    work.try_lock().ok()?.try_recv().ok()
}

/// Reads the files (in the order given; see [`crate::input::order_rotated`]) and builds the report.
pub fn run(files: &[PathBuf], opts: &Options) -> Result<Report, ReportError> {
    if files.is_empty() {
        return Err(ReportError::NoInput);
    }
    let read = Arc::new(AtomicU64::new(0));
    let inputs = open_files(files, &read)?;
    let total = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    Ok(run_sources(inputs, read, total, Vec::new(), opts))
}

/// Opens local files as inputs, each one's hostless lines named after its file (`store1.log`
/// gives `store1`).
pub fn open_files(files: &[PathBuf], read: &Arc<AtomicU64>) -> Result<Vec<Input>, ReportError> {
    files
        .iter()
        .map(|f| {
            let source = Source::open(f, Arc::clone(read)).map_err(|source| ReportError::Open {
                path: f.display().to_string(),
                source,
            })?;
            let host = f
                .file_name()
                .map(|n| n.to_string_lossy())
                .map(|n| Arc::from(n.split('.').next().unwrap_or(&n)));
            Ok(Input {
                name: f.display().to_string(),
                source,
                host,
            })
        })
        .collect()
}

/// One source of lines, named for the errors, and the host its lines without one come from.
pub struct Input {
    /// As the report's input summary names it.
    pub name: String,
    /// Its lines.
    pub source: Source,
    /// The host of lines that carry none (Dovecot's own log file).
    pub host: Option<Arc<str>>,
}

/// The run over inputs; `read` counts the bytes handed out, of `total`; `errors` were met
/// before (sources that could not be found) and are reported with the run's own.
pub fn run_sources(
    readers: Vec<Input>,
    read: Arc<AtomicU64>,
    total: u64,
    errors: Vec<String>,
    opts: &Options,
) -> Report {
    let maps: Vec<_> = readers
        .iter()
        .filter_map(|i| match &i.source {
            Source::Mapped(map, ..) => Some((i.name.clone(), Arc::clone(map))),
            _ => None,
        })
        .collect();
    let threads = opts
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let bar = (opts.progress && std::io::stderr().is_terminal() && total > 0).then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let today = chrono::Local::now().date_naive();
    // The log's last line, read ahead from the end of the newest file when it is a plain
    // (mapped) one: it decides the year of yearless lines.
    let ending = match readers.last().map(|i| &i.source) {
        Some(Source::Mapped(map, ..)) => last_yearless_day(map),
        _ => None,
    };
    let mut agg = Aggregator::new(Clock::new(opts.year, today).ending_at(ending));
    let mut summary = crate::report::InputSummary {
        files: readers.iter().map(|i| i.name.clone()).collect(),
        errors,
        ..Default::default()
    };

    let (work_tx, work_rx) = sync_channel::<Work>(threads * 8);
    let (out_tx, out_rx) = sync_channel::<Parsed>(threads * 8);
    let (pool_tx, pool_rx) = sync_channel::<Vec<u8>>(threads * 4);
    let work_rx = Mutex::new(work_rx);
    let recycled: Recycled = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        let reader = std::thread::Builder::new().name("report-read".into());
        let _ = reader.spawn_scoped(s, move || {
            let mut seq = 0;
            for Input {
                name,
                source: mut r,
                host: unnamed,
            } in readers
            {
                loop {
                    let buf = pool_rx.try_recv().unwrap_or_default();
                    let item = match r.next_chunk(buf) {
                        Ok(Some(chunk)) => Work::Chunk(seq, chunk, unnamed.clone()),
                        Ok(None) => break,
                        Err(e) => Work::Failed(seq, format!("{name}: {e} (read up to here)")),
                    };
                    let failed = matches!(item, Work::Failed(..));
                    seq += 1;
                    if work_tx.send(item).is_err() || failed {
                        break;
                    }
                }
            }
        });
        for _ in 0..threads {
            let tx = out_tx.clone();
            let pool = pool_tx.clone();
            let rx = &work_rx;
            let recycled = &recycled;
            let parser = std::thread::Builder::new().name("report-parse".into());
            let _ = parser.spawn_scoped(s, move || worker(rx, &tx, &pool, recycled));
        }
        drop(out_tx);
        // Fold in order: chunks finish out of order on several threads.
        let mut pending: BTreeMap<u64, Parsed> = BTreeMap::new();
        let mut next = 0;
        loop {
            while let Some(p) = pending.remove(&next) {
                next += 1;
                summary.lines += p.lines;
                summary.bytes += p.bytes;
                if let Some(e) = p.error {
                    summary.errors.push(e);
                }
                for (kind, n) in p.unparsed {
                    agg.add_unparsed(kind, n);
                }
                let mut events = p.events;
                agg.add_events(events.drain(..), &p.hosts);
                if let Ok(mut s) = recycled.lock()
                    && s.len() < threads * 4
                {
                    s.push(events);
                }
                if let Some((map, end)) = p.mapped {
                    map.release_through(end);
                }
            }
            if let Some(b) = &bar {
                b.set_position(read.load(Ordering::Relaxed));
            }
            // The next chunk is not here: take a finished one, or parse one here rather
            // than wait, or wait.
            let p = if let Ok(p) = out_rx.try_recv() {
                p
            } else if pending.len() < threads * 8
                && let Some(item) = work_to_take(&work_rx)
            {
                // Bounded: chunks parsed ahead hold their events and their mapped pages.
                process(item, &pool_tx, &recycled)
            } else if bar.is_some() {
                match out_rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(p) => p,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(_) => break,
                }
            } else {
                match out_rx.recv() {
                    Ok(p) => p,
                    Err(_) => break,
                }
            };
            pending.insert(p.seq, p);
        }
    });
    for (name, map) in maps {
        if map.shrunk() {
            summary.errors.push(format!(
                "{name}: the file shrank while it was read (rotated with copytruncate?); \
                 its lost end was read as zeros"
            ));
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut report = agg.finish();
    report.input = summary;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    /// logrotate's copytruncate while the report reads the live log: the lines before the
    /// cut are counted, the file is named as cut, and the process lives.
    #[test]
    fn a_log_truncated_while_mapped_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        let line =
            "Feb  3 10:00:01 mx1 postfix/smtpd[1]: 1A2B3C: client=a.example.net[192.0.2.1]\n";
        let text = line.repeat(50_000);
        std::fs::write(&p, &text).unwrap();
        let read = Arc::new(AtomicU64::new(0));
        let source = Source::open(&p, Arc::clone(&read)).unwrap();
        assert!(matches!(source, Source::Mapped(..)));
        // Cut it to a third, on a line boundary, after the map was made at full length.
        let keep = (50_000 / 3) * line.len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(keep as u64)
            .unwrap();
        let opts = Options {
            year: Some(2024),
            ..Default::default()
        };
        let input = Input {
            name: "mail.log".into(),
            source,
            host: None,
        };
        let r = run_sources(vec![input], read, 0, Vec::new(), &opts);
        assert_eq!(r.totals.received, 50_000 / 3);
        assert_eq!(r.input.errors.len(), 1, "{:?}", r.input.errors);
        assert!(r.input.errors[0].contains("mail.log: the file shrank"));
    }
}
