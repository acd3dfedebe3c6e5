//! Running the git CLI safely: no prompts, no system or global config, no
//! hooks, submodules or LFS smudge, a bounded set of protocols, a time bound
//! that kills the whole process group, and bounded output.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::VcsError;
use crate::scrub::scrub;

/// Output of one git call.
pub(crate) struct GitOutput {
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub success: bool,
}

/// Credentials for one call, handed to git's credential helper through the
/// environment, never on a command line or in a stored URL.
#[derive(Clone, Default)]
pub(crate) struct CallCreds {
    /// `username=..\npassword=..\n` for the helper, if any.
    pub helper_input: Option<String>,
    /// `GIT_SSH_COMMAND` for ssh remotes.
    pub ssh_command: Option<String>,
    /// `host:port:address` pins for curl, so git connects where we checked.
    pub resolve: Vec<String>,
}

/// How git is run; shared by every mirror.
#[derive(Clone)]
pub(crate) struct Git {
    pub timeout: Duration,
    /// Private HOME for git (nothing of the service user's leaks in).
    pub home: PathBuf,
    /// Whether the file:// protocol is allowed (loopback tests only).
    pub allow_file: bool,
}

#[cfg(test)]
impl Git {
    /// A git for unit tests: a minute per call, HOME in `home`.
    pub(crate) fn for_tests(home: PathBuf) -> Git {
        std::fs::create_dir_all(&home).unwrap();
        Git {
            timeout: Duration::from_secs(60),
            home,
            allow_file: false,
        }
    }
}

/// The environment variable the credential helper reads.
const CRED_ENV: &str = "SPARTA_GIT_CREDENTIAL";

impl Git {
    /// The `-c` settings every call carries.
    fn config_args(&self, creds: &CallCreds) -> Vec<String> {
        let mut c = vec![
            "core.hooksPath=/dev/null".to_owned(),
            "core.askPass=true".to_owned(),
            "core.fsmonitor=false".to_owned(),
            "credential.helper=".to_owned(),
            "protocol.allow=never".to_owned(),
            "protocol.https.allow=always".to_owned(),
            "protocol.http.allow=always".to_owned(),
            "protocol.ssh.allow=always".to_owned(),
            "submodule.recurse=false".to_owned(),
            "fetch.recurseSubmodules=false".to_owned(),
            "filter.lfs.smudge=".to_owned(),
            "filter.lfs.process=".to_owned(),
            "filter.lfs.required=false".to_owned(),
            // A redirect could lead to an address that was never checked.
            "http.followRedirects=false".to_owned(),
            "gc.auto=0".to_owned(),
            "maintenance.auto=false".to_owned(),
            "log.showSignature=false".to_owned(),
        ];
        if self.allow_file {
            c.push("protocol.file.allow=always".to_owned());
        }
        if creds.helper_input.is_some() {
            c.push(format!(
                "credential.helper=!f() {{ test \"$1\" = get && printf '%s' \"${CRED_ENV}\"; }}; f"
            ));
        }
        for r in &creds.resolve {
            c.push(format!("http.curloptResolve={r}"));
        }
        c.into_iter().flat_map(|s| ["-c".to_owned(), s]).collect()
    }

