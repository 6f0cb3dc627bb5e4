//! What a provider error means: the profile's first matching error rule, its fix rendered
//! for this connection, else the standard meaning of the OAuth error code.

use super::Connector;
use crate::errors::{Diagnosis, DiagnosisKind, ProviderError, matching_rule};
use keyway_validate::templates::{GuideTarget, guide_context, render, scope_entries};

impl Connector {
    /// What a provider error means, from the profile's error map, with the fix rendered for
    /// this connection.
    pub fn diagnose(&self, error: ProviderError) -> Diagnosis {
        let Some((id, rule)) = matching_rule(&self.profile, &error) else {
            return match crate::standard_errors::standard_error(&error.error, error.phase) {
                Some(standard) => Diagnosis {
                    kind: standard.kind.into(),
                    rule: None,
                    meaning: Some(format!("{} ({})", standard.meaning, standard.reference)),
                    hint: Some(standard.fix.to_owned()),
                    provider: error,
                },
                None => {
                    Diagnosis { kind: DiagnosisKind::Unknown, rule: None, meaning: None, hint: None, provider: error }
                }
            };
        };
        let scopes = scope_entries(&self.profile, &self.plan);
        let app_name = format!("{} integration", self.profile.name);
        let target = GuideTarget {
            environment: &self.environment,
            variant: None,
            plan: &self.plan,
            scopes: &scopes,
            actions: &self.config.selection.actions,
            callback_url: self.config.selection.redirect_uri.as_deref().unwrap_or_default(),
            app_name: &app_name,
            refresh_sends_secret: self.refresh_sends_secret,
            sends_pkce: self.pkce,
        };
        let context = guide_context(&self.profile, &target);
        let hint = render(&rule.fix, &context).ok().map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "));
        Diagnosis {
            kind: rule.kind.into(),
            rule: Some(id.to_owned()),
            meaning: Some(rule.meaning.split_whitespace().collect::<Vec<_>>().join(" ")),
            hint,
            provider: error,
        }
    }
}
