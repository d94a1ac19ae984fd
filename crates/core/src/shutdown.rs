//! One shutdown for every long-running part (policy server, milter, release loop, monitor,
//! metrics endpoint): a signal they all watch, fired by SIGTERM or SIGINT (or by a caller),
//! and the in-flight work each waits for, within a bound, before it returns.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::task::TaskTracker;

/// How long a part waits for the requests in flight once shutdown is asked for.
pub const GRACE: Duration = Duration::from_secs(10);

/// Fires the shutdown.
#[derive(Debug, Clone)]
pub struct Trigger(watch::Sender<bool>);

impl Trigger {
    /// Asks every part watching to stop.
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

/// Watches for the shutdown; cheap to clone, one per part.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A shutdown fired by the returned trigger.
    pub fn new() -> (Trigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (Trigger(tx), Shutdown(rx))
    }

    /// A shutdown fired by SIGTERM or SIGINT (or the returned trigger).
    pub fn on_signals() -> std::io::Result<(Trigger, Shutdown)> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (trigger, shutdown) = Shutdown::new();
        let fire = trigger.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            }
            fire.fire();
        });
        Ok((trigger, shutdown))
    }

    /// A shutdown that never fires (a part run on its own, a test).
    pub fn never() -> Shutdown {
        let (tx, rx) = watch::channel(false);
        // The sender kept alive forever: the receiver never sees the channel close.
        std::mem::forget(tx);
        Shutdown(rx)
    }

    /// Whether shutdown was asked for.
    pub fn is_fired(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once shutdown is asked for (or its trigger is gone).
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|fired| *fired).await;
        }
    }
}

/// Work in flight of one part (its connections), waited for at shutdown.
#[derive(Debug, Clone, Default)]
pub struct InFlight(TaskTracker);

impl InFlight {
    /// No work yet.
    pub fn new() -> Self {
        InFlight(TaskTracker::new())
    }

    /// Runs `task`, counted until it ends.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.0.spawn(task);
    }

    /// Waits for the work in flight, at most `grace`; returns how many tasks were still
    /// running when it gave up (they end with the process).
    pub async fn drain(&self, grace: Duration) -> usize {
        self.0.close();
        match tokio::time::timeout(grace, self.0.wait()).await {
            Ok(()) => 0,
            Err(_) => self.0.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_watcher_sees_the_trigger() {
        let (trigger, shutdown) = Shutdown::new();
        let a = shutdown.clone();
        let waiting = tokio::spawn(a.wait());
        assert!(!shutdown.is_fired());
        trigger.fire();
        waiting.await.unwrap();
        assert!(shutdown.is_fired());
        shutdown.wait().await;
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_work_is_waited_for_within_the_grace() {
        let work = InFlight::new();
        work.spawn(tokio::time::sleep(Duration::from_secs(1)));
        assert_eq!(work.drain(Duration::from_secs(5)).await, 0);
        let stuck = InFlight::new();
        stuck.spawn(tokio::time::sleep(Duration::from_secs(3600)));
        stuck.spawn(async {});
        assert_eq!(stuck.drain(Duration::from_secs(5)).await, 1);
        assert!(!Shutdown::never().is_fired());
    }
}