    /// Runs `git <args>` in `dir`, collecting at most `max_out` bytes of
    /// stdout (more is TooLarge), within the time bound.
    pub async fn run(
        &self,
        dir: Option<&Path>,
        args: &[&str],
        creds: &CallCreds,
        max_out: usize,
    ) -> Result<GitOutput, VcsError> {
        let mut cmd = self.command(dir, args, creds);
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| VcsError::Failed(format!("starting git: {e}")))?;
        let pid = child.id();
        let mut stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let work = async {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let read_out = async {
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let n = stdout.read(&mut buf).await?;
                    if n == 0 {
                        return Ok::<bool, std::io::Error>(true);
                    }
                    if out.len() + n > max_out {
                        // Stop git now: stderr stays open while it runs.
                        kill_group(pid);
                        return Ok(false);
                    }
                    out.extend_from_slice(&buf[..n]);
                }
            };
            // Stderr is for messages only: keep the first 64 KiB.
            let read_err = async {
                let mut buf = vec![0u8; 8 << 10];
                loop {
                    let n = stderr.read(&mut buf).await?;
                    if n == 0 {
                        return Ok::<(), std::io::Error>(());
                    }
                    if err.len() < 64 << 10 {
                        err.extend_from_slice(&buf[..n]);
                    }
                }
            };
            let (fits, _) = tokio::try_join!(read_out, read_err)
                .map_err(|e| VcsError::Failed(format!("reading git output: {e}")))?;
            Ok::<_, VcsError>((fits, out, err))
        };
        let outcome = tokio::time::timeout(self.timeout, work).await;
        let (fits, out, err) = match outcome {
            Err(_) => {
                kill_group(pid);
                let _ = child.wait().await;
                return Err(VcsError::Timeout(format!(
                    "git {} took longer than {:?}",
                    args.first().unwrap_or(&""),
                    self.timeout
                )));
            }
            Ok(Err(e)) => {
                kill_group(pid);
                let _ = child.wait().await;
                return Err(e);
            }
            Ok(Ok(r)) => r,
        };
        if !fits {
            kill_group(pid);
            let _ = child.wait().await;
            return Err(VcsError::TooLarge(format!(
                "git {} output is over {max_out} bytes",
                args.first().unwrap_or(&"")
            )));
        }
        let status = match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(s) => s.map_err(|e| VcsError::Failed(format!("waiting for git: {e}")))?,
            Err(_) => {
                kill_group(pid);
                let _ = child.wait().await;
                return Err(VcsError::Timeout("git did not exit".into()));
            }
        };
        Ok(GitOutput {
            stdout: out,
            stderr: scrub(&String::from_utf8_lossy(&err)),
            success: status.success(),
        })
    }

    /// A git command with the safe environment; for callers that stream.
    pub fn command(
        &self,
        dir: Option<&Path>,
        args: &[&str],
        creds: &CallCreds,
    ) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("git");
        cmd.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        cmd.env("HOME", &self.home)
            .env("LC_ALL", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "true")
            .env("SSH_ASKPASS", "true")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_LFS_SKIP_SMUDGE", "1")
            .env("GIT_NO_REPLACE_OBJECTS", "1")
            .env("GIT_PROTOCOL_FROM_USER", "0");
        if let Some(input) = &creds.helper_input {
            cmd.env(CRED_ENV, input);
        }
        match &creds.ssh_command {
            Some(ssh) => cmd.env("GIT_SSH_COMMAND", ssh),
            None => cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes"),
        };
        match dir {
            Some(dir) => {
                cmd.current_dir(dir);
                cmd.env("GIT_DIR", dir);
            }
            None => {
                // No repository: never pick one up from the working directory.
                cmd.current_dir(&self.home);
                if let Some(parent) = self.home.parent() {
                    cmd.env("GIT_CEILING_DIRECTORIES", parent);
                }
            }
        }
        cmd.args(self.config_args(creds));
        cmd.args(args);
        cmd.process_group(0);
        cmd.kill_on_drop(true);
        cmd
    }
}

/// Kills the process group git leads (git spawns remote helpers and ssh).
pub(crate) fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid {
        // `kill` from procps: the crate forbids unsafe code, so no libc call.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(timeout: Duration) -> (Git, tempfile::TempDir) {
        let home = tempfile::tempdir().unwrap();
        let g = Git {
            timeout,
            home: home.path().to_owned(),
            allow_file: false,
        };
        (g, home)
    }

    #[tokio::test]
    async fn a_hung_git_is_killed_at_the_bound() {
        let (g, _home) = git(Duration::from_secs(1));
        // A shell alias stands in for a remote helper that never answers.
        let r = g
            .run(
                None,
                &["-c", "alias.hang=!sleep 600", "hang"],
                &CallCreds::default(),
                1 << 10,
            )
            .await;
        assert!(matches!(r, Err(VcsError::Timeout(_))), "{:?}", r.err());
    }

    #[tokio::test]
    async fn output_is_bounded() {
        let (g, _home) = git(Duration::from_secs(60));
        let r = g
            .run(
                None,
                &["-c", "alias.flood=!yes", "flood"],
                &CallCreds::default(),
                4096,
            )
            .await;
        assert!(matches!(r, Err(VcsError::TooLarge(_))), "{:?}", r.err());
    }

    #[tokio::test]
    async fn no_prompt_and_no_global_config() {
        let (g, _home) = git(Duration::from_secs(60));
        let out = g
            .run(
                None,
                &["config", "--show-origin", "--list"],
                &CallCreds::default(),
                1 << 20,
            )
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        // Only what we pass with -c: nothing from system or global files.
        assert!(
            text.lines().all(|l| l.starts_with("command line:")),
            "{text}"
        );
        assert!(text.contains("core.hookspath=/dev/null"), "{text}");
        assert!(text.contains("protocol.allow=never"), "{text}");
    }
}
