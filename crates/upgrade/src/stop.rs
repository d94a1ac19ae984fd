//! The drain of a server that is not a store: its services whose packages the update will
//! upgrade (`[[server.services]] packages`) are stopped before it, and only once every other
//! server of its group is seen serving; the restart after the update starts them again. A
//! server without partners is updated in place and restarted after, since stopping it first
//! would only lengthen its outage.

use mailfleet_core::Server;
use mailfleet_core::fleet::Restart;

use crate::holds::matches;
use crate::run::Runner;

impl Runner<'_> {
    /// Stops what the update of `server` (with the run's `packages`, empty: all) must not find
    /// running; what it did, or `None` when none of its services is concerned.
    pub(crate) async fn stop_for_update(
        &self,
        server: &Server,
        packages: &[String],
    ) -> Result<Option<String>, String> {
        if server.services.iter().all(|s| s.packages.is_empty()) {
            return Ok(None);
        }
        let partners: Vec<String> = match &server.group {
            Some(g) => self
                .config
                .fleet
                .servers
                .iter()
                .filter(|s| s.name != server.name && s.group.as_deref() == Some(g.as_str()))
                .map(|s| s.name.clone())
                .collect(),
            None => Vec::new(),
        };
        if partners.is_empty() {
            return Ok(Some(format!(
                "nothing stopped: no other server of its group serves meanwhile, so {} is updated in place (and restarted after, if it must be)\n",
                server.name
            )));
        }
        let upgraded: Option<Vec<String>> = if server.update_command.is_empty() {
            let fail = |e: String| format!("what the update of {} upgrades: {e}", server.name);
            crate::check::apt(self.reach, server, "apt-get", &["-q", "update"])
                .await
                .map_err(fail)?;
            let mut sim = vec!["-q", "-s"];
            if packages.is_empty() {
                sim.push("dist-upgrade");
            } else {
                sim.extend(["install", "--only-upgrade"]);
                sim.extend(packages.iter().map(String::as_str));
            }
            let out = crate::check::apt(self.reach, server, "apt-get", &sim)
                .await
                .map_err(fail)?;
            Some(
                crate::apt::parse_inst(&out)
                    .into_iter()
                    .map(|i| i.package)
                    .collect(),
            )
        } else {
            // A vendor's installer says nothing beforehand: every service that names
            // packages is taken as concerned.
            None
        };
        let touched: Vec<(usize, String)> = server
            .services
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let why = match &upgraded {
                    None => "its own update command".to_string(),
                    Some(all) => all
                        .iter()
                        .find(|p| s.packages.iter().any(|g| matches(g, p)))?
                        .clone(),
                };
                Some((i, why))
            })
            .collect();
        if touched.is_empty() {
            return Ok(Some(
                "nothing stopped: the update upgrades none of its services' packages\n".into(),
            ));
        }
        self.hooks.servers_ok(&partners).await.map_err(|e| {
            format!(
                "{} not stopped: its partner {} does not serve: {e}",
                server.name,
                partners.join(", ")
            )
        })?;
        let mains = crate::restart::scan(self.reach, server).await?.mains;
        let mut text = String::new();
        for (i, why) in touched {
            let service = &server.services[i];
            let Restart::StopStart { stop, .. } = &service.restart else {
                // Config validation allows `packages` only beside stop and start.
                continue;
            };
            let Some(main) = mains.get(&i).copied() else {
                text.push_str(&format!("{} is not running\n", service.name));
                continue;
            };
            crate::restart::stop_and_wait(
                self.reach,
                server,
                stop,
                Some(main),
                self.config.upgrade.restart_timeout,
            )
            .await
            .map_err(|e| format!("stop of {} on {}: {e}", service.name, server.name))?;
            text.push_str(&format!(
                "stopped {} (PID {main}) for the update of {why}, while {} serves\n",
                service.name,
                partners.join(", ")
            ));
        }
        Ok(Some(text))
    }
}
