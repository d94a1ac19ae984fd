//! The pages of runs: upgrades (the latest run with its progress, ETA and controls, a plan
//! asked for and its Start button) and moves (the latest batch and every open move, forms
//! to move accounts, drain a store and give it back), each with the daemon's runs. While a
//! run goes on the page loads itself again every few seconds.

use chrono::Utc;

use super::page::{button, bytes, esc, frame};
use crate::runs::RunRow;
use crate::web::ops::{MovePlanView, MovesView, PlanView, UpgradeView};

/// Seconds between loads of a page while a run goes on.
const REFRESH_SECS: u32 = 3;

fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
        esc(value)
    )
}

/// A form posting `fields` and the CSRF token to `action`.
fn form(action: &str, fields: &str, label: &str, csrf: &str) -> String {
    format!(
        "<form class=\"inline\" method=\"post\" action=\"{action}\">{fields}{}<button type=\"submit\">{}</button></form>",
        hidden("csrf", csrf),
        esc(label)
    )
}

/// The daemon's runs of one kind, newest first.
fn run_rows(rows: &[RunRow]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut t = String::from(
        "<h2>Run by this daemon</h2><table id=\"runs\"><tr><th>Command</th><th>By</th><th>Started</th><th>Ended</th><th>Result</th></tr>",
    );
    for r in rows {
        let (ended, result, cls) = match &r.ended {
            Some(e) => (
                r.ended_at
                    .map(|t| t.format("%H:%M:%S").to_string())
                    .unwrap_or_default(),
                e.summary.clone(),
                if e.code == 0 { "OK" } else { "CRITICAL" },
            ),
            None if r.stopping => (String::new(), "stopping".into(), "WARNING"),
            None => (String::new(), "running".into(), ""),
        };
        t.push_str(&format!(
            "<tr data-run=\"{}\" data-state=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{ended}</td><td class=\"{cls}\">{}</td></tr>",
            r.n,
            if r.ended.is_some() { "ended" } else { "running" },
            esc(&r.what),
            esc(&r.who),
            r.since.format("%H:%M:%S"),
            esc(&result)
        ));
    }
    t.push_str("</table>");
    t
}

fn live(on: bool) -> String {
    if on {
        format!(
            "<p id=\"live\" data-refresh=\"{REFRESH_SECS}\">Loads again every {REFRESH_SECS} s while it runs.</p>"
        )
    } else {
        String::new()
    }
}

const NO_RUNS: &str = "<p id=\"no-runs\">This daemon runs no moves or upgrades (add <code>\"runs\"</code> to <code>[serve] parts</code>): start them at the command line.</p>";

/// The latest run's state, progress, ETA and controls.
fn latest(r: &UpgradeView, runs_on: bool, csrf: &str) -> String {
    let done = r.steps.iter().filter(|s| s.phase == "done").count();
    let eta = r
        .eta(Utc::now())
        .map(|t| format!(", done at about {}", t.format("%H:%M UTC")))
        .unwrap_or_default();
    let mut body = format!(
        "<p id=\"upgrade\" data-id=\"{}\" data-state=\"{st}\">Run {} started {}: <span class=\"{cls}\">{st}</span>, {done} of {} servers done{eta}{}.</p>",
        r.id,
        r.id,
        r.created.format("%Y-%m-%d %H:%M UTC"),
        r.steps.len(),
        r.reason
            .as_deref()
            .map(|x| format!(" ({})", esc(x)))
            .unwrap_or_default(),
        st = esc(&r.state),
        cls = if r.state == "halted" { "CRITICAL" } else { "" }
    );
    body.push_str(&format!(
        "<p>Packages: {}.</p>",
        if r.packages.is_empty() {
            "every update offered".to_string()
        } else {
            esc(&r.packages.join(", "))
        }
    ));
    let id = hidden("id", &r.id.to_string());
    if r.abort_requested && r.state == "running" {
        body.push_str("<p id=\"stopping\">Asked to stop after its current step.</p>");
    } else if r.running {
        body.push_str(&form(
            "/upgrades/stop",
            &id,
            "Stop after the current step",
            csrf,
        ));
    } else if (r.state == "halted" || r.state == "running") && runs_on {
        body.push_str("<p>No process runs it. ");
        body.push_str(&button("/upgrades/resume", "Resume", csrf, None));
        body.push_str(&form("/upgrades/abort", &id, "Abort", csrf));
        body.push_str("</p>");
    } else if r.state == "halted" || r.state == "running" {
        body.push_str("<p>No process runs it: <code>mailfleet upgrade resume</code> continues it, <code>mailfleet upgrade abort</code> ends it.</p>");
    }
    body.push_str("<table id=\"steps\"><tr><th>#</th><th>Server</th><th>Phase</th><th>Started</th><th>Took</th><th>Error</th></tr>");
    for s in &r.steps {
        let took = match (s.started, s.ended) {
            (Some(a), Some(b)) => format!("{} s", (b - a).num_seconds()),
            _ => String::new(),
        };
        body.push_str(&format!(
            "<tr data-server=\"{sv}\" data-phase=\"{ph}\"><td>{}</td><td>{sv}</td><td>{ph}</td><td>{}</td><td>{took}</td><td class=\"err\">{}</td></tr>",
            s.n,
            s.started
                .map(|t| t.format("%H:%M:%S").to_string())
                .unwrap_or_default(),
            esc(s.error.as_deref().unwrap_or("")),
            sv = esc(&s.server),
            ph = esc(&s.phase),
        ));
    }
    body.push_str("</table>");
    body
}

