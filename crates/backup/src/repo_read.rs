//! Reading blobs back: where a blob is (waiting in a group, in the pack being filled or
//! written, or in a pack on the target), its object read whole or through the pack cache, a
//! group's member taken from it, and its content checked against its id.

use serde::Deserialize;

use crate::error::BackupError;
use crate::id::BlobId;
use crate::pack::{Location, pack_key};
use crate::pack_cache::PackRead;
use crate::repo::{Repository, blob_context};

/// Where a blob was found.
enum Located {
    /// Waiting in a group: its content.
    Plain(Vec<u8>),
    /// In the pack being filled or written: its object.
    Object(Vec<u8>),
    /// In a written pack.
    At(String, Location),
}

impl Repository {
    /// The stored object of a blob, as it lies in its pack.
    pub(crate) fn get_object(&self, id: &BlobId) -> Result<Vec<u8>, BackupError> {
        self.get_object_with(id, true)
    }

    /// `through`: the read may fetch and keep the whole pack (reads that walk through packs,
    /// as a restore does); otherwise only the object's range is read.
    fn get_object_with(&self, id: &BlobId, through: bool) -> Result<Vec<u8>, BackupError> {
        match self.locate(id)? {
            Located::Plain(_) => Err(BackupError::Format(format!(
                "blob {id} is not written yet (flush first)"
            ))),
            Located::Object(o) => Ok(o),
            Located::At(pack, loc) => self.read_at(id, &pack, loc, through),
        }
    }

    /// Where a blob is: its object if not written yet, else its pack and place.
    fn locate(&self, id: &BlobId) -> Result<Located, BackupError> {
        let s = self.state();
        if let Some(c) = s.pending_content(id) {
            return Ok(Located::Plain(c.to_vec()));
        }
        if let Some(o) = s.writer.object(id) {
            return Ok(Located::Object(o.to_vec()));
        }
        if let Some(o) = s.flushing.iter().find_map(|p| p.object(id)) {
            return Ok(Located::Object(o.to_vec()));
        }
        let loc = s
            .index
            .get(id)
            .ok_or_else(|| BackupError::Corrupt(format!("blob {id} is missing")))?;
        let pack = s
            .index
            .packs
            .get(loc.pack as usize)
            .cloned()
            .unwrap_or_default();
        Ok(Located::At(pack, loc))
    }

    /// The object at a blob's place in a pack.
    fn read_at(
        &self,
        id: &BlobId,
        pack: &str,
        loc: Location,
        through: bool,
    ) -> Result<Vec<u8>, BackupError> {
        let missing = |e| match e {
            BackupError::NotFound(_) => {
                BackupError::Corrupt(format!("blob {id}: pack {pack} is missing"))
            }
            e => e,
        };
        let plan = if through {
            self.cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .plan(pack)
        } else {
            PackRead::Range
        };
        let data = match plan {
            PackRead::Range => {
                return self
                    .target
                    .get_range(&pack_key(pack), loc.offset, u64::from(loc.len))
                    .map_err(missing);
            }
            PackRead::Cached(data) => data,
            PackRead::Whole => {
                let data = std::sync::Arc::new(self.target.get(&pack_key(pack)).map_err(missing)?);
                self.cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(pack.to_string(), data.clone());
                data
            }
        };
        let start = usize::try_from(loc.offset).unwrap_or(usize::MAX);
        data.get(start..start.saturating_add(loc.len as usize))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                BackupError::Corrupt(format!("pack {pack} is shorter than its index says"))
            })
    }

    /// A blob's content, checked against its id.
    pub fn get(&self, id: &BlobId) -> Result<Vec<u8>, BackupError> {
        self.get_with(id, true)
    }

    fn get_with(&self, id: &BlobId, through: bool) -> Result<Vec<u8>, BackupError> {
        let named = |e| match e {
            BackupError::Corrupt(m) => BackupError::Corrupt(format!("blob {id}: {m}")),
            e => e,
        };
        let (object, at) = match self.locate(id)? {
            Located::Plain(content) => return Ok(content),
            Located::Object(o) => (o, None),
            Located::At(pack, loc) => {
                if let Some(content) = self.cached_member(id, &pack, loc.offset) {
                    return self.checked(id, content);
                }
                (
                    self.read_at(id, &pack, loc, through)?,
                    Some((pack, loc.offset)),
                )
            }
        };
        let content = if crate::repo_groups::is_group(&object) {
            self.member_of(id, &object, at).map_err(named)?
        } else {
            self.unwrap_object(&blob_context(id), &object)
                .map_err(named)?
        };
        self.checked(id, content)
    }

    /// `content` if it is the blob's (its hash is its id).
    fn checked(&self, id: &BlobId, content: Vec<u8>) -> Result<Vec<u8>, BackupError> {
        if self.id_of(&content) != *id {
            return Err(BackupError::Corrupt(format!(
                "blob {id}: content does not match its hash"
            )));
        }
        Ok(content)
    }

    /// Reads a JSON blob.
    pub fn get_json<T: for<'de> Deserialize<'de>>(&self, id: &BlobId) -> Result<T, BackupError> {
        let raw = self.get(id)?;
        serde_json::from_slice(&raw).map_err(|e| BackupError::Corrupt(format!("blob {id}: {e}")))
    }

    /// Reads a JSON blob with a range read only: a backup run reads one tree per account,
    /// scattered over the packs, and keeping whole packs for them would cost memory for
    /// nothing.
    pub fn get_json_alone<T: for<'de> Deserialize<'de>>(
        &self,
        id: &BlobId,
    ) -> Result<T, BackupError> {
        let raw = self.get_with(id, false)?;
        serde_json::from_slice(&raw).map_err(|e| BackupError::Corrupt(format!("blob {id}: {e}")))
    }
}
