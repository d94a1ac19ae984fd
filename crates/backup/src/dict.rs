//! Compression dictionaries trained from the repository's own data: one for header blocks
//! (message recipes: the header and the bytes between parts), one for text bodies. Small
//! messages compressed alone share nothing with each other; a dictionary gives each of them
//! the strings every message of the store repeats (Received lines, list footers, HTML
//! boilerplate). A dictionary is trained from a sample of the first new blobs of a run (at the
//! end of the run when it wrote fewer) and again when the content drifts from it. Each is
//! stored under `dicts/ID`, never changed or removed, so every blob made with one can be read.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::BackupError;

/// What a blob holds, for the dictionary it is compressed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A message's recipe: its header and the small bytes between its parts.
    Header,
    /// A text part body.
    Text,
}

impl Kind {
    /// Both kinds, in a fixed order.
    pub const ALL: [Kind; 2] = [Kind::Header, Kind::Text];

    /// Its position in `ALL`.
    pub(crate) fn slot(self) -> usize {
        match self {
            Kind::Header => 0,
            Kind::Text => 1,
        }
    }
}

/// What a dictionary object records besides the dictionary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DictMeta {
    /// What it is for.
    pub kind: Kind,
    /// When it was trained.
    pub created: chrono::DateTime<chrono::Utc>,
    /// Plain bytes per compressed byte it gave on samples it was not trained on.
    pub ratio: f64,
    /// The same without a dictionary, for comparison.
    pub plain_ratio: f64,
    /// Samples it was trained on.
    pub samples: u64,
}

/// A dictionary, as loaded from the repository.
#[derive(Debug)]
pub struct Dictionary {
    /// zstd's dictionary id (also in every frame made with it).
    pub id: u32,
    /// What the object records.
    pub meta: DictMeta,
    bytes: Vec<u8>,
    fingerprint: [u8; 16],
}

/// The first bytes of a dictionary object's plain content: u32 length of the JSON, the JSON,
/// the BLAKE3 hash of the zstd dictionary, the zstd dictionary. The hash is what tells a
/// damaged dictionary in a plain repository from a good one: zstd would use it and fail on
/// each frame with an error that names neither the dictionary nor the damage.
const DICT_MAGIC: &[u8; 4] = b"MFD2";
/// zstd's magic number at the start of a trained dictionary.
const ZSTD_DICT_MAGIC: u32 = 0xEC30_A437;
/// The largest dictionary: zstd's default; larger ones gain little on mail.
const MAX_DICT: usize = 112 << 10;
/// A kind's sample is full at this many bytes or samples.
const SAMPLE_BYTES: usize = 4 << 20;
const SAMPLE_COUNT: usize = 4000;
/// Each sample is cut here: the start of a blob is what blobs share.
const SAMPLE_CUT: usize = 16 << 10;
/// Fewer samples than this train nothing (zstd refuses, or the dictionary overfits).
const MIN_SAMPLES: usize = 40;
const MIN_SAMPLE_BYTES: usize = 32 << 10;
/// A new dictionary must beat compression without one (or the current one) by this much.
const GAIN: f64 = 1.05;
/// The content has drifted when the current dictionary does this much worse than it did.
const DRIFT: f64 = 0.85;

/// The object key of a dictionary.
pub fn dict_key(id: u32) -> String {
    format!("dicts/{id:08x}")
}

impl Dictionary {
    /// The zstd dictionary.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Tells dictionaries of different repositories apart (ids are only unique in one).
    pub(crate) fn fingerprint(&self) -> [u8; 16] {
        self.fingerprint
    }

    fn new(id: u32, meta: DictMeta, bytes: Vec<u8>) -> Self {
        let mut fingerprint = [0u8; 16];
        fingerprint.copy_from_slice(&blake3::hash(&bytes).as_bytes()[..16]);
        Dictionary {
            id,
            meta,
            bytes,
            fingerprint,
        }
    }

