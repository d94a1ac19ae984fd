//! `upgrade run`'s progress on a terminal: servers done of all, the current server's phase
//! and the last line it printed, read from the run's journal while the run goes on.

use std::future::Future;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use mailfleet_upgrade::journal::{Journal, StepPhase};

/// Drives `work`, showing the open run's progress on stderr when `show`.
pub(crate) async fn shown<F: Future>(data_dir: &std::path::Path, show: bool, work: F) -> F::Output {
    // Its own connection: the run's writes are committed, and this one only reads them.
    let journal = match Journal::open(data_dir) {
        Ok(j) if show => j,
        _ => return work.await,
    };
    let bar = ProgressBar::new_spinner();
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {pos}/{len} servers  {wide_msg}  {elapsed}")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    let poll = async {
        loop {
            if let Ok(Some(id)) = journal.open_run()
                && let Ok(run) = journal.get(id)
            {
                bar.set_length(run.steps.len() as u64);
                let done = run
                    .steps
                    .iter()
                    .filter(|s| s.phase == StepPhase::Done)
                    .count();
                bar.set_position(done as u64);
                if let Some(s) = run.steps.iter().find(|s| s.phase != StepPhase::Done) {
                    let last = s.output.lines().rev().find(|l| !l.trim().is_empty());
                    bar.set_message(format!(
                        "{}: {}{}",
                        s.server,
                        s.phase.as_str(),
                        last.map(|l| format!(" ({})", l.trim())).unwrap_or_default()
                    ));
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    tokio::pin!(work);
    let out = tokio::select! {
        out = &mut work => out,
        () = poll => unreachable!("the poll never ends"),
    };
    bar.finish_and_clear();
    out
}
