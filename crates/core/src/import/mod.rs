//! Reading accounts from CSV and LDIF files; checking them is [`crate::AccountBook`]'s job.

mod csv;
mod ldif;

use std::path::Path;

/// One account as a file describes it, not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Line in the file where the record starts.
    pub line: usize,
    /// The address.
    pub address: String,
    /// The mailbox server.
    pub server: String,
    /// The password hash, if given.
    pub password_hash: Option<String>,
}

/// Why an import file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file's structure is broken.
    #[error("{file}: line {line}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A record is well-formed but not acceptable.
    #[error("{file}: line {line}: {message} (nothing was imported)")]
    Record {
        /// The file.
        file: String,
        /// 1-based line where the record starts.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// The LDIF attribute names to read (the LDAP defaults unless told otherwise).
#[derive(Debug, Clone)]
pub struct Attributes {
    /// Address attribute.
    pub address: String,
    /// Mailbox server attribute.
    pub mailbox_server: String,
    /// Password hash attribute.
    pub password_hash: String,
}

impl Default for Attributes {
    fn default() -> Self {
        Attributes {
            address: "mail".into(),
            mailbox_server: "mailHost".into(),
            password_hash: "userPassword".into(),
        }
    }
}

/// Reads a CSV (`address,server[,password_hash]` with a header) or LDIF file, by extension
/// or, failing that, by its first line.
pub fn read(path: &Path, attrs: &Attributes) -> Result<Vec<Record>, ImportError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        file: file.clone(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        ImportError::Syntax {
            file: file.clone(),
            line,
            message: "not UTF-8 text".into(),
        }
    })?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let looks_ldif = || {
        text.lines()
            .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .is_some_and(|l| l.starts_with("dn:") || l.starts_with("version:"))
    };
    match ext.as_deref() {
        Some("ldif") => ldif::parse(&text, &file, attrs),
        Some("csv") => csv::parse(&text, &file),
        _ if looks_ldif() => ldif::parse(&text, &file, attrs),
        _ => csv::parse(&text, &file),
    }
}