    /// The plain content of its object.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, BackupError> {
        let json =
            serde_json::to_vec(&self.meta).map_err(|e| BackupError::Format(e.to_string()))?;
        let len = u32::try_from(json.len())
            .map_err(|_| BackupError::Format("dictionary metadata too large".into()))?;
        let mut out = DICT_MAGIC.to_vec();
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(blake3::hash(&self.bytes).as_bytes());
        out.extend_from_slice(&self.bytes);
        Ok(out)
    }

    /// Reads a dictionary object's plain content, checking it is a zstd dictionary with the
    /// id its key names.
    pub(crate) fn decode(key: &str, id: u32, plain: &[u8]) -> Result<Self, BackupError> {
        let bad = |why: &str| BackupError::Corrupt(format!("{key}: {why}"));
        let rest = plain
            .strip_prefix(DICT_MAGIC.as_slice())
            .ok_or_else(|| bad("unknown header"))?;
        let (len, rest) = rest.split_at_checked(4).ok_or_else(|| bad("truncated"))?;
        let mut n4 = [0u8; 4];
        n4.copy_from_slice(len);
        let (json, rest) = rest
            .split_at_checked(u32::from_le_bytes(n4) as usize)
            .ok_or_else(|| bad("truncated"))?;
        let (hash, bytes) = rest.split_at_checked(32).ok_or_else(|| bad("truncated"))?;
        if blake3::hash(bytes).as_bytes() != hash {
            return Err(bad("damaged: its content does not match its hash"));
        }
        let meta: DictMeta = serde_json::from_slice(json).map_err(|e| bad(&e.to_string()))?;
        if zstd::zstd_safe::get_dict_id_from_dict(bytes).map(std::num::NonZeroU32::get) != Some(id)
        {
            return Err(bad("not the dictionary its name says"));
        }
        Ok(Dictionary::new(id, meta, bytes.to_vec()))
    }
}

/// The dictionaries a repository holds and the current one of each kind.
#[derive(Default)]
pub(crate) struct Dicts {
    /// By id; an object that could not be read is kept as its error, for the blobs needing it.
    pub by_id: HashMap<u32, Result<Arc<Dictionary>, String>>,
    current: [Option<Arc<Dictionary>>; 2],
}

impl Dicts {
    /// Adds a dictionary; the newest of a kind is current.
    pub(crate) fn insert(&mut self, d: Arc<Dictionary>) {
        let slot = &mut self.current[d.meta.kind.slot()];
        if slot
            .as_ref()
            .is_none_or(|c| c.meta.created <= d.meta.created)
        {
            *slot = Some(d.clone());
        }
        self.by_id.insert(d.id, Ok(d));
    }

    /// The dictionary new blobs of a kind are compressed with.
    pub(crate) fn current(&self, kind: Kind) -> Option<Arc<Dictionary>> {
        self.current[kind.slot()].clone()
    }

    /// The dictionary a frame needs.
    pub(crate) fn get(&self, id: u32) -> Result<Arc<Dictionary>, String> {
        match self.by_id.get(&id) {
            Some(Ok(d)) => Ok(d.clone()),
            Some(Err(e)) => Err(format!("its dictionary {id:08x} cannot be read: {e}")),
            None => Err(format!("its dictionary {id:08x} is missing")),
        }
    }
}

/// The samples a run collects, per kind, until they are full.
#[derive(Default)]
pub(crate) struct Sampler {
    kinds: [Samples; 2],
}

#[derive(Default)]
struct Samples {
    taken: Vec<Vec<u8>>,
    bytes: usize,
    /// Handed to training (or judged) already in this run.
    used: bool,
}