/// A plan asked for, with its Start button.
fn plan(p: &PlanView, runs_on: bool, csrf: &str) -> String {
    let mut body = format!(
        "<h2>Plan</h2><p id=\"plan\">{} servers, done at the earliest {}.</p>",
        p.steps.len(),
        p.ends.format("%Y-%m-%d %H:%M UTC")
    );
    for w in &p.warnings {
        body.push_str(&format!("<p class=\"WARNING\">{}</p>", esc(w)));
    }
    body.push_str("<table id=\"plan-steps\"><tr><th>#</th><th>Server</th><th>Why here</th><th>Before</th><th>Drain</th><th>After</th><th>Starts</th></tr>");
    for s in &p.steps {
        let waits = if s.waits.is_empty() {
            String::new()
        } else {
            format!(" ({})", esc(&s.waits.join("; ")))
        };
        body.push_str(&format!(
            "<tr data-server=\"{sv}\"><td>{}</td><td>{sv}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{waits}</td></tr>",
            s.n,
            esc(&s.why),
            esc(&s.before.join("; ")),
            esc(s.drain.as_deref().unwrap_or("")),
            esc(&s.after.join("; ")),
            s.start.format("%H:%M UTC"),
            sv = esc(&s.server),
        ));
    }
    body.push_str("</table>");
    if runs_on && !p.steps.is_empty() {
        let fields =
            hidden("servers", &p.servers.join(",")) + &hidden("packages", &p.packages.join(","));
        body.push_str(&format!(
            "<p>{}</p>",
            form("/upgrades/start", &fields, "Start this upgrade", csrf)
        ));
    }
    body
}

/// The upgrades page: the latest run, a plan (when asked for, or why it could not be made),
/// the form asking for one, and the daemon's upgrade runs.
pub fn upgrades(
    run: Option<&UpgradeView>,
    asked: Option<Result<&PlanView, &str>>,
    runs: &[RunRow],
    runs_on: bool,
    operator: &str,
    csrf: &str,
) -> String {
    let going = runs.iter().any(|r| r.ended.is_none());
    let mut body = live(going);
    match run {
        Some(r) => body.push_str(&latest(r, runs_on, csrf)),
        None => body.push_str("<p id=\"upgrade\">No upgrade has run yet.</p>"),
    }
    if !runs_on {
        body.push_str(NO_RUNS);
    }
    let (servers, packages) = match &asked {
        Some(Ok(p)) => (p.servers.join(","), p.packages.join(",")),
        _ => (String::new(), String::new()),
    };
    body.push_str(&format!(
        "<h2>Plan an upgrade</h2><form method=\"get\" action=\"/upgrades\">\
         <label>Servers <input name=\"servers\" value=\"{}\" placeholder=\"all\"></label> \
         <label>Packages <input name=\"packages\" value=\"{}\" placeholder=\"every update offered\"></label> \
         <input type=\"hidden\" name=\"plan\" value=\"1\"><button type=\"submit\">Plan</button></form>",
        esc(&servers),
        esc(&packages)
    ));
    match asked {
        Some(Ok(p)) => body.push_str(&plan(p, runs_on && !going, csrf)),
        Some(Err(e)) => body.push_str(&format!(
            "<p class=\"err\" id=\"plan-error\">No plan: {}</p>",
            esc(e)
        )),
        None => {}
    }
    body.push_str(&run_rows(runs));
    frame("Upgrades", Some((operator, csrf)), &body)
}

