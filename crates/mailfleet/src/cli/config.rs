//! `mailfleet config init|check`.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use mailfleet_core::config::EXAMPLE;

use super::{Context, exit, print_json};

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCmd {
    /// Write a commented example config to the config path.
    Init {
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Validate the config; exits non-zero naming each bad key.
    Check,
}

pub(crate) fn run(cmd: ConfigCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCmd::Init { force } => {
            let path = ctx.config_path();
            if path.exists() && !force {
                return Err(exit::Usage(format!(
                    "{} exists already (use --force to replace it)",
                    path.display()
                ))
                .into());
            }
            std::fs::write(path, EXAMPLE).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
        ConfigCmd::Check => {
            let config = ctx.load()?;
            if ctx.json {
                print_json(&config)?;
            } else {
                let servers = config.fleet.servers.len();
                let groups = config.fleet.groups.len();
                println!(
                    "{}: ok ({servers} servers, {groups} groups, directory {})",
                    config.source.display(),
                    match &config.directory {
                        mailfleet_core::config::DirectoryConfig::Embedded { .. } => "embedded",
                        mailfleet_core::config::DirectoryConfig::Ldap(_) => "ldap",
                    }
                );
                let width = config
                    .fleet
                    .servers
                    .iter()
                    .map(|s| s.name.len())
                    .max()
                    .unwrap_or(0);
                for s in &config.fleet.servers {
                    let roles: Vec<String> = s.roles.iter().map(ToString::to_string).collect();
                    println!(
                        "  {:width$}  {:18} {}",
                        s.name,
                        roles.join(","),
                        s.access.describe()
                    );
                }
            }
        }
    }
    Ok(exit::code(exit::OK))
}
