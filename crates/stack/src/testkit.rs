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

/// The listeners of the test stacks running in this process: tests name a service by its
/// port (unique in the process, see [`StackPorts::free`]) and [`host_of_port`] says where it
/// listens.
static RUNNING: std::sync::Mutex<Vec<(PathBuf, Listeners)>> = std::sync::Mutex::new(Vec::new());

/// One stack's `(address, port)` of every listener.
type Listeners = Vec<(String, u16)>;

/// The address a running test stack's service listens on at `port` (each server has its
/// own); for the port numbers two MTAs share, the first MTA's (`mx1`).
pub fn host_of_port(port: u16) -> Option<String> {
    // A poisoned lock: a test panicked while registering; the list itself is whole.
    let running = RUNNING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    running
        .iter()
        .flat_map(|(_, l)| l.iter())
        .find(|(_, p)| *p == port)
        .map(|(h, _)| h.clone())
}

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
        // Ports are free when chosen but only taken when the daemons bind them: another
        // process may bind one in between. Nothing is started before the check, so choosing
        // again is safe.
        let mut attempt = 0;
        let started = loop {
            attempt += 1;
            let ports = StackPorts::free(&host).map_err(io_err(dir.path()))?;
            match lifecycle::up(&StackOptions {
                base: dir.path().to_path_buf(),
                host: host.clone(),
                ports: Some(ports),
                install: false,
            })
            .await
            {
                Err(StackError::PortsBusy { busy, .. }) if attempt < 3 => {
                    tracing::warn!(%busy, "ports taken since they were chosen; choosing others");
                }
                other => break other?,
            }
        };
        let listening = lifecycle::listeners(&started.info)
            .into_iter()
            .map(|(_, _, host, port)| (host, port))
            .collect();
        RUNNING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((dir.path().to_path_buf(), listening));
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
        RUNNING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(base, _)| base != self.dir.path());
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