/// A choice of store, `chosen` selected.
fn store_select(name: &str, stores: &[String], none: Option<&str>, chosen: Option<&str>) -> String {
    let mut s = format!("<select name=\"{name}\">");
    if let Some(label) = none {
        s.push_str(&format!("<option value=\"\">{}</option>", esc(label)));
    }
    for st in stores {
        let selected = if chosen == Some(st.as_str()) {
            " selected"
        } else {
            ""
        };
        s.push_str(&format!("<option{selected}>{}</option>", esc(st)));
    }
    s.push_str("</select>");
    s
}

/// A GET form asking for a move plan.
fn ask(fields: &str, label: &str) -> String {
    format!(
        "<form class=\"inline\" method=\"get\" action=\"/moves\">{fields}<button type=\"submit\">{}</button></form>",
        esc(label)
    )
}

/// A move plan, with its Start button when it may run.
fn move_plan(p: &MovePlanView, can_start: bool, csrf: &str) -> String {
    let mut body = format!(
        "<h2>Plan: <code>{}</code></h2><p id=\"move-plan\" data-moves=\"{}\" data-refused=\"{}\">{} accounts to move, {} skipped, {} refused.</p>",
        esc(&p.what),
        p.moves.len(),
        p.refused.len(),
        p.moves.len(),
        p.skipped.len(),
        p.refused.len()
    );
    for (account, why) in &p.refused {
        body.push_str(&format!(
            "<p class=\"CRITICAL\">{}: {}</p>",
            esc(account),
            esc(why)
        ));
    }
    if !p.moves.is_empty() {
        body.push_str("<table id=\"placements\"><tr><th>Account</th><th>From</th><th>To</th><th>Messages</th><th>Size</th><th>Why</th></tr>");
        for m in &p.moves {
            body.push_str(&format!(
                "<tr data-account=\"{a}\" data-target=\"{t}\"><td>{a}</td><td>{}</td><td>{t}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&m.source),
                m.messages,
                bytes(m.bytes),
                esc(&m.why),
                a = esc(&m.address),
                t = esc(&m.target),
            ));
        }
        body.push_str("</table>");
    }
    for (account, why) in &p.skipped {
        body.push_str(&format!("<p>{} skipped: {}</p>", esc(account), esc(why)));
    }
    body.push_str("<h3>Stores</h3><table id=\"stores\"><tr><th>Store</th><th>Free</th><th>Kept free</th><th>Incoming</th><th>Excluded</th></tr>");
    for st in &p.stores {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&st.name),
            st.available.map(bytes).unwrap_or_default(),
            bytes(st.keep_free),
            bytes(st.incoming),
            esc(st.excluded.as_deref().unwrap_or(""))
        ));
    }
    body.push_str("</table>");
    if can_start && p.refused.is_empty() && !p.moves.is_empty() {
        let (action, fields) = match (&p.ask.drain, &p.ask.back) {
            (Some(store), _) => ("/moves/drain", hidden("store", store)),
            (None, Some(store)) => ("/moves/back", hidden("store", store)),
            (None, None) => (
                "/moves/start",
                hidden("accounts", &p.ask.accounts.join(","))
                    + &hidden("to", p.ask.to.as_deref().unwrap_or("")),
            ),
        };
        body.push_str(&format!(
            "<p>{}</p>",
            form(action, &fields, "Start these moves", csrf)
        ));
    }
    body
}

