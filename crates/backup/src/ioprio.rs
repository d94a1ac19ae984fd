//! The idle I/O class for the threads that read the stores, so the stores' users come first:
//! set on one thread (its children inherit it), not on the whole process, so a daemon's
//! other parts keep their priority.

/// Puts the calling thread in the idle I/O class (`ionice -c 3` on its thread ID; Linux keeps
/// I/O priorities per thread, and threads it starts inherit them). Best effort: without
/// `ionice` the backup runs at normal priority, which is logged.
pub(crate) fn idle_for_this_thread() {
    let tid = nix::unistd::gettid();
    let r = std::process::Command::new("ionice")
        .args(["-c", "3", "-p", &tid.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if !matches!(r, Ok(s) if s.success()) {
        tracing::info!("ionice -c 3 failed: the backup runs at normal I/O priority");
    }
}

#[cfg(test)]
mod tests {
    fn class_of(tid: nix::unistd::Pid) -> String {
        let out = std::process::Command::new("ionice")
            .args(["-p", &tid.to_string()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    #[test]
    fn only_the_backup_thread_and_its_children_go_idle() {
        let main = nix::unistd::gettid();
        let before = class_of(main);
        let (inner, child) = std::thread::spawn(|| {
            super::idle_for_this_thread();
            let inner = class_of(nix::unistd::gettid());
            let child = std::thread::spawn(|| class_of(nix::unistd::gettid()))
                .join()
                .unwrap();
            (inner, child)
        })
        .join()
        .unwrap();
        assert_eq!(inner, "idle");
        assert_eq!(child, "idle", "threads it starts inherit the class");
        assert_eq!(
            class_of(main),
            before,
            "the rest of the process keeps its priority"
        );
        assert_ne!(before, "idle");
    }
}
