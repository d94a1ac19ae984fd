//! Why the daemon stopped other than by a shutdown.

use std::path::PathBuf;

/// The daemon stopped on an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The signals could not be watched.
    #[error("watching signals: {0}")]
    Signals(#[from] std::io::Error),
    /// The first config is broken: there is nothing to keep running.
    #[error(transparent)]
    Config(#[from] mailfleet_core::config::ConfigError),
    /// A part ended on an error (the others were stopped).
    #[error("{part} stopped: {message}")]
    Part {
        /// Which.
        part: &'static str,
        /// Why.
        message: String,
    },
    /// The config has no part to run.
    #[error("{0}: [serve] parts names nothing this daemon runs")]
    Nothing(PathBuf),
}
