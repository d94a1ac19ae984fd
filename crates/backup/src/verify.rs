//! Checking a repository: every snapshot's trees, every message's recipe and every blob they
//! reference must be indexed and its pack present; with `read_data`, every message is rebuilt and its hash checked.
//! Damage is reported by the messages it hits (snapshot, account, folder, file name).

use std::collections::HashMap;

use serde::Serialize;

use crate::error::BackupError;
use crate::id::BlobId;
use crate::recipe::Recipe;
use crate::repo::Repository;
use crate::snapshot::AccountTree;

/// What a check found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Snapshots checked.
    pub snapshots: u64,
    /// Messages the snapshots hold (one per message file of each snapshot).
    pub messages: u64,
    /// Distinct messages among them (the same message in several folders, accounts or
    /// snapshots is checked once).
    pub distinct_messages: u64,
    /// Blobs whose presence (or, with data, content) was checked.
    pub blobs: u64,
    /// What is damaged: one line per damaged message or tree, naming it and why.
    pub damaged: Vec<String>,
}

impl VerifyReport {
    /// Whether nothing is damaged.
    pub fn ok(&self) -> bool {
        self.damaged.is_empty()
    }
}

/// Checks the repository.
pub fn verify(repo: &Repository, read_data: bool) -> Result<VerifyReport, BackupError> {
    let mut report = VerifyReport::default();
    let present: std::collections::HashSet<String> = repo
        .target()
        .list("packs")?
        .iter()
        .filter_map(|k| k.rsplit('/').next().map(str::to_string))
        .collect();
    report.damaged.extend(
        repo.damaged_indexes()
            .into_iter()
            .map(|e| format!("index: {e}")),
    );
    let mut blob_ok: HashMap<BlobId, Result<(), String>> = HashMap::new();
    let mut check_blob = |id: &BlobId, report: &mut VerifyReport| -> Result<(), String> {
        blob_ok
            .entry(*id)
            .or_insert_with(|| {
                report.blobs += 1;
                match repo.pack_of(id) {
                    None => return Err(format!("blob {id} is missing (in no index)")),
                    Some(p) if !present.contains(&p) => {
                        return Err(format!("blob {id}: its pack {p} is missing"));
                    }
                    Some(_) => {}
                }
                if read_data {
                    repo.get(id).map(|_| ()).map_err(|e| e.to_string())
                } else {
                    Ok(())
                }
            })
            .clone()
    };
    let mut message_ok: HashMap<BlobId, Result<(), String>> = HashMap::new();
    let listing = repo.snapshot_listing()?;
    report.damaged.extend(
        listing
            .damaged
            .iter()
            .map(|d| format!("snapshot {}: {}", d.id, d.error)),
    );
    for snap in listing.intact {
        report.snapshots += 1;
        for account in &snap.accounts {
            let tree: AccountTree = match check_blob(&account.tree, &mut report)
                .and_then(|()| repo.get_json(&account.tree).map_err(|e| e.to_string()))
            {
                Ok(t) => t,
                Err(e) => {
                    report
                        .damaged
                        .push(format!("{} {}: folder list: {e}", snap.id, account.address));
                    continue;
                }
            };
            for folder in &tree.folders {
                for m in &folder.messages {
                    report.messages += 1;
                    let result = match message_ok.get(&m.recipe) {
                        Some(r) => r.clone(),
                        None => {
                            report.distinct_messages += 1;
                            let r = check_message(repo, &m.recipe, read_data, &mut |id| {
                                check_blob(id, &mut report)
                            });
                            message_ok.insert(m.recipe, r.clone());
                            r
                        }
                    };
                    if let Err(e) = result {
                        report.damaged.push(format!(
                            "{} {} {} {}: {e}",
                            snap.id,
                            account.address,
                            crate::restore::folder_name(&folder.dir),
                            m.file_name()
                        ));
                    }
                }
            }
        }
    }
    Ok(report)
}

fn check_message(
    repo: &Repository,
    recipe_id: &BlobId,
    read_data: bool,
    check_blob: &mut dyn FnMut(&BlobId) -> Result<(), String>,
) -> Result<(), String> {
    check_blob(recipe_id)?;
    let recipe: Recipe = crate::recipe::load(repo, recipe_id).map_err(|e| e.to_string())?;
    for id in crate::recipe::blobs(&recipe) {
        check_blob(id)?;
    }
    if read_data {
        crate::recipe::rebuild(repo, &recipe).map_err(|e| e.to_string())?;
    }
    Ok(())
}
