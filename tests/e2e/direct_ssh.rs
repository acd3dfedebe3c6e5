//! `ssh://` remotes with `--vcs-ssh-key`, against a real OpenSSH server
//! (Debian's openssh-server, `make tools`) that the test starts on a free
//! loopback port with its own host key and authorized key. The repository is
//! the same bare repository the HTTP git server serves, so the go command's
//! `GOPROXY=direct` download over HTTP is the reference for the hashes.
//! The key file is read on every git call: replacing it takes effect
//! without a restart (a rotated secret).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sparta_e2e::git::{GitServer, HOST};
use sparta_e2e::{Sparta, SpartaOptions, http_client};

use crate::direct::{same_as_direct, with_vcs_dir};

const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd; killed on drop.
struct Sshd {
    child: Child,
    port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "sparta-test", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen (openssh-client) must be installed");
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Starts sshd on a free loopback port, admitting `authorized` only.
fn start_sshd(dir: &Path, authorized: &Path) -> Sshd {
    assert!(
        Path::new(SSHD).exists(),
        "{SSHD} is missing: install openssh-server (make tools runs scripts/install-sshd.sh)"
    );
    // sshd's privilege separation directory (compiled in on Debian).
    let _ = std::fs::create_dir_all("/run/sshd");
    let host_key = dir.join("host_key");
    keygen(&host_key);
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress 127.0.0.1:{port}\nHostKey {}\nAuthorizedKeysFile {}\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes no\nPermitRootLogin prohibit-password\nPidFile none\n\
             AllowTcpForwarding no\nX11Forwarding no\nLogLevel VERBOSE\n",
            host_key.display(),
            authorized.display()
        ),
    )
    .expect("sshd_config");
    let log = std::fs::File::create(dir.join("sshd.log")).expect("sshd.log");
    let child = Command::new(SSHD)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start sshd");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "sshd did not listen: {}",
            std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Sshd { child, port }
}

async fn get(sparta: &Sparta, path: &str) -> (u16, String) {
    let resp = http_client()
        .get(format!("{}/{path}", sparta.url))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

fn install_key(from: &Path, to: &PathBuf) {
    // Replace, as a mounted secret is: a new file under the same name.
    let tmp = to.with_extension("new");
    std::fs::copy(from, &tmp).expect("copy key");
    std::fs::rename(&tmp, to).expect("rename key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_ssh_remote_with_a_key_that_rotates() {
    let git = GitServer::start();
    let mut repo = git.repo("sshmod");
    let m = repo.module();
    repo.write("go.mod", &format!("module {m}\n\ngo 1.21\n"))
        .write(
            "s.go",
            "package sshmod\n\nfunc Name() string { return \"ssh\" }\n",
        );
    repo.commit("first");
    repo.tag("v1.0.0");
    repo.push();

    let keys = tempfile::tempdir().expect("tempdir");
    let (good, bad) = (keys.path().join("good"), keys.path().join("bad"));
    keygen(&good);
    keygen(&bad);
    let sshd = start_sshd(keys.path(), &good.with_extension("pub"));
    let key = keys.path().join("key");
    install_key(&bad, &key);
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod key");

    let remote = format!(
        "{HOST}/*=ssh://{}@127.0.0.1:{}{}/{{rest}}",
        user(),
        sshd.port,
        git.root.display()
    );
    let key_arg = key.to_string_lossy().into_owned();
    let sparta = Sparta::start(with_vcs_dir(SpartaOptions::fixture()).args(&[
        "--route",
        &format!("{HOST}=direct"),
        "--vcs-map",
        &remote,
        "--vcs-allow-loopback",
        "--vcs-ssh-key",
        &key_arg,
        "--negative-ttl",
        "1ms",
    ]))
    .await;

    // A key the server does not accept: a clear not-found with the reason,
    // never a prompt or a 5xx, and nothing stored.
    let info = format!("{m}/@v/v1.0.0.info");
    let (status, body) = get(&sparta, &info).await;
    assert!(
        status == 404 || status == 410,
        "{status} {body}\n{}",
        sparta.log()
    );
    assert!(body.contains("refused"), "{body}");
    assert!(
        !sparta.stored().keys().any(|k| k.contains("sshmod")),
        "nothing stored after a refusal"
    );

    // The rotated key works at once, and the hashes match the go command's.
    install_key(&good, &key);
    let (status, body) = get(&sparta, &info).await;
    assert_eq!(status, 200, "{body}\n{}", sparta.log());
    same_as_direct(&git, &sparta, &format!("{m}@v1.0.0")).await;

    let log = sparta.log();
    let secret = std::fs::read_to_string(&good).expect("key");
    let secret_line = secret.lines().nth(1).expect("key body");
    assert!(
        !log.contains(secret_line) && !log.contains("PRIVATE KEY"),
        "key material in the log"
    );
}