impl Sampler {
    /// Offers a new blob's content; returns the full sample the first time it fills, for the
    /// caller to train from (so one thread trains, once per run).
    pub(crate) fn offer(&mut self, kind: Kind, content: &[u8]) -> Option<Vec<Vec<u8>>> {
        let s = &mut self.kinds[kind.slot()];
        if s.used {
            return None;
        }
        let cut = &content[..content.len().min(SAMPLE_CUT)];
        s.bytes += cut.len();
        s.taken.push(cut.to_vec());
        if s.bytes >= SAMPLE_BYTES || s.taken.len() >= SAMPLE_COUNT {
            s.used = true;
            s.bytes = 0;
            return Some(std::mem::take(&mut s.taken));
        }
        None
    }

    /// What a run that ends collected of a kind, when it is enough to train from.
    pub(crate) fn rest(&mut self, kind: Kind) -> Option<Vec<Vec<u8>>> {
        let s = &mut self.kinds[kind.slot()];
        if s.used || s.taken.len() < MIN_SAMPLES || s.bytes < MIN_SAMPLE_BYTES {
            return None;
        }
        s.used = true;
        s.bytes = 0;
        Some(std::mem::take(&mut s.taken))
    }
}

/// Plain bytes per compressed byte of `samples`, with `dict` or without.
fn ratio(samples: &[&Vec<u8>], dict: Option<&Dictionary>) -> Result<f64, BackupError> {
    let mut plain = 0usize;
    let mut packed = 0usize;
    for s in samples {
        plain += s.len();
        packed += crate::codec::compress(s, dict)?.len();
    }
    Ok(plain as f64 / packed.max(1) as f64)
}

/// Whether a sample shows the content has drifted from the current dictionary.
pub(crate) fn drifted(current: &Dictionary, samples: &[Vec<u8>]) -> Result<bool, BackupError> {
    let all: Vec<&Vec<u8>> = samples.iter().collect();
    Ok(ratio(&all, Some(current))? < current.meta.ratio * DRIFT)
}

