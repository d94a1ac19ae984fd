//! A backup target that stops answering: the repository sits on a FUSE filesystem that passes
//! through to a directory until it is told to freeze, then never answers again (as a dead NFS
//! server). The run gives up within its deadline, says so in its exit code and status file,
//! and Dovecot serves IMAP throughout. Runs in a mount namespace of its own.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mailfleet_mailclient::imap::Imap;
use mailfleet_stack::TestStack;
use mailfleet_stack::demo::DEMO_PASSWORD;

const LOOPFS: &str = r#"
import errno, os, sys, time
from fusepy import FUSE, FuseOSError, Operations

class Loop(Operations):
    def __init__(self, root, flag):
        self.root, self.flag = root, flag
    def _p(self, path):
        # Frozen: every call waits forever, as on a dead NFS server.
        while os.path.exists(self.flag):
            time.sleep(3600)
        return os.path.join(self.root, path.lstrip("/"))
    def getattr(self, path, fh=None):
        try:
            st = os.lstat(self._p(path))
        except OSError as e:
            raise FuseOSError(e.errno)
        return {k: getattr(st, k) for k in ("st_mode", "st_nlink", "st_size", "st_uid", "st_gid", "st_atime", "st_mtime", "st_ctime")}
    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._p(path))
    def mkdir(self, path, mode):
        os.mkdir(self._p(path), mode)
    def create(self, path, mode, fi=None):
        return os.open(self._p(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    def open(self, path, flags):
        return os.open(self._p(path), flags)
    def read(self, path, size, offset, fh):
        self._p(path)
        os.lseek(fh, offset, 0)
        return os.read(fh, size)
    def write(self, path, data, offset, fh):
        self._p(path)
        os.lseek(fh, offset, 0)
        return os.write(fh, data)
    def truncate(self, path, length, fh=None):
        os.truncate(self._p(path), length)
    def flush(self, path, fh):
        self._p(path)
        return 0
    def fsync(self, path, datasync, fh):
        self._p(path)
        os.fsync(fh)
        return 0
    def fsyncdir(self, path, datasync, fh):
        self._p(path)
        return 0
    def release(self, path, fh):
        os.close(fh)
        return 0
    def rename(self, old, new):
        os.rename(self._p(old), self._p(new))
    def unlink(self, path):
        os.unlink(self._p(path))
    def chmod(self, path, mode):
        os.chmod(self._p(path), mode)
    def utimens(self, path, times=None):
        os.utime(self._p(path), times)
    def statfs(self, path):
        st = os.statvfs(self._p(path))
        return {k: getattr(st, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")}

FUSE(Loop(sys.argv[1], sys.argv[3]), sys.argv[2], foreground=True, fsname="loopfs", subtype="loopfs")
"#;

const SCRIPT: &str = r#"
set -u
dir="$1"; mf="$2"; cfg="$3"
mkdir -p "$dir/real" "$dir/mnt"
/usr/bin/python3 "$dir/loopfs.py" "$dir/real" "$dir/mnt" "$dir/freeze" 2>"$dir/loopfs.log" &
fs=$!
for i in $(seq 1 500); do grep -q " $dir/mnt fuse.loopfs " /proc/self/mounts && break; sleep 0.02; done
grep -q " $dir/mnt fuse.loopfs " /proc/self/mounts || { echo "loopfs did not mount: $(cat "$dir/loopfs.log")" >&2; kill -9 $fs; exit 9; }
"$mf" --config "$cfg" --json backup run > "$dir/first.json" 2> "$dir/first.err"
echo $? > "$dir/first.rc"
# The test delivers new mail, so the next run has work to do when the target freezes.
for i in $(seq 1 3000); do [ -f "$dir/go" ] && break; sleep 0.05; done
# Frozen in the middle of a run: once the run holds its lock on the target.
"$mf" --config "$cfg" --json backup run > "$dir/mid.json" 2> "$dir/mid.err" &
run=$!
for i in $(seq 1 5000); do ls "$dir/real/repo/locks" 2>/dev/null | grep -q shared && break; sleep 0.001; done
touch "$dir/freeze"
start=$(date +%s%N)
wait $run
echo $? > "$dir/mid.rc"
echo $(( ($(date +%s%N) - start) / 1000000 )) > "$dir/mid.ms"
# Frozen before a run starts.
start=$(date +%s%N)
"$mf" --config "$cfg" --json backup run > "$dir/second.json" 2> "$dir/second.err"
echo $? > "$dir/second.rc"
echo $(( ($(date +%s%N) - start) / 1000000 )) > "$dir/ms"
kill -9 $fs
umount -l "$dir/mnt" 2>/dev/null
exit 0
"#;

async fn imap_works(port: u16) -> bool {
    let at = crate::common::local(port);
    let clock = crate::common::clock();
    let Ok(mut s) = Imap::login(&at, "alice@example.com", DEMO_PASSWORD, &clock).await else {
        return false;
    };
    let ok = s.select("INBOX").await.is_ok();
    s.logout().await;
    ok
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_target_aborts_the_run_within_its_deadline() {
    let stack = TestStack::start().await.expect("stack");
    crate::common::send(
        stack.info.ports.smtp,
        "bob@example.com",
        "alice@example.com",
        "before the hang",
    )
    .await;
    crate::common::wait_for_mail(
        stack.info.ports.stores[0].imap,
        "alice@example.com",
        "before the hang",
        Duration::from_secs(30),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let status = d.join("status-store1.json");
    // store1's status where this test reads it (the demo writes it into its data dir).
    let demo_status = stack.base().join("data/backup-status-store1.json");
    let demo_line = format!("backup_status = {:?}", demo_status.display().to_string());
    let text = std::fs::read_to_string(stack.config_path()).unwrap();
    assert!(text.contains(&demo_line), "the demo's status line moved");
    let text = text.replacen(
        &demo_line,
        &format!("backup_status = {:?}", status.display().to_string()),
        1,
    );
    let text = crate::corpus::with_backup(
        &text,
        &format!(
            "repository = {:?}\ntimeout_secs = 2\n",
            d.join("mnt/repo").display().to_string()
        ),
    );
    let config = d.join("mailfleet.toml");
    std::fs::write(&config, text).unwrap();
    std::fs::write(d.join("loopfs.py"), LOOPFS).unwrap();
    std::fs::write(d.join("run.sh"), SCRIPT).unwrap();
    let started = Instant::now();
    let mut child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh"])
        .arg(d.join("run.sh"))
        .arg(d)
        .arg(env!("CARGO_BIN_EXE_mailfleet"))
        .arg(&config)
        .spawn()
        .expect("unshare (util-linux)");
    // After the first run, new mail: the run that freezes has plenty to read and store.
    while !d.join("first.rc").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first run hangs"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    crate::corpus::fill(&stack, 200).await;
    std::fs::write(d.join("go"), "").unwrap();
    // Users keep reading their mail while the backup hangs on its target.
    let (mut served, mut refused) = (0, 0);
    while child.try_wait().unwrap().is_none() {
        if imap_works(stack.info.ports.stores[0].imap).await {
            served += 1;
        } else {
            refused += 1;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the script hangs"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(child.wait().unwrap().success(), "{}", read(d, "loopfs.log"));
    assert_eq!(refused, 0, "IMAP failed while the backup target hung");
    assert!(served > 0);
    assert_eq!(read(d, "first.rc").trim(), "0", "{}", read(d, "first.err"));
    assert_eq!(
        read(d, "second.rc").trim(),
        "5",
        "{}",
        read(d, "second.err")
    );
    // The product's promise: a target that stops answering is given up within its deadline
    // (timeout_secs = 2). Margin: 1.5 s for starting the process, writing the status and
    // mailing the alarm on a loaded machine.
    let limit = 2000 + 1500;
    assert_eq!(read(d, "mid.rc").trim(), "5", "{}", read(d, "mid.err"));
    let mid: u64 = read(d, "mid.ms").trim().parse().unwrap();
    assert!(
        mid < limit,
        "frozen mid-run, the run took {mid} ms to give up (limit {limit} ms): {}",
        read(d, "mid.err")
    );
    let ms: u64 = read(d, "ms").trim().parse().unwrap();
    assert!(
        ms < limit,
        "frozen before the run, it took {ms} ms (limit {limit} ms)"
    );
    assert!(
        read(d, "second.err").contains("does not answer"),
        "{}",
        read(d, "second.err")
    );
    let st: serde_json::Value = serde_json::from_str(&read(d, "status-store1.json")).unwrap();
    assert_eq!(st["last_run"]["result"], "aborted", "{st:#}");
    assert!(st["last_success"].is_string(), "{st:#}");
    // The monitor's backup check sees the failed run while the earlier one is still fresh.
    let out = crate::common::mailfleet(&[
        "--config",
        config.to_str().unwrap(),
        "--json",
        "probe",
        "store1",
    ]);
    let outcomes: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let backup = outcomes.iter().find(|o| o["check"] == "backup").unwrap();
    assert_eq!(backup["state"], "WARNING", "{backup:#}");
}
