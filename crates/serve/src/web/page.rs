//! The dashboard's pages: server-rendered HTML, small, with one stylesheet inline-free (the
//! Content-Security-Policy allows nothing but this origin), every value escaped.

use mailfleet_core::audit::Action;

use crate::board::{BackupJob, Round, Row};
use crate::web::ops::{HeldRow, PolicyView, RepoView};

/// `text` safe inside HTML text and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The stylesheet, served at `/style.css`.
pub const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse}td,th{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:left}\
.OK{color:#060}.WARNING{color:#a60}.CRITICAL{color:#b00;font-weight:bold}.UNKNOWN{color:#555;font-weight:bold}\
nav a,nav button{margin-right:1em}form.inline{display:inline}.err{color:#b00}\
figure.chart{margin:1em 0}figcaption{font-weight:bold}ul.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.3em 1.2em;font-size:.85em}";

/// The page's script, served at `/app.js` (the CSP allows no inline script): the fleet's
/// table redrawn from each round the server sends, without a reload; a page with a run
/// going on (`data-refresh` seconds) loaded again until it ends.
pub const SCRIPT: &str = r#"(function () {
  var live = document.querySelector("[data-refresh]");
  if (live) {
    setTimeout(function () { location.reload(); }, 1000 * Number(live.getAttribute("data-refresh")));
  }
  var table = document.getElementById("checks");
  if (!table || !window.EventSource) { return; }
  var when = document.getElementById("round");
  function cell(row, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    row.appendChild(td);
  }
  new EventSource("/events").addEventListener("round", function (e) {
    var round = JSON.parse(e.data);
    while (table.rows.length > 1) { table.deleteRow(1); }
    round.rows.forEach(function (r) {
      var tr = table.insertRow(-1);
      tr.setAttribute("data-server", r.server);
      tr.setAttribute("data-check", r.check);
      cell(tr, r.server); cell(tr, r.check); cell(tr, r.state, r.state);
      cell(tr, Math.round(r.elapsed_ms)); cell(tr, r.message);
    });
    if (when && round.at) { when.textContent = "Round " + round.number + " at " + round.at; }
  });
})();
"#;

pub(super) fn frame(title: &str, nav: Option<(&str, &str)>, body: &str) -> String {
    let nav = match nav {
        Some((operator, csrf)) => format!(
            "<nav><a href=\"/\">Fleet</a><a href=\"/alarms\">Alarms</a><a href=\"/charts\">Charts</a><a href=\"/policy\">Policy</a><a href=\"/backups\">Backups</a><a href=\"/upgrades\">Upgrades</a><a href=\"/moves\">Moves</a><a href=\"/audit\">Audit log</a>\
             <form class=\"inline\" method=\"post\" action=\"/logout\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\">Log out {}</button></form></nav>",
            esc(csrf),
            esc(operator)
        ),
        None => String::new(),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{} - mailfleet</title><link rel=\"stylesheet\" href=\"/style.css\">\
         <script src=\"/app.js\" defer></script></head>\
         <body>{nav}<h1>{}</h1>{body}</body></html>",
        esc(title),
        esc(title)
    )
}

/// The login form.
pub fn login(csrf: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"err\">{}</p>", esc(e)))
        .unwrap_or_default();
    frame(
        "Log in",
        None,
        &format!(
            "{error}<form method=\"post\" action=\"/login\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <p><label>Name <input name=\"name\" autocomplete=\"username\" required></label></p>\
             <p><label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label></p>\
             <p><button type=\"submit\">Log in</button></p></form>",
            esc(csrf)
        ),
    )
}