/// The moves page: the latest batch and every open move with its phase and lock time, the
/// batch's rate and time left, forms asking for a plan (move accounts, drain a store, move
/// back what a drain took) and the plan asked for with its Start button, and the daemon's
/// move runs.
pub fn moves(
    view: &MovesView,
    asked: Option<Result<&MovePlanView, &str>>,
    runs: &[RunRow],
    runs_on: bool,
    operator: &str,
    csrf: &str,
) -> String {
    let going = runs.iter().any(|r| r.ended.is_none());
    let mut body = live(going);
    let open = view.moves.iter().filter(|m| !m.over).count();
    let plan_ask = match &asked {
        Some(Ok(p)) => Some(&p.ask),
        _ => None,
    };
    let to = plan_ask.and_then(|a| a.to.as_deref());
    let drain = plan_ask.and_then(|a| a.drain.as_deref());
    let back = plan_ask.and_then(|a| a.back.as_deref());
    body.push_str(&format!(
        "<p id=\"moves-summary\">{} moves shown, {open} not over{}{}.</p>",
        view.moves.len(),
        view.rate
            .map(|r| format!(", copying at {}/s", bytes(r as u64)))
            .unwrap_or_default(),
        view.eta_secs
            .filter(|_| open > 0)
            .map(|s| format!(
                ", {} left, about {} min",
                bytes(view.remaining_bytes),
                (s / 60.0).ceil()
            ))
            .unwrap_or_default()
    ));
    if going {
        body.push_str(&button(
            "/moves/stop",
            "Stop after the moves in flight",
            csrf,
            None,
        ));
    }
    if !runs_on {
        body.push_str(NO_RUNS);
    } else if !going {
        body.push_str(&format!(
            "<h2>Move</h2><p>{}</p><p>{}</p><p>{}</p>",
            ask(
                &format!(
                    "<label>Accounts <input name=\"accounts\" size=\"40\" value=\"{}\" placeholder=\"alice@example.com, bob@example.com\"></label> <label>to {}</label> ",
                    esc(&plan_ask.map(|a| a.accounts.join(", ")).unwrap_or_default()),
                    store_select("to", &view.stores, Some("where weights and free space say"), to)
                ),
                "Plan the move",
            ),
            ask(
                &format!("<label>Every account off {}</label> ", store_select("drain", &view.stores, None, drain)),
                "Plan the drain",
            ),
            ask(
                &format!("<label>Every account a drain took, back to {}</label> ", store_select("back", &view.stores, None, back)),
                "Plan the move back",
            ),
        ));
        if open > 0 {
            body.push_str(&format!(
                "<p>{open} moves are not over and no process runs them. {}</p>",
                button("/moves/resume", "Resume them", csrf, None)
            ));
        }
    }
    match asked {
        Some(Ok(p)) => body.push_str(&move_plan(p, runs_on && !going, csrf)),
        Some(Err(e)) => body.push_str(&format!(
            "<p class=\"err\" id=\"plan-error\">No plan: {}</p>",
            esc(e)
        )),
        None => {}
    }
    body.push_str("<h2>Moves</h2><table id=\"moves\"><tr><th>#</th><th>Account</th><th>From</th><th>To</th><th>Phase</th><th>Passes</th><th>Messages</th><th>Size</th><th>Locked</th><th>Error</th></tr>");
    for m in &view.moves {
        let cls = match m.phase.as_str() {
            "done" => "OK",
            "failed" => "CRITICAL",
            "aborted" => "WARNING",
            _ => "",
        };
        body.push_str(&format!(
            "<tr data-account=\"{a}\" data-phase=\"{ph}\"><td>{}</td><td>{a}</td><td>{}</td><td>{}</td><td class=\"{cls}\">{ph}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"err\">{}</td></tr>",
            m.id,
            esc(&m.source),
            esc(&m.target),
            m.passes,
            m.messages,
            bytes(m.bytes),
            m.lock_ms
                .map(|ms| format!("{:.1} s", ms / 1000.0))
                .unwrap_or_default(),
            esc(m.error.as_deref().or(m.waiting.as_deref()).unwrap_or("")),
            a = esc(&m.address),
            ph = esc(&m.phase),
        ));
    }
    body.push_str("</table>");
    body.push_str(&run_rows(runs));
    frame("Moves", Some((operator, csrf)), &body)
}
