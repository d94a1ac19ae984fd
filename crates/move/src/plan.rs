//! What goes where: the accounts a request names (by address, by domain, every account of a
//! store being drained), each mailbox's size read on its store, and a target for each, given
//! or chosen by the stores' capacity weights and free space (read on each store through its
//! access, keeping a share of it free). A plan in which something does not fit is refused
//! whole, before anything is copied.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use mailfleet_core::directory::Filter;
use mailfleet_core::fleet::Role;
use mailfleet_core::{AccountBook, Address, Server};
use mailfleet_remote::{Cmd, Reach};

use crate::error::MoveError;
use crate::journal::{Entry, Journal};
use crate::verify::{Size, size};

/// What the admin asked to move.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Accounts by address.
    pub accounts: Vec<String>,
    /// Every account of these domains.
    pub domains: Vec<String>,
    /// Every account on these stores (a drain): none of them is a target.
    pub from: Vec<String>,
    /// The target; without it each account goes where the weights and free space say.
    pub to: Option<String>,
    /// Accounts a drain leaves where they are (a store's probe account, which lets the
    /// monitor keep watching the emptied store).
    pub keep: Vec<String>,
}

impl Request {
    /// What makes the request unusable: nothing to move, or no target without a drain.
    pub fn problem(&self) -> Option<&'static str> {
        if self.accounts.is_empty() && self.domains.is_empty() && self.from.is_empty() {
            return Some("name accounts, --domain or --from (or a subcommand: see move --help)");
        }
        if self.to.is_none() && self.from.is_empty() {
            return Some("--to STORE is needed unless the accounts come from a drain (--from)");
        }
        None
    }

    /// The request as the command line that asks for it, for the journal and notices.
    pub fn describe(&self) -> String {
        let mut what = String::from("move");
        for a in &self.accounts {
            what.push_str(&format!(" {a}"));
        }
        for d in &self.domains {
            what.push_str(&format!(" --domain {d}"));
        }
        for f in &self.from {
            what.push_str(&format!(" --from {f}"));
        }
        if let Some(t) = &self.to {
            what.push_str(&format!(" --to {t}"));
        }
        what
    }
}

/// One account's planned move.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Placement {
    /// The account.
    pub address: String,
    /// Where it is.
    pub source: String,
    /// Where it goes.
    pub target: String,
    /// Its mailbox.
    pub size: Size,
    /// Why there.
    pub why: String,
}

/// A store as the plan saw it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreSpace {
    /// The store.
    pub name: String,
    /// Its capacity weight.
    pub weight: u32,
    /// Its mail filesystem's size (bytes), when read.
    pub total: Option<u64>,
    /// Free on it now (bytes), when read.
    pub available: Option<u64>,
    /// What must stay free (bytes).
    pub keep_free: u64,
    /// What the plan puts on it (bytes).
    pub incoming: u64,
    /// Why it takes no accounts, if it does not.
    pub excluded: Option<String>,
}

/// What would go where, and what cannot.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    /// The moves.
    pub moves: Vec<Placement>,
    /// Accounts left out, and why (already on the target, say).
    pub skipped: Vec<(String, String)>,
    /// Accounts that cannot be placed, and why: the plan must not run while there are any.
    pub refused: Vec<(String, String)>,
    /// The stores considered.
    pub stores: Vec<StoreSpace>,
}

/// How much space a filesystem has, as `df` reports it on the server.
pub async fn space(
    reach: &Reach,
    server: &Server,
    deadline: Duration,
) -> Result<(u64, u64), MoveError> {
    let root = server
        .maildir_root
        .as_ref()
        .ok_or_else(|| MoveError::Config {
            server: server.name.clone(),
            message: "no maildir_root in the config: its free space cannot be read".into(),
        })?;
    let path = root.display().to_string();
    let cmd = Cmd::new(["df", "-P", "-k", "--", path.as_str()]).deadline(deadline);
    let out = reach
        .check(&server.name, &server.access, &cmd)
        .await?
        .stdout_text();
    let line = out.lines().nth(1).unwrap_or("");
    let cols: Vec<&str> = line.split_whitespace().collect();
    let kib = |i: usize| cols.get(i).and_then(|c| c.parse::<u64>().ok());
    match (kib(1), kib(3)) {
        (Some(total), Some(avail)) => Ok((total * 1024, avail * 1024)),
        _ => Err(MoveError::Output {
            server: server.name.clone(),
            line: line.to_string(),
        }),
    }
}