/// The fleet: every server with each check's state from the latest round.
pub fn overview(round: &Round, operator: &str, csrf: &str) -> String {
    let mut body = match round.at {
        Some(at) => format!(
            "<p id=\"round\">Round {} at {}</p>",
            round.number,
            at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        None => "<p id=\"round\">No probe round yet.</p>".to_string(),
    };
    body.push_str("<table id=\"checks\"><tr><th>Server</th><th>Check</th><th>State</th><th>ms</th><th>Found</th></tr>");
    for r in &round.rows {
        body.push_str(&format!(
            "<tr data-server=\"{s}\" data-check=\"{c}\"><td>{s}</td><td>{c}</td><td class=\"{st}\">{st}</td><td>{ms:.0}</td><td>{m}</td></tr>",
            s = esc(&r.server),
            c = esc(&r.check),
            st = esc(&r.state),
            ms = r.elapsed_ms,
            m = esc(&r.message)
        ));
    }
    body.push_str("</table>");
    frame("Fleet", Some((operator, csrf)), &body)
}

pub(super) fn button(action: &str, label: &str, csrf: &str, account: Option<&str>) -> String {
    let account = account
        .map(|a| {
            format!(
                "<input type=\"hidden\" name=\"account\" value=\"{}\">",
                esc(a)
            )
        })
        .unwrap_or_default();
    format!(
        "<form class=\"inline\" method=\"post\" action=\"{action}\">{account}\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">{}</button></form>",
        esc(csrf),
        esc(label)
    )
}

/// The policy: top senders of the quota window, held mail by account (release, purge),
/// send-blocked accounts (unblock), DNSBL hits.
pub fn policy(view: &PolicyView, operator: &str, csrf: &str) -> String {
    let mut body = format!(
        "<h2>Top senders</h2><p>In the last {} min.</p>",
        view.window_secs / 60
    );
    if view.senders.is_empty() {
        body.push_str("<p id=\"senders\">No mail sent in the window.</p>");
    } else {
        body.push_str("<table id=\"senders\"><tr><th>Account</th><th>Messages</th><th>Recipients</th><th>Limit</th></tr>");
        for s in view.senders.iter().take(20) {
            body.push_str(&format!(
                "<tr data-account=\"{a}\"><td>{a}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                s.messages,
                s.recipients,
                s.limit.map_or("none".to_string(), |l| l.to_string()),
                a = esc(&s.account)
            ));
        }
        body.push_str("</table>");
    }
    body.push_str("<h2>Held mail</h2>");
    let mut accounts: Vec<&str> = view.held.iter().map(|h| h.account.as_str()).collect();
    accounts.sort_unstable();
    accounts.dedup();
    if accounts.is_empty() {
        body.push_str("<p id=\"held\">No mail is held.</p>");
    } else {
        body.push_str(
            "<table id=\"held\"><tr><th>Account</th><th>Held</th><th>Oldest</th><th></th></tr>",
        );
        for a in accounts {
            let mine: Vec<&HeldRow> = view.held.iter().filter(|h| h.account == a).collect();
            let oldest = mine
                .iter()
                .filter_map(|h| h.held_at)
                .min()
                .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_default();
            body.push_str(&format!(
                "<tr data-account=\"{e}\"><td>{e}</td><td>{}</td><td>{oldest}</td><td>{}{}</td></tr>",
                mine.len(),
                button("/policy/release", "Release", csrf, Some(a)),
                button("/policy/purge", "Purge", csrf, Some(a)),
                e = esc(a)
            ));
        }
        body.push_str("</table>");
    }
    body.push_str("<h2>Blocked from sending</h2>");
    if view.blocked.is_empty() {
        body.push_str("<p id=\"blocked\">No account is blocked.</p>");
    } else {
        body.push_str(
            "<table id=\"blocked\"><tr><th>Account</th><th>Why</th><th>Since</th><th></th></tr>",
        );
        for b in &view.blocked {
            body.push_str(&format!(
                "<tr data-account=\"{a}\"><td>{a}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&b.reason),
                esc(&b.since),
                button("/policy/unblock", "Unblock", csrf, Some(&b.account)),
                a = esc(&b.account)
            ));
        }
        body.push_str("</table>");
    }
    body.push_str("<h2>DNSBL hits</h2>");
    if view.dnsbl.is_empty() {
        body.push_str("<p id=\"dnsbl\">No DNSBL is asked, or none answered yet.</p>");
    } else {
        body.push_str("<table id=\"dnsbl\"><tr><th>List</th><th>Hits</th><th>Addresses</th></tr>");
        for d in &view.dnsbl {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&d.zone),
                d.hits,
                d.unique
            ));
        }
        body.push_str("</table>");
    }
    frame("Policy", Some((operator, csrf)), &body)
}

/// `n` bytes for a human: KiB to TiB.
pub fn bytes(n: u64) -> String {
    let mut v = n as f64;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if v < 1024.0 {
            return if unit == "B" {
                format!("{n} B")
            } else {
                format!("{v:.1} {unit}")
            };
        }
        v /= 1024.0;
    }
    format!("{v:.1} TiB")
}

