//! Loading the repository's blob index: the local index file where there is one, then the
//! segments it does not cover; and merging what a run added into that file.

use std::collections::HashSet;

use crate::blob_index::{BlobIndex, RECENT_LIMIT, cache_path};
use crate::error::BackupError;
use crate::pack::IndexSegment;
use crate::repo::Repository;

impl Repository {
    /// Reads the index again (after taking a lock: a prune may have run since open). A
    /// segment that cannot be read is skipped and reported by `damaged_indexes`: its blobs are
    /// written again when needed, and `verify` names what it hides. With a local index file,
    /// only the segments it does not cover are read; a file naming packs the repository no
    /// longer has (a prune ran) is rebuilt.
    pub fn reload_index(&self) -> Result<(), BackupError> {
        let keys = self.target.list("index")?;
        let mut index = BlobIndex::default();
        if let Some(dir) = &self.index_cache {
            let listed: HashSet<&str> = keys
                .iter()
                .filter_map(|k| k.strip_prefix("index/"))
                .collect();
            match crate::index_file::IndexFile::open(&cache_path(dir)) {
                Ok(f) if f.packs.iter().all(|p| listed.contains(p.as_str())) => {
                    index = BlobIndex::from_file(f);
                }
                Ok(_) => tracing::info!(
                    "the local blob index names packs a prune removed: rebuilt from the repository"
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("the local blob index is rebuilt: {e}"),
            }
        }
        let covered: HashSet<String> = index.packs.iter().cloned().collect();
        let mut damaged = Vec::new();
        for key in keys {
            if key
                .strip_prefix("index/")
                .is_some_and(|name| covered.contains(name))
            {
                continue;
            }
            let segment = self.target.get(&key).and_then(|raw| {
                let plain = self.unwrap_object(&key, &raw)?;
                serde_json::from_slice::<IndexSegment>(&plain)
                    .map_err(|e| BackupError::Corrupt(format!("{key}: {e}")))
            });
            match segment {
                Ok(seg) => index.add_segment(seg),
                Err(e @ BackupError::Hung { .. }) => return Err(e),
                Err(e) => {
                    tracing::warn!("index segment skipped: {e}");
                    damaged.push(e.to_string());
                }
            }
        }
        let big = index.recent() >= RECENT_LIMIT;
        {
            let mut state = self.state();
            state.index = index;
            state.damaged_indexes = damaged;
        }
        if big {
            self.settle_index()?;
        }
        self.load_dicts()
    }

    /// Writes the blobs held in memory into the local index file (when there is one): at the
    /// end of a run, and when they grow past `RECENT_LIMIT`. A failure costs only memory and
    /// the time to read the segments again next time.
    pub fn settle_index(&self) -> Result<(), BackupError> {
        let Some(dir) = &self.index_cache else {
            return Ok(());
        };
        let path = cache_path(dir);
        let plan = {
            let mut s = self.state();
            if s.index.recent() == 0 {
                return Ok(());
            }
            match s.index.plan_merge() {
                Some(plan) => plan,
                None if s.index.merging() => return Ok(()),
                None => {
                    // (after a prune in this process: pack numbers change, so under the lock)
                    tracing::info!(
                        "merging {} blobs into the local blob index",
                        s.index.recent()
                    );
                    if let Err(e) = s.index.merge(&path) {
                        tracing::warn!("the local blob index could not be written: {e}");
                    }
                    return Ok(());
                }
            }
        };
        // Written outside the lock: the other threads go on storing meanwhile.
        tracing::info!("merging {} blobs into the local blob index", plan.adds());
        let written = plan.write(&path);
        self.state().index.finish_merge(plan, written);
        Ok(())
    }
}
