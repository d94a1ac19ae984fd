//! The S3 target against a real S3-protocol server started here (moto's server, from PyPI):
//! back up, verify, back up again incrementally, restore byte for byte.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mailfleet_stack::TestStack;

use crate::corpus::{assert_restored, fill};

/// moto's S3 server on a free loopback port, stopped by its PID on drop.
struct S3Server {
    child: Child,
    port: u16,
}

impl S3Server {
    fn start(dir: &std::path::Path) -> S3Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.join("moto.log")).unwrap();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("moto_server (scripts/install-s3)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        S3Server { child, port }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn backups_go_to_an_s3_bucket_and_come_back() {
    let stack = TestStack::start().await.expect("stack");
    fill(&stack, 40).await;
    let s3 = S3Server::start(&stack.base());
    // moto checks no signature but needs the bucket to exist.
    let made = Command::new("curl")
        .args(["-fsS", "-X", "PUT"])
        .arg(format!("http://127.0.0.1:{}/mailfleet-test", s3.port))
        .status()
        .unwrap();
    assert!(made.success());
    let secret = stack.base().join("s3.secret");
    std::fs::write(&secret, "not-checked-by-moto\n").unwrap();
    let config = stack.base().join("s3.toml");
    std::fs::write(
        &config,
        crate::corpus::with_backup(
            &std::fs::read_to_string(stack.config_path()).unwrap(),
            &format!(
                "repository = \"s3://mailfleet-test/fleet1\"\ns3 = {{ endpoint = \"http://127.0.0.1:{}\", access_key_id = \"test\", secret_access_key_file = {:?} }}\n",
                s3.port,
                secret.display().to_string()
            ),
        ),
    )
    .unwrap();
    let run = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&crate::common::mailfleet_ok(&config, &all)).unwrap()
    };
    let first = run(&["backup", "run"]);
    assert!(first["messages"].as_u64().unwrap() > 100, "{first:#}");
    assert!(
        first["stored"]["new_blobs"].as_u64().unwrap() > 100,
        "{first:#}"
    );
    let second = run(&["backup", "run"]);
    assert_eq!(second["read_messages"], 0, "{second:#}");
    let v = run(&["backup", "verify", "--read-data"]);
    assert_eq!(v["snapshots"], 2, "{v:#}");
    assert!(v["damaged"].as_array().unwrap().is_empty(), "{v:#}");
    // The objects really are in the bucket, under the prefix.
    let listing = Command::new("curl")
        .args(["-fsS"])
        .arg(format!(
            "http://127.0.0.1:{}/mailfleet-test?list-type=2&prefix=fleet1/snapshots/",
            s3.port
        ))
        .output()
        .unwrap();
    let xml = String::from_utf8_lossy(&listing.stdout);
    assert_eq!(xml.matches("<Key>fleet1/snapshots/").count(), 2, "{xml}");
    let out = stack.base().join("restored");
    crate::common::mailfleet_ok(&config, &["restore", "--to", out.to_str().unwrap()]);
    assert_restored(&stack, &out);
}