/// Trains a dictionary of a kind from samples: on three quarters of them, judged on the rest.
/// `None` when it would not pay (it must beat `to_beat`, or no dictionary at all, by `GAIN`).
/// `taken` says which ids are in use; the new one gets another.
pub(crate) fn train(
    kind: Kind,
    samples: &[Vec<u8>],
    to_beat: Option<&Dictionary>,
    taken: &dyn Fn(u32) -> bool,
) -> Result<Option<Dictionary>, BackupError> {
    let (learn, judge): (Vec<_>, Vec<_>) =
        samples.iter().enumerate().partition(|(i, _)| i % 4 != 3);
    let learn: Vec<&Vec<u8>> = learn.into_iter().map(|(_, s)| s).collect();
    let judge: Vec<&Vec<u8>> = judge.into_iter().map(|(_, s)| s).collect();
    let learn_bytes: usize = learn.iter().map(|s| s.len()).sum();
    if learn.len() < MIN_SAMPLES * 3 / 4 || judge.is_empty() {
        return Ok(None);
    }
    let size = (learn_bytes / 10).clamp(4 << 10, MAX_DICT);
    let mut bytes = zstd::dict::from_samples(&learn, size).map_err(|e| BackupError::Target {
        what: format!("train a {kind:?} dictionary"),
        message: e.to_string(),
    })?;
    let magic = bytes
        .get(..4)
        .map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
    if bytes.len() < 8 || magic != Some(ZSTD_DICT_MAGIC) {
        return Ok(None);
    }
    // zstd picks the id from the content; ours must also be free in this repository and in the
    // range the format leaves to users (32768 to 2^31 - 1).
    const LOW: u32 = 32_768;
    const SPAN: u32 = (1 << 31) - LOW;
    let h = blake3::hash(&bytes);
    let h = h.as_bytes();
    let mut id = LOW + u32::from_le_bytes([h[0], h[1], h[2], h[3]]) % SPAN;
    while taken(id) {
        id = LOW + (id - LOW + 1) % SPAN;
    }
    bytes[4..8].copy_from_slice(&id.to_le_bytes());
    let plain_ratio = ratio(&judge, None)?;
    let mut d = Dictionary::new(
        id,
        DictMeta {
            kind,
            created: chrono::Utc::now(),
            ratio: 0.0,
            plain_ratio,
            samples: learn.len() as u64,
        },
        bytes,
    );
    d.meta.ratio = ratio(&judge, Some(&d))?;
    let floor = match to_beat {
        Some(c) => ratio(&judge, Some(c))?.max(plain_ratio),
        None => plain_ratio,
    };
    Ok((d.meta.ratio >= floor * GAIN).then_some(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(i: usize) -> Vec<u8> {
        format!(
            "Return-Path: <list-bounces@lists.example.org>\r\nDelivered-To: user{}@example.com\r\n\
             Received: from mx.example.org (mx.example.org [192.0.2.7])\r\n\tby mail.example.com \
             (Postfix) with ESMTPS id {i:X}\r\n\tfor <user{}@example.com>; Tue, 1 Dec 2026 10:{:02}:00 +0000\r\n\
             Message-ID: <{i}.{}@lists.example.org>\r\nSubject: [rust-users] thread number {}\r\n\
             List-Unsubscribe: <mailto:rust-users-leave@lists.example.org>\r\n\r\n",
            i % 50,
            i % 50,
            i % 60,
            i * 7919,
            i % 97
        )
        .into_bytes()
    }

    #[test]
    fn a_trained_dictionary_shrinks_headers_and_round_trips() {
        let samples: Vec<Vec<u8>> = (0..400).map(header).collect();
        let d = train(Kind::Header, &samples, None, &|_| false)
            .unwrap()
            .expect("headers that repeat train a dictionary that pays");
        assert!(d.meta.ratio > d.meta.plain_ratio * GAIN, "{:?}", d.meta);
        let one = header(1234);
        let packed = crate::codec::compress(&one, Some(&d)).unwrap();
        assert_eq!(crate::codec::dictionary_of(&packed), Some(d.id));
        assert!(packed.len() < crate::codec::compress(&one, None).unwrap().len());
        assert_eq!(crate::codec::decompress(&packed, Some(&d)).unwrap(), one);
        // The object round-trips and refuses a wrong name.
        let object = d.encode().unwrap();
        let back = Dictionary::decode("dicts/x", d.id, &object).unwrap();
        assert_eq!(back.fingerprint(), d.fingerprint());
        assert!(Dictionary::decode("dicts/x", d.id + 1, &object).is_err());
        assert!(Dictionary::decode("dicts/x", d.id, &object[..10]).is_err());
        let mut flipped = object.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let e = Dictionary::decode("dicts/x", d.id, &flipped).unwrap_err();
        assert!(e.to_string().contains("does not match its hash"), "{e}");
        // Taken ids are skipped.
        let again = train(Kind::Header, &samples, None, &|id| id == d.id)
            .unwrap()
            .unwrap();
        assert_ne!(again.id, d.id);
        // What it was trained on has not drifted; random bytes have.
        assert!(!drifted(&d, &samples).unwrap());
        let noise: Vec<Vec<u8>> = (0..50u32)
            .map(|i| {
                (0..2000u32)
                    .map(|j| (j.wrapping_mul(2_654_435_761) ^ i) as u8)
                    .collect()
            })
            .collect();
        assert!(drifted(&d, &noise).unwrap());
    }

    #[test]
    fn too_few_samples_train_nothing() {
        let samples: Vec<Vec<u8>> = (0..10).map(header).collect();
        assert!(
            train(Kind::Header, &samples, None, &|_| false)
                .unwrap()
                .is_none()
        );
        let mut s = Sampler::default();
        for i in 0..10 {
            assert!(s.offer(Kind::Header, &header(i)).is_none());
        }
        assert!(s.rest(Kind::Header).is_none());
    }
}
