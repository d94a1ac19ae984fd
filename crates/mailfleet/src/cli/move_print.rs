//! How `mailfleet move` prints for humans: the plan, each move's end, the journal, and a
//! progress bar over the batch's accounts on a terminal.

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use mailfleet_move::command::{Aborted, Status};
use mailfleet_move::purge::Purged;
use mailfleet_move::{BatchReport, Ended, Entry, Plan, Progress};

/// A bar over the batch's accounts (hidden when not on a terminal or for `--json`).
pub(crate) struct Bar(Option<ProgressBar>);

impl Bar {
    pub(crate) fn new(show: bool) -> Self {
        use std::io::IsTerminal;
        Bar((show && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:30} {pos}/{len} accounts, {msg} ({elapsed}, ETA {eta})",
            ) {
                bar.set_style(style);
            }
            bar
        }))
    }

    pub(crate) fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn started(&self, entry: &Entry) {
        if let Some(b) = &self.0 {
            b.inc_length(1);
            b.set_message(format!(
                "{}: {} messages, {}",
                entry.address,
                entry.messages,
                HumanBytes(entry.bytes)
            ));
        }
    }

    fn ended(&self, ended: &Ended) {
        if let Some(b) = &self.0 {
            b.inc(1);
            match (&ended.moved, &ended.error) {
                (Some(m), _) => b.println(moved_line(m)),
                (None, Some(e)) => b.println(format!("{}: not moved: {e}", ended.address)),
                _ => {}
            }
        }
    }
}

fn moved_line(m: &mailfleet_move::Moved) -> String {
    format!(
        "{}: {} -> {}, {} messages, {} passes, locked {:.1} s",
        m.address,
        m.from,
        m.to,
        m.messages,
        m.passes,
        m.lock_ms / 1000.0
    )
}

/// What would go where and why, and what does not fit.
pub(crate) fn plan(p: &Plan) {
    for s in &p.stores {
        let space = match (s.total, s.available) {
            (Some(t), Some(a)) => format!("{} free of {}", HumanBytes(a), HumanBytes(t)),
            _ => "free space unknown".into(),
        };
        match &s.excluded {
            Some(x) => println!(
                "store {}: weight {}, {space}; takes none: {x}",
                s.name, s.weight
            ),
            None => println!(
                "store {}: weight {}, {space}; keeps {} free; gets {}",
                s.name,
                s.weight,
                HumanBytes(s.keep_free),
                HumanBytes(s.incoming)
            ),
        }
    }
    for m in &p.moves {
        println!(
            "{}: {} -> {} ({} messages, {}): {}",
            m.address,
            m.source,
            m.target,
            m.size.messages,
            HumanBytes(m.size.bytes),
            m.why
        );
    }
    for (a, why) in &p.skipped {
        println!("{a}: skipped: {why}");
    }
    for (a, why) in &p.refused {
        println!("{a}: REFUSED: {why}");
    }
    if p.moves.is_empty() && p.refused.is_empty() {
        println!("nothing to move");
    }
}

/// Each move's end (what the bar printed already is not printed again).
pub(crate) fn report(r: &BatchReport) {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        for m in &r.moves {
            match (&m.moved, &m.error) {
                (Some(done), _) => println!("{}", moved_line(done)),
                (None, Some(e)) => eprintln!("mailfleet: {}: not moved: {e}", m.address),
                _ => {}
            }
        }
    }
    for m in r.moves.iter().filter(|m| m.still_locked) {
        eprintln!(
            "mailfleet: {} is STILL LOCKED: run `mailfleet move resume` or `mailfleet move abort {}`",
            m.address, m.address
        );
    }
    if let Some(why) = &r.stopped {
        eprintln!("mailfleet: the batch stopped: {why}");
    }
    if r.moves.is_empty() {
        println!("no open moves");
    }
}

/// The journal as a table.
pub(crate) fn status(s: &Status) {
    if s.moves.is_empty() {
        println!("no moves");
        return;
    }
    println!(
        "{:>4}  {:<28} {:<17} {:<9} {:>6} {:>8} {:>10} {:>12} {:>8}",
        "ID", "ACCOUNT", "FROM -> TO", "PHASE", "PASSES", "MESSAGES", "SIZE", "RATE", "LOCK"
    );
    for e in &s.moves {
        let rate = e
            .rate()
            .map(|r| format!("{}/s", HumanBytes(r as u64)))
            .unwrap_or_else(|| "-".into());
        let lock = match (e.lock_ms, e.lock_started_ms) {
            (Some(ms), _) => format!("{:.1} s", ms / 1000.0),
            (None, Some(_)) if !e.phase.is_over() => "LOCKED".into(),
            _ => "-".into(),
        };
        println!(
            "{:>4}  {:<28} {:<17} {:<9} {:>6} {:>8} {:>10} {:>12} {:>8}",
            e.id,
            e.address,
            format!("{} -> {}", e.source, e.target),
            e.phase.as_str(),
            e.passes,
            e.messages,
            HumanBytes(e.bytes).to_string(),
            rate,
            lock
        );
        if let Some(err) = &e.error {
            println!("      {err}");
        }
        if let Some(why) = e.waiting.as_ref().filter(|_| !e.phase.is_over()) {
            println!("      waiting: {why}");
        }
    }
    if let (Some(rate), Some(eta)) = (s.rate, s.eta_secs)
        && s.remaining_bytes > 0
    {
        println!(
            "{} left to copy at {}/s: about {:.0} s",
            HumanBytes(s.remaining_bytes),
            HumanBytes(rate as u64),
            eta
        );
    }
}

/// What `move abort` did.
pub(crate) fn aborted(v: &[Aborted]) {
    if v.is_empty() {
        println!("no open moves");
    }
    for a in v {
        match (&a.phase, &a.error) {
            (Some(p), _) => println!("{} (move {}): {p}", a.address, a.id),
            (None, Some(e)) => {
                eprintln!("mailfleet: {} (move {}): not aborted: {e}", a.address, a.id)
            }
            _ => {}
        }
    }
}

/// What `move purge` did.
pub(crate) fn purged(v: &[Purged]) {
    if v.is_empty() {
        println!("no old copies due");
    }
    for p in v {
        match (&p.note, p.deleted) {
            (_, true) => println!("{} on {}: old copy deleted", p.address, p.store),
            (Some(n), false) => println!("{} on {}: kept: {n}", p.address, p.store),
            (None, false) => {}
        }
    }
}
