//! The repository's side of its dictionaries: loading them, sampling new blobs, training and
//! storing a new dictionary (which raises an older repository's format first).

use std::sync::Arc;

use crate::dict::{self, Dictionary, Kind, dict_key};
use crate::error::BackupError;
use crate::repo::Repository;

impl Repository {
    /// Reads the dictionaries not loaded yet. One that cannot be read is kept as its error:
    /// only the blobs made with it fail, each naming it.
    pub(crate) fn load_dicts(&self) -> Result<(), BackupError> {
        for key in self.target.list("dicts")? {
            let Some(id) = key
                .strip_prefix("dicts/")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
            else {
                tracing::warn!("{key}: not a dictionary name, ignored");
                continue;
            };
            if matches!(self.dicts().by_id.get(&id), Some(Ok(_))) {
                continue;
            }
            let loaded = self
                .target
                .get(&key)
                .and_then(|raw| self.unwrap_object(&key, &raw))
                .and_then(|plain| Dictionary::decode(&key, id, &plain));
            let mut dicts = self.dicts.write().unwrap_or_else(|p| p.into_inner());
            match loaded {
                Ok(d) => dicts.insert(Arc::new(d)),
                Err(e @ BackupError::Hung { .. }) => return Err(e),
                Err(e) => {
                    tracing::warn!("{e}");
                    dicts.by_id.insert(id, Err(e.to_string()));
                }
            }
        }
        Ok(())
    }

    /// Offers a new blob to the run's sample; the blob that fills it trains (or judges drift).
    pub(crate) fn sample(&self, kind: Kind, content: &[u8]) {
        let full = self
            .sampler
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .offer(kind, content);
        if let Some(samples) = full {
            self.learn(kind, &samples, true);
        }
    }

    /// At the end of a run: a kind without a dictionary is trained from what the run sampled,
    /// if that is enough.
    pub fn finish_training(&self) {
        for kind in Kind::ALL {
            if self.dicts().current(kind).is_some() {
                continue;
            }
            let rest = self
                .sampler
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .rest(kind);
            if let Some(samples) = rest {
                self.learn(kind, &samples, false);
            }
        }
    }

    /// Trains and stores a dictionary when there is none or the content drifted. A failure
    /// only costs compression: it is logged, and blobs go on with the current dictionary.
    fn learn(&self, kind: Kind, samples: &[Vec<u8>], judge_drift: bool) {
        if let Err(e) = self.try_learn(kind, samples, judge_drift) {
            tracing::warn!("no new {kind:?} dictionary: {e}");
        }
    }

    fn try_learn(
        &self,
        kind: Kind,
        samples: &[Vec<u8>],
        judge_drift: bool,
    ) -> Result<(), BackupError> {
        let current = self.dicts().current(kind);
        if let Some(c) = &current {
            if !judge_drift || !dict::drifted(c, samples)? {
                return Ok(());
            }
            tracing::info!("the {kind:?} content drifted from dictionary {:08x}", c.id);
        }
        tracing::info!(
            "training a {kind:?} dictionary from {} samples",
            samples.len()
        );
        let listed = self.target.list("dicts")?;
        let taken =
            |id: u32| self.dicts().by_id.contains_key(&id) || listed.contains(&dict_key(id));
        let Some(d) = dict::train(kind, samples, current.as_deref(), &taken)? else {
            tracing::info!("a {kind:?} dictionary would not pay: none stored");
            return Ok(());
        };
        self.ensure_format("compression dictionaries")?;
        let key = dict_key(d.id);
        self.target.put(&key, &self.wrap(&key, &d.encode()?)?)?;
        tracing::info!(
            "{key}: {kind:?} dictionary of {} bytes, {:.2}x on held-out samples ({:.2}x without)",
            d.bytes().len(),
            d.meta.ratio,
            d.meta.plain_ratio
        );
        self.dicts
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(Arc::new(d));
        Ok(())
    }
}
