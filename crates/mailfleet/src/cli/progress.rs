//! The backup's progress bar on a terminal: messages, bytes, dedup ratio, rate and ETA.

use indicatif::{ProgressBar, ProgressStyle};
use mailfleet_backup::command::job::Progress;
use mailfleet_backup::run::RunReport;

/// A bar over the expected number of messages (the previous snapshot's), or a spinner.
#[derive(Default)]
pub(crate) struct Bar(Option<ProgressBar>);

impl Progress for Bar {
    fn start(&mut self, expected: Option<u64>) {
        let (bar, template) = match expected {
            Some(n) if n > 0 => (
                ProgressBar::new(n),
                "{bar:30} {pos}/{len} messages, {msg} ({per_sec}, ETA {eta})",
            ),
            _ => (
                ProgressBar::new_spinner(),
                "{spinner} {pos} messages, {msg} ({per_sec})",
            ),
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        self.0 = Some(bar);
    }

    fn update(&mut self, r: &RunReport) {
        let Some(bar) = &self.0 else { return };
        bar.set_position(r.messages);
        bar.set_message(format!(
            "{} read, {} stored, {:.1}x",
            indicatif::HumanBytes(r.read_bytes),
            indicatif::HumanBytes(r.stored.stored_bytes),
            r.dedup_ratio()
        ));
    }

    fn finish(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
    }
}