fn gib(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30))
    } else {
        format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20))
    }
}

/// Plans `request`: reads every mailbox's size and every candidate store's free space.
pub async fn plan(
    book: &AccountBook,
    reach: &Reach,
    request: &Request,
    keep_free_pct: u8,
    upgrading: &BTreeMap<String, String>,
    deadline: Duration,
) -> Result<Plan, MoveError> {
    let fleet = book.fleet();
    let dir = |e: mailfleet_core::accounts::AccountError| MoveError::Directory(e.to_string());
    for s in request.to.iter().chain(&request.from) {
        book.check_server(s).map_err(dir)?;
    }
    // Every named account, once, in the order named.
    let mut accounts = BTreeMap::new();
    let mut order = Vec::new();
    let mut add = |a: mailfleet_core::Account| {
        let key = a.address.to_string();
        if let std::collections::btree_map::Entry::Vacant(v) = accounts.entry(key.clone()) {
            order.push(key);
            v.insert(a);
        }
    };
    for a in &request.accounts {
        add(book.show(a).await.map_err(dir)?);
    }
    for d in &request.domains {
        let found = book
            .list(&Filter {
                domain: Some(d.to_ascii_lowercase()),
                server: None,
                locked: false,
            })
            .await
            .map_err(dir)?;
        if found.is_empty() {
            return Err(MoveError::Directory(format!("no account in domain {d}")));
        }
        found.into_iter().for_each(&mut add);
    }
    for s in &request.from {
        let found = book
            .list(&Filter {
                domain: None,
                server: Some(s.clone()),
                locked: false,
            })
            .await
            .map_err(dir)?;
        found
            .into_iter()
            .filter(|a| !request.keep.contains(&a.address.to_string()))
            .for_each(&mut add);
    }
    let draining: BTreeSet<&str> = request.from.iter().map(String::as_str).collect();
    if let Some(to) = &request.to
        && draining.contains(to.as_str())
    {
        return Err(MoveError::Config {
            server: to.clone(),
            message: "is being drained: it cannot be the target too".into(),
        });
    }

    // Candidate targets and their space.
    let candidates: Vec<&Server> = fleet
        .servers
        .iter()
        .filter(|s| s.roles.contains(&Role::Mailbox))
        .filter(|s| request.to.as_deref().is_none_or(|t| t == s.name))
        .collect();
    let read = futures::future::join_all(
        candidates
            .iter()
            .map(|s| async move { (s, space(reach, s, deadline).await) }),
    )
    .await;
    let mut stores = Vec::new();
    for (s, r) in read {
        let excluded = if draining.contains(s.name.as_str()) {
            Some("being drained".to_string())
        } else if s.weight == 0 && request.to.is_none() {
            Some("weight 0: takes no new mailboxes".to_string())
        } else {
            upgrading
                .get(&s.name)
                .filter(|_| request.to.is_none())
                .map(|why| format!("marked for upgrade and not upgraded yet ({why})"))
        };
        let (total, available, excluded) = match r {
            Ok((t, a)) => (Some(t), Some(a), excluded),
            Err(e) => (
                None,
                None,
                Some(excluded.unwrap_or(format!("free space unknown: {e}"))),
            ),
        };
        stores.push(StoreSpace {
            name: s.name.clone(),
            weight: s.weight,
            total,
            available,
            keep_free: total.unwrap_or(0) / 100 * u64::from(keep_free_pct),
            incoming: 0,
            excluded,
        });
    }

    // Each mailbox's size, a few stores asked at once.
    let sized: Vec<(String, Result<Size, MoveError>)> =
        futures::stream::iter(order.iter().map(|key| {
            let a = &accounts[key];
            async move {
                let r = match (fleet.server(&a.server), Address::parse(key)) {
                    (Some(src), Ok(addr)) => size(reach, src, &addr, deadline).await,
                    (None, _) => Err(MoveError::Config {
                        server: a.server.clone(),
                        message: format!("{key} lives on a server not in the config"),
                    }),
                    (_, Err(e)) => Err(MoveError::Directory(e.to_string())),
                };
                (key.clone(), r)
            }
        }))
        .buffered(8)
        .collect()
        .await;

    let mut plan = Plan {
        moves: Vec::new(),
        skipped: Vec::new(),
        refused: Vec::new(),
        stores,
    };
    let mut sized: Vec<(String, Size)> = sized
        .into_iter()
        .filter_map(|(key, r)| match r {
            Ok(s) => Some((key, s)),
            Err(e) => {
                plan.refused
                    .push((key, format!("its size cannot be read: {e}")));
                None
            }
        })
        .collect();
    // The biggest first: they are the hardest to fit.
    sized.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(&b.0)));
    for (key, sz) in sized {
        let source = accounts[&key].server.clone();
        if request.to.as_deref() == Some(source.as_str()) {
            plan.skipped.push((key, format!("already on {source}")));
            continue;
        }
        // The store with the least planned per unit of weight that still has room.
        let mut best: Option<usize> = None;
        let mut why_not = Vec::new();
        for (i, st) in plan.stores.iter().enumerate() {
            if st.name == source {
                continue;
            }
            if let Some(x) = &st.excluded {
                why_not.push(format!("{}: {x}", st.name));
                continue;
            }
            let room = st
                .available
                .unwrap_or(0)
                .saturating_sub(st.keep_free)
                .saturating_sub(st.incoming);
            if sz.bytes > room {
                why_not.push(format!(
                    "{}: {} free beyond the {keep_free_pct}% kept free, the mailbox is {}",
                    st.name,
                    gib(room),
                    gib(sz.bytes)
                ));
                continue;
            }
            let load = |s: &StoreSpace| s.incoming as f64 / f64::from(s.weight.max(1));
            if best.is_none_or(|b| load(st) < load(&plan.stores[b])) {
                best = Some(i);
            }
        }
        match best {
            Some(i) => {
                let st = &mut plan.stores[i];
                st.incoming += sz.bytes;
                let room_after = st
                    .available
                    .unwrap_or(0)
                    .saturating_sub(st.keep_free)
                    .saturating_sub(st.incoming);
                let why = if request.to.is_some() {
                    format!("asked for; {} free after", gib(room_after))
                } else {
                    format!(
                        "weight {}, least planned per weight; {} free after",
                        st.weight,
                        gib(room_after)
                    )
                };
                plan.moves.push(Placement {
                    address: key,
                    source,
                    target: st.name.clone(),
                    size: sz,
                    why,
                });
            }
            None => {
                let why = if why_not.is_empty() {
                    "no other mailbox store".to_string()
                } else {
                    format!("no store has room: {}", why_not.join("; "))
                };
                plan.refused.push((key, why));
            }
        }
    }
    // In the order the accounts were named.
    let pos: BTreeMap<&String, usize> = order.iter().enumerate().map(|(i, k)| (k, i)).collect();
    plan.moves.sort_by_key(|m| pos.get(&m.address).copied());
    Ok(plan)
}

/// Records a plan in the journal as one batch; the moves, ready to run.
pub fn record(
    journal: &Journal,
    command: &str,
    plan: &Plan,
) -> Result<(i64, Vec<Entry>), MoveError> {
    // Refused whole when an account has a move open, before the batch is recorded.
    for m in &plan.moves {
        if let Some(open) = journal.open_move(&m.address)? {
            return Err(crate::journal::JournalError::Busy {
                address: m.address.clone(),
                id: open.id,
                phase: open.phase,
            }
            .into());
        }
    }
    let batch = journal.begin_batch(command)?;
    let mut out = Vec::new();
    for m in &plan.moves {
        out.push(journal.plan(
            batch,
            &m.address,
            &m.source,
            &m.target,
            m.size.messages,
            m.size.bytes,
        )?);
    }
    Ok((batch, out))
}
