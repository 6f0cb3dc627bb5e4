//! What the OAuth command tests share: the test provider on loopback, the bundled profiles
//! pointed at it in a fresh directory, and `keyway` run as a process with its secrets in the
//! environment.
#![allow(dead_code)]

use keyway_testkit::{ProviderConfig, TestProvider};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

pub struct Setup {
    pub provider: TestProvider,
    pub dir: PathBuf,
    /// Arguments every command gets after its own (`--client-id`, `--env`).
    common: Vec<String>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts the provider and writes the profiles; `common` follows every command's arguments.
pub async fn setup(suite: &str, tag: &str, config: ProviderConfig, common: &[&str]) -> Setup {
    let provider = TestProvider::start(config).await.expect("provider");
    let dir = std::env::temp_dir().join(format!("keyway-cli-{suite}-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    keyway_testkit::profiles::write_profiles(&dir.join("profiles"), &provider.host()).expect("profiles");
    Setup { provider, dir, common: common.iter().map(|a| (*a).to_owned()).collect() }
}

impl Setup {
    pub fn profiles(&self) -> PathBuf {
        self.dir.join("profiles")
    }

    /// A child of the local profile with extra `auth` settings.
    pub fn child(&self, id: &str, auth: &str) {
        let text = format!("id: {id}\nextends: salesforce-local\nauth:\n{auth}");
        std::fs::write(self.profiles().join(format!("{id}.yaml")), text).expect("child profile");
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keyway"));
        command
            .args(args)
            .args(["--profiles", self.profiles().to_str().expect("utf-8 path")])
            .args(&self.common)
            .env("KEYWAY_TEST_SECRET", "testkit-secret")
            .env("KEYWAY_TEST_KEY", &keyway_testkit::rsa_key_pair().0)
            .env_remove("KEYWAY_PROFILES")
            .env_remove("KEYWAY_CLIENT_ID");
        command
    }

    /// Runs a command off the async runtime (the provider runs on it).
    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = self.command(args);
        let stdin = stdin.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
            let mut child = command.spawn().expect("keyway runs");
            if let Some(mut pipe) = child.stdin.take() {
                // A command may stop reading early (past a limit): a broken pipe is its answer.
                if let Err(e) = pipe.write_all(stdin.unwrap_or_default().as_bytes()) {
                    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "stdin: {e}");
                }
            }
            child.wait_with_output().expect("keyway finishes")
        })
        .await
        .expect("join")
    }

    pub fn write(&self, name: &str, text: &[u8]) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }
}

/// An HTTP client that follows no redirects: the test plays the browser one step at a time.
pub fn http() -> oauth2::reqwest::Client {
    oauth2::reqwest::Client::builder().redirect(oauth2::reqwest::redirect::Policy::none()).build().expect("client")
}

/// A `keyway login` waiting for its callback: the URL it printed for the user to open.
pub struct Login {
    child: Child,
    pub url: String,
    /// The rest of its stderr, read as it comes (so the command never blocks on the pipe).
    rest: std::thread::JoinHandle<String>,
}

impl Setup {
    /// Starts `keyway` with `args` (a `login`) and waits for the URL it prints on stderr.
    pub async fn start_login(&self, args: &[&str]) -> Login {
        let mut command = self.command(args);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("keyway login runs");
        let stderr = child.stderr.take().expect("stderr");
        let (url, rest) = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stderr).lines();
            let found = lines.by_ref().map_while(Result::ok).find(|l| l.starts_with("http://"));
            let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
            (found, rest)
        })
        .await
        .expect("join");
        Login { child, url: url.expect("login printed a URL"), rest }
    }
}

impl Login {
    /// Waits for the command to end; its stderr is what followed the URL.
    pub async fn finish(self) -> Output {
        let Login { child, rest, .. } = self;
        let mut output =
            tokio::task::spawn_blocking(move || child.wait_with_output().expect("login ends")).await.expect("join");
        output.stderr = rest.join().expect("stderr reader").into_bytes();
        output
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
