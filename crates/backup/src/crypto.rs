//! Repository encryption with a key file: XChaCha20-Poly1305 (random 192-bit nonces, so no
//! counter to keep between runs) for every object, and keyed BLAKE3 for blob names so the
//! target's file names say nothing about the content (a known attachment cannot be looked up
//! by its plain hash). All keys are derived from the one secret in the key file.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

use crate::error::BackupError;
use crate::id::BlobId;

/// The cipher named in the repository's config.
pub const CIPHER: &str = "xchacha20poly1305";
/// Nonce length of XChaCha20-Poly1305.
const NONCE: usize = 24;

/// The keys of an encrypted repository.
pub struct Keys {
    ids: [u8; 32],
    cipher: XChaCha20Poly1305,
    check: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "Keys(check {})", &self.check[..12])
    }
}

fn random<const N: usize>() -> Result<[u8; N], BackupError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| BackupError::Format(format!("no randomness: {e}")))?;
    Ok(out)
}

/// A new key file's text: 32 random bytes in hex.
pub fn generate() -> Result<String, BackupError> {
    let key: [u8; 32] = random()?;
    Ok(format!("{}\n", BlobId(key).hex()))
}

impl Keys {
    /// Keys derived from a 32-byte secret.
    pub fn from_secret(secret: &[u8; 32]) -> Self {
        let enc = blake3::derive_key("mailfleet backup 2026-11 object encryption", secret);
        let check = blake3::derive_key("mailfleet backup 2026-11 key check", secret);
        Keys {
            ids: blake3::derive_key("mailfleet backup 2026-11 blob names", secret),
            cipher: XChaCha20Poly1305::new(&Key::from(enc)),
            check: BlobId(check).hex(),
        }
    }

    /// Reads a key file: 64 hex digits (`mailfleet backup keygen` writes one).
    pub fn load(path: &Path) -> Result<Self, BackupError> {
        let text = std::fs::read_to_string(path).map_err(BackupError::io(path))?;
        let secret = BlobId::parse(text.trim()).ok_or_else(|| {
            BackupError::Format(format!(
                "{}: a key file holds 64 hex digits (make one with `mailfleet backup keygen FILE`)",
                path.display()
            ))
        })?;
        Ok(Self::from_secret(&secret.0))
    }

    /// What the repository config records to recognise the key (not the key).
    pub fn check(&self) -> &str {
        &self.check
    }

    /// The name of this content in an encrypted repository.
    pub fn id_of(&self, content: &[u8]) -> BlobId {
        BlobId(*blake3::keyed_hash(&self.ids, content).as_bytes())
    }

    /// Nonce, then ciphertext and tag; `context` (the object's key) is authenticated, so an
    /// object copied over another's name does not decrypt.
    pub fn seal(&self, context: &str, plain: &[u8]) -> Result<Vec<u8>, BackupError> {
        let nonce: [u8; NONCE] = random()?;
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| BackupError::Format(format!("{context}: encryption failed")))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The plain bytes of a sealed object, or Corrupt if it was altered.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, BackupError> {
        if sealed.len() < NONCE + 16 {
            return Err(BackupError::Corrupt(format!(
                "{context}: encrypted object too short"
            )));
        }
        let (nonce, body) = sealed.split_at(NONCE);
        let nonce: [u8; NONCE] = nonce
            .try_into()
            .map_err(|_| BackupError::Corrupt(format!("{context}: bad nonce")))?;
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: body,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| {
                BackupError::Corrupt(format!(
                    "{context}: does not decrypt (altered, or written with another key)"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let k = Keys::from_secret(&[7; 32]);
        let sealed = k.seal("blobs/ab/x", b"hello").unwrap();
        assert_eq!(k.open("blobs/ab/x", &sealed).unwrap(), b"hello");
        assert!(k.open("blobs/ab/y", &sealed).is_err(), "context is bound");
        let mut bad = sealed.clone();
        bad[30] ^= 1;
        assert!(k.open("blobs/ab/x", &bad).is_err());
        assert!(k.open("blobs/ab/x", &sealed[..10]).is_err());
        let other = Keys::from_secret(&[8; 32]);
        assert!(other.open("blobs/ab/x", &sealed).is_err());
        assert_ne!(k.check(), other.check());
        assert_ne!(k.id_of(b"a"), BlobId::of(b"a"));
        assert_ne!(k.seal("c", b"same").unwrap(), k.seal("c", b"same").unwrap());
    }

    #[test]
    fn key_files() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("key");
        std::fs::write(&good, generate().unwrap()).unwrap();
        assert!(Keys::load(&good).is_ok());
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "secret").unwrap();
        let e = Keys::load(&bad).unwrap_err().to_string();
        assert!(e.contains("64 hex digits"), "{e}");
    }
}
