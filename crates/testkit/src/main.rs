//! `keyway-testkit`: the test provider as a process, for trying `keyway serve` without a
//! Salesforce org (README's demo) and for browser tests.
//!
//! ```text
//! keyway-testkit [--port N] [--profiles-out DIR] [--no-consent-page] [--rotate] [--iss]
//! ```
//!
//! It listens on 127.0.0.1 (port 0 picks one), writes the bundled Salesforce profiles and the
//! `salesforce-local` child pointing at itself into `--profiles-out`, prints one JSON line
//! (`base_url`, `client_id`, `client_secret`, `profile`) and serves until killed. The
//! credentials are the test provider's fixed, public test values. With `--iss` it sends its
//! issuer as `iss` on authorization responses (RFC 9207) and says so in its discovery document.

use keyway_testkit::profiles::{LOCAL_PROFILE_ID, write_profiles};
use keyway_testkit::{ProviderConfig, TestProvider};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut port = 0u16;
    let mut profiles_out: Option<PathBuf> = None;
    let mut send_iss = false;
    let mut config = ProviderConfig { consent_page: true, ..ProviderConfig::default() };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => match args.next().and_then(|p| p.parse().ok()) {
                Some(p) => port = p,
                None => return usage("--port needs a number"),
            },
            "--profiles-out" => match args.next() {
                Some(dir) => profiles_out = Some(dir.into()),
                None => return usage("--profiles-out needs a directory"),
            },
            "--no-consent-page" => config.consent_page = false,
            "--rotate" => config.rotate_refresh_tokens = true,
            "--iss" => send_iss = true,
            "-h" | "--help" => {
                println!("keyway-testkit [--port N] [--profiles-out DIR] [--no-consent-page] [--rotate] [--iss]");
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument `{other}`")),
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async move {
        let client_id = config.client_id.clone();
        let client_secret = config.client_secret.clone();
        let provider = match TestProvider::start_on(port, config).await {
            Ok(provider) => provider,
            Err(e) => return fail(&format!("cannot listen on 127.0.0.1:{port}: {e}")),
        };
        if send_iss {
            let issuer = provider.base_url();
            provider.update_config(|c| c.callback_iss = Some(issuer));
        }
        if let Some(dir) = &profiles_out {
            if let Err(e) = write_profiles(dir, &provider.host()) {
                return fail(&format!("cannot write profiles to {}: {e}", dir.display()));
            }
        }
        let line = serde_json::json!({
            "base_url": provider.base_url(),
            "client_id": client_id,
            "client_secret": client_secret,
            "profile": LOCAL_PROFILE_ID,
            "environment": "local",
        });
        println!("{line}");
        // Serves until the process is killed.
        std::future::pending::<ExitCode>().await
    })
}

fn usage(message: &str) -> ExitCode {
    eprintln!("keyway-testkit: {message}");
    ExitCode::from(2)
}

fn fail(message: &str) -> ExitCode {
    eprintln!("keyway-testkit: {message}");
    ExitCode::FAILURE
}
