//! Logs on the fleet's servers, read through each one's access: listed there (a pattern in a
//! file name is matched by `find` on the server), then streamed with `cat` while the report
//! reads them, never copied whole first. A server that cannot be reached or a log that is
//! missing is an error of the report; the other sources are still read.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use mailfleet_remote::{Access, Cmd, Reach};

use crate::input::{ChunkReader, Source, order_rotated};
use crate::pipeline::{Input, Options, run_sources};
use crate::report::Report;

/// The logs of one server, as its config names them.
#[derive(Debug, Clone)]
pub struct ServerLogs {
    /// The server's name: its hostless lines are named after it.
    pub server: String,
    /// How its commands run.
    pub access: Access,
    /// Paths on the server; a `*`, `?` or `[` in a file name matches rotated files.
    pub paths: Vec<PathBuf>,
}

/// One log file found on a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteLog {
    /// The server.
    pub server: String,
    /// Where it is there.
    pub path: PathBuf,
    /// Its size when listed, for the progress bar.
    pub size: u64,
}

/// How long listing a server's logs, starting a stream and each wait for its data may take.
pub const DEADLINE: Duration = Duration::from_secs(30);

fn is_pattern(name: &str) -> bool {
    name.contains(['*', '?', '['])
}

/// The files `path` names on the server: itself, or what its file-name pattern matches
/// (oldest first, as rotated sets are read); symlinks are followed.
async fn list_one(reach: &Reach, logs: &ServerLogs, path: &Path) -> Result<Vec<RemoteLog>, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // find expands the escapes itself.
    let printf = r"%s\t%p\n".to_string();
    let argv: Vec<String> = if is_pattern(&name) {
        let dir = path.parent().unwrap_or(Path::new("/"));
        vec![
            "find".into(),
            "-L".into(),
            dir.display().to_string(),
            "-mindepth".into(),
            "1".into(),
            "-maxdepth".into(),
            "1".into(),
            "-type".into(),
            "f".into(),
            "-name".into(),
            name,
            "-printf".into(),
            printf,
        ]
    } else {
        vec![
            "find".into(),
            "-L".into(),
            path.display().to_string(),
            "-maxdepth".into(),
            "0".into(),
            "-type".into(),
            "f".into(),
            "-printf".into(),
            printf,
        ]
    };
    let out = reach
        .check(
            &logs.server,
            &logs.access,
            &Cmd::new(argv).deadline(DEADLINE),
        )
        .await
        .map_err(|e| format!("{}: {e}", shown(&logs.server, path)))?;
    let mut sizes = std::collections::HashMap::new();
    for line in out.stdout_text().lines() {
        if let Some((size, p)) = line.split_once('\t') {
            // Only for the progress bar.
            sizes.insert(PathBuf::from(p), size.parse().unwrap_or(0));
        }
    }
    if sizes.is_empty() {
        return Err(format!(
            "{}: no such file (or not a regular file) on the server",
            shown(&logs.server, path)
        ));
    }
    Ok(order_rotated(sizes.keys().cloned().collect())
        .into_iter()
        .map(|p| RemoteLog {
            server: logs.server.clone(),
            // One of the map's own keys.
            size: sizes[&p],
            path: p,
        })
        .collect())
}

/// How a file on a server is named in the report: `SERVER:PATH`.
pub fn shown(server: &str, path: &Path) -> String {
    format!("{server}:{}", path.display())
}

/// Every log of these servers, in order; what could not be listed comes back as errors.
pub async fn list(reach: &Reach, servers: &[ServerLogs]) -> (Vec<RemoteLog>, Vec<String>) {
    let listed = futures::future::join_all(servers.iter().map(|s| async move {
        let mut found = Vec::new();
        let mut errors = Vec::new();
        for p in &s.paths {
            match list_one(reach, s, p).await {
                Ok(l) => found.extend(l),
                Err(e) => errors.push(e),
            }
        }
        (found, errors)
    }))
    .await;
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for (f, e) in listed {
        found.extend(f);
        errors.extend(e);
    }
    (found, errors)
}

/// An input streaming `log` from its server when the reader gets to it.
fn input(reach: &Reach, access: &Access, log: &RemoteLog, read: &Arc<AtomicU64>) -> Input {
    let handle = tokio::runtime::Handle::current();
    let (reach, access, server) = (reach.clone(), access.clone(), log.server.clone());
    let argv = vec![
        "cat".to_string(),
        "--".to_string(),
        log.path.display().to_string(),
    ];
    let open: crate::input::Opener = Box::new(move |read| {
        let streamed = handle
            .block_on(reach.stream(&server, &access, &argv, DEADLINE))
            .map_err(std::io::Error::other)?;
        ChunkReader::from_reader(Box::new(streamed.into_blocking(handle, DEADLINE)), read)
    });
    Input {
        name: shown(&log.server, &log.path),
        source: Source::Deferred(Some(open), Arc::clone(read)),
        host: Some(Arc::from(log.server.as_str())),
    }
}

/// The report over local files (opened first) and the servers' logs, in that order. Must be
/// called inside a tokio runtime; the reading itself runs on a blocking thread.
pub async fn run(
    files: &[PathBuf],
    servers: &[ServerLogs],
    opts: &Options,
) -> Result<Report, crate::pipeline::ReportError> {
    if files.is_empty() && servers.is_empty() {
        return Err(crate::pipeline::ReportError::NoInput);
    }
    let reach = Reach::new();
    let read = Arc::new(AtomicU64::new(0));
    let mut inputs = crate::pipeline::open_files(files, &read)?;
    let mut total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    let (logs, errors) = list(&reach, servers).await;
    for log in &logs {
        // Listed from these servers, so each has its access.
        let Some(s) = servers.iter().find(|s| s.server == log.server) else {
            continue;
        };
        total += log.size;
        inputs.push(input(&reach, &s.access, log, &read));
    }
    let opts = opts.clone();
    tokio::task::spawn_blocking(move || run_sources(inputs, read, total, errors, &opts))
        .await
        .map_err(|e| crate::pipeline::ReportError::Thread(e.to_string()))
}
