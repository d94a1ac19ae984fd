//! zstd for the repository's objects, with or without one of its dictionaries. A frame made
//! with a dictionary carries the dictionary's id in its header (zstd's own field), which is how
//! an old blob finds the dictionary it needs whichever is current now.

use std::cell::RefCell;

use crate::dict::Dictionary;
use crate::error::BackupError;

/// zstd level: with a dictionary, level 1 (zstd's fast strategy) took a first backup of
/// 100,000 unique messages from 7.0 s to 5.5 s against level 2, for a repository 5% larger
/// (9% against level 3); the dictionaries win far more than the levels differ.
const ZSTD_LEVEL: i32 = 1;
/// Objects up to this size are decompressed in one call into a buffer of their recorded size;
/// larger ones (or frames without a size) stream.
const BULK_LIMIT: u64 = 64 << 20;
/// Contexts kept per thread: one per dictionary in use (a repository has a few), and one
/// without.
const CONTEXTS: usize = 8;

type Key = Option<[u8; 16]>;

thread_local! {
    // Contexts are reused: creating one per small object cost a fifth of a restore's time,
    // and loading a dictionary into a fresh context costs more than compressing a message.
    static COMPRESSORS: RefCell<Vec<(Key, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(Vec::new()) };
    static DECOMPRESSORS: RefCell<Vec<(Key, zstd::bulk::Decompressor<'static>)>> =
        const { RefCell::new(Vec::new()) };
}

/// Finds or makes the context for `key`, evicting the oldest past `CONTEXTS`.
fn context<T>(
    cache: &mut Vec<(Key, T)>,
    key: Key,
    make: impl FnOnce() -> std::io::Result<T>,
) -> std::io::Result<&mut T> {
    let at = match cache.iter().position(|(k, _)| *k == key) {
        Some(i) => i,
        None => {
            if cache.len() >= CONTEXTS {
                cache.remove(0);
            }
            cache.push((key, make()?));
            cache.len() - 1
        }
    };
    // `at` is a valid index: found above or just pushed.
    Ok(&mut cache[at].1)
}

/// Compresses `plain`, with `dict` when given.
pub(crate) fn compress(plain: &[u8], dict: Option<&Dictionary>) -> Result<Vec<u8>, BackupError> {
    let failed = |e: std::io::Error| BackupError::Target {
        what: "compress".into(),
        message: e.to_string(),
    };
    COMPRESSORS.with(|c| {
        let mut c = c.borrow_mut();
        let key = dict.map(Dictionary::fingerprint);
        let cx = context(&mut c, key, || match dict {
            Some(d) => zstd::bulk::Compressor::with_dictionary(ZSTD_LEVEL, d.bytes()),
            None => zstd::bulk::Compressor::new(ZSTD_LEVEL),
        })
        .map_err(failed)?;
        cx.compress(plain).map_err(failed)
    })
}

/// The id of the dictionary a frame was made with, if any.
pub(crate) fn dictionary_of(compressed: &[u8]) -> Option<u32> {
    zstd::zstd_safe::get_dict_id_from_frame(compressed).map(std::num::NonZeroU32::get)
}

/// Decompresses a frame; `dict` must be the one `dictionary_of` names (the caller finds it).
pub(crate) fn decompress(compressed: &[u8], dict: Option<&Dictionary>) -> std::io::Result<Vec<u8>> {
    let size = zstd::zstd_safe::get_frame_content_size(compressed)
        .ok()
        .flatten()
        .filter(|n| *n <= BULK_LIMIT);
    let Some(size) = size else {
        return match dict {
            Some(d) => {
                let mut out = Vec::new();
                let mut decoder =
                    zstd::stream::read::Decoder::with_dictionary(compressed, d.bytes())?;
                std::io::copy(&mut decoder, &mut out)?;
                Ok(out)
            }
            None => zstd::stream::decode_all(compressed),
        };
    };
    DECOMPRESSORS.with(|c| {
        let mut c = c.borrow_mut();
        let cx = context(&mut c, dict.map(Dictionary::fingerprint), || match dict {
            Some(d) => zstd::bulk::Decompressor::with_dictionary(d.bytes()),
            None => zstd::bulk::Decompressor::new(),
        })?;
        // size <= BULK_LIMIT, far below usize::MAX on the 64-bit targets we build for.
        cx.decompress(compressed, size as usize)
    })
}
