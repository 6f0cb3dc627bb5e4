//! Fuzzes what the runtime reads from providers and files: provider error bodies (and their
//! diagnosis by the bundled Salesforce profile's error map, which matches descriptions with
//! patterns and renders fixes), callback query strings, token responses (read into a token
//! set as a connection would) and token files (with the origin check and the API base URL,
//! which renders the set's fields into a URL).
//!
//! The first byte picks the parser; the rest is its input.

#![no_main]

use keyway_manifest::model::{ErrorPhase, Profile};
use keyway_runtime::{Callback, Connector, ConnectorConfig, HttpClient, HttpOptions, ProviderError, TokenSet};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

/// The bundled Salesforce profile, without introspection (it would call out to read an
/// expiry), and a connector for it: built once.
fn connector() -> &'static Connector {
    static CONNECTOR: OnceLock<Connector> = OnceLock::new();
    CONNECTOR.get_or_init(|| {
        let loaded = keyway_validate::validate_paths(&[keyway_tests::profiles_dir()]);
        let mut profile: Profile = loaded.profile("salesforce").expect("the bundled profile").profile.clone();
        profile.auth.endpoints.introspect = None;
        profile.auth.tokens.introspect_for_expiry = false;
        let config = ConnectorConfig { client_id: "fuzz".to_owned(), ..ConnectorConfig::default() };
        let http = HttpClient::new(&HttpOptions::default()).expect("an HTTP client");
        Connector::new(Arc::new(profile), config, http).expect("a connector")
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime"))
}

const PHASES: [ErrorPhase; 3] = [ErrorPhase::Authorize, ErrorPhase::Token, ErrorPhase::Api];

fuzz_target!(|data: &[u8]| {
    let Some((&which, input)) = data.split_first() else { return };
    let connector = connector();
    match which % 4 {
        0 => {
            let phase = PHASES[usize::from(which / 4) % PHASES.len()];
            let status = input.first().map(|b| 400 + u16::from(*b % 200));
            if let Some(error) = ProviderError::from_body(phase, status, input) {
                assert!(error.error.chars().count() <= 501, "provider text is bounded");
                let diagnosis = connector.diagnose(error);
                std::hint::black_box(diagnosis.to_string());
            }
        }
        1 => {
            let Ok(query) = std::str::from_utf8(input) else { return };
            let callback = Callback::from_query(query);
            std::hint::black_box(callback);
        }
        2 => {
            let Ok(serde_json::Value::Object(response)) = serde_json::from_slice::<serde_json::Value>(input) else {
                return;
            };
            if let Ok(tokens) = runtime().block_on(connector.import_tokens(&response)) {
                assert!(connector.check_origin(&tokens).is_ok(), "a set this connector read is its own");
                let _ = connector.api_base_url(&tokens);
                let text = serde_json::to_string(&tokens).expect("a token set serializes");
                let again: TokenSet = serde_json::from_str(&text).expect("and reads back");
                assert_eq!(again.expires_at, tokens.expires_at);
            }
        }
        _ => {
            let Ok(tokens) = serde_json::from_slice::<TokenSet>(input) else { return };
            let _ = connector.check_origin(&tokens);
            let _ = tokens.expires_within(u64::MAX, u64::MAX);
            if let Ok(url) = connector.api_base_url(&tokens) {
                assert!(keyway_validate::urls::endpoint_problem(&url).is_none(), "{url}");
            }
            std::hint::black_box(format!("{tokens:?}"));
        }
    }
});
