//! A stack in a temporary directory on free ports, stopped when dropped: what the
//! integration tests and benchmarks run against.

use std::path::PathBuf;
use std::process::Child;

use mailfleet_core::Config;
use mailfleet_core::config::DirectoryConfig;

use crate::demo;
use crate::lifecycle::{self, StackInfo, StackOptions};
use crate::ports::StackPorts;
use crate::{StackError, io_err};

/// A running stack that stops itself on drop.
pub struct TestStack {
    dir: tempfile::TempDir,
    /// Its ports and paths.
    pub info: StackInfo,
    children: Vec<Child>,
}

impl TestStack {
    /// Starts a stack under a new temporary directory, on ports free right now.
    pub async fn start() -> Result<Self, StackError> {
        let dir = tempfile::Builder::new()
            .prefix("mailfleet-stack-")
            .tempdir()
            .map_err(io_err(&std::env::temp_dir()))?;
        let host = "127.0.0.1".to_string();
        let ports = StackPorts::free(&host).map_err(io_err(dir.path()))?;
        let started = lifecycle::up(&StackOptions {
            base: dir.path().to_path_buf(),
            host,
            ports: Some(ports),
            install: false,
        })
        .await?;
        Ok(TestStack {
            dir,
            info: started.info,
            children: started.children,
        })
    }

    /// The base directory.
    pub fn base(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The stack's `mailfleet.toml` (embedded directory).
    pub fn config_path(&self) -> PathBuf {
        self.info.config.clone()
    }

    /// The stack's config (embedded directory).
    pub fn config(&self) -> Result<Config, StackError> {
        Config::load(&self.info.config).map_err(|e| StackError::State(e.to_string()))
    }

    /// The same config with the LDAP directory instead.
    pub fn ldap_config(&self) -> Result<Config, StackError> {
        let layout = crate::Layout::new(&self.info.base);
        let text = demo::config_text(&layout, &self.info.host, &self.info.ports, "ldap");
        let config = Config::parse(&text, &self.info.config)
            .map_err(|e| StackError::State(e.to_string()))?;
        debug_assert!(matches!(config.directory, DirectoryConfig::Ldap(_)));
        Ok(config)
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        if let Err(e) = lifecycle::down(self.dir.path()) {
            eprintln!(
                "stopping the test stack in {}: {e}",
                self.dir.path().display()
            );
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
    }
}