/// The backups: each store's freshness (the monitor's backup check), the repository's
/// snapshots, size and deduplication, and the latest backup started here with the button
/// that starts one.
pub fn backups(
    job: Option<&BackupJob>,
    next: Option<chrono::DateTime<chrono::Utc>>,
    freshness: &[Row],
    repo: &Result<RepoView, String>,
    operator: &str,
    csrf: &str,
) -> String {
    let state = match job {
        None => "<p id=\"backup\">No backup started here yet.</p>".to_string(),
        Some(j) => match (&j.ended, &j.result) {
            (Some(end), Some(r)) => format!(
                "<p id=\"backup\" data-state=\"finished\">Started by {} at {}, finished at {}: {}</p>",
                esc(&j.operator),
                j.started.format("%H:%M:%S UTC"),
                end.format("%H:%M:%S UTC"),
                esc(r)
            ),
            _ => format!(
                "<p id=\"backup\" data-state=\"running\">Started by {} at {}: running.</p>",
                esc(&j.operator),
                j.started.format("%H:%M:%S UTC")
            ),
        },
    };
    let next = match next {
        Some(t) => format!(
            "<p id=\"next\">Next scheduled backup at {}.</p>",
            t.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        None => String::new(),
    };
    let mut body = format!(
        "{state}{next}<p>{}</p><h2>Freshness</h2>",
        button("/backups/run", "Back up every store now", csrf, None)
    );
    if freshness.is_empty() {
        body.push_str("<p id=\"freshness\">No backup check in the monitor's latest round.</p>");
    } else {
        body.push_str(
            "<table id=\"freshness\"><tr><th>Store</th><th>State</th><th>Found</th></tr>",
        );
        for r in freshness {
            body.push_str(&format!(
                "<tr data-server=\"{s}\"><td>{s}</td><td class=\"{st}\">{st}</td><td>{}</td></tr>",
                esc(&r.message),
                s = esc(&r.server),
                st = esc(&r.state)
            ));
        }
        body.push_str("</table>");
    }
    body.push_str("<h2>Repository</h2>");
    match repo {
        Err(e) => body.push_str(&format!(
            "<p class=\"err\" id=\"repository\">The repository cannot be read: {}</p>",
            esc(e)
        )),
        Ok(r) => {
            let held: u64 = r.snapshots.iter().map(|s| s.bytes).sum();
            body.push_str(&format!(
                "<p id=\"repository\">{}: {} snapshots holding {} of mail in {} stored ({} blobs){}.</p>",
                esc(&r.repository),
                r.snapshots.len(),
                bytes(held),
                bytes(r.stored_bytes),
                r.blobs,
                r.dedup_ratio()
                    .map(|d| format!(", deduplication {d:.1}:1"))
                    .unwrap_or_default()
            ));
            for d in &r.damaged {
                body.push_str(&format!(
                    "<p class=\"err\">Snapshot {} cannot be read: {}</p>",
                    esc(&d.id),
                    esc(&d.error)
                ));
            }
            body.push_str("<table id=\"snapshots\"><tr><th>Snapshot</th><th>Started</th><th>Took</th><th>Accounts</th><th>Messages</th><th>Size</th></tr>");
            for s in r.snapshots.iter().rev().take(30) {
                body.push_str(&format!(
                    "<tr data-id=\"{id}\"><td>{id}</td><td>{}</td><td>{} s</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    s.time.format("%Y-%m-%d %H:%M:%S UTC"),
                    (s.finished - s.time).num_seconds().max(0),
                    s.accounts,
                    s.messages,
                    bytes(s.bytes),
                    id = esc(&s.id)
                ));
            }
            body.push_str("</table>");
        }
    }
    frame("Backups", Some((operator, csrf)), &body)
}

/// The charts over the range `range`, with links to the other ranges.
pub fn charts(range: &str, drawn: &[String], operator: &str, csrf: &str) -> String {
    let mut body = String::from("<p class=\"ranges\">Range:");
    for (name, _) in crate::web::charts::RANGES {
        if name == range {
            body.push_str(&format!(" <strong>{name}</strong>"));
        } else {
            body.push_str(&format!(" <a href=\"/charts?range={name}\">{name}</a>"));
        }
    }
    body.push_str("</p>");
    for d in drawn {
        body.push_str(d);
    }
    frame("Charts", Some((operator, csrf)), &body)
}

/// A message after an action that could not be done.
pub fn message(title: &str, text: &str, operator: &str, csrf: &str) -> String {
    frame(
        title,
        Some((operator, csrf)),
        &format!("<p class=\"err\">{}</p>", esc(text)),
    )
}

/// The audit log, newest first.
pub fn audit(actions: &[Action], operator: &str, csrf: &str) -> String {
    let mut body = String::from(
        "<table id=\"audit\"><tr><th>When</th><th>Who</th><th>From</th><th>What</th><th>Result</th></tr>",
    );
    for a in actions.iter().rev() {
        // The command line's arguments are the whole command as typed.
        let what = if a.actor.via == "cli" {
            format!("mailfleet {}", a.args.join(" "))
        } else {
            format!("{} {}", a.action, a.args.join(" "))
        };
        body.push_str(&format!(
            "<tr><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            a.time.format("%Y-%m-%d %H:%M:%S"),
            esc(&a.actor.who),
            esc(&a.actor.via),
            esc(&a.actor.from),
            esc(what.trim_end()),
            esc(a.result.as_deref().unwrap_or("no result yet"))
        ));
    }
    body.push_str("</table>");
    frame("Audit log", Some((operator, csrf)), &body)
}
