//! Rendered setup guides for the bundled Salesforce profiles: snapshots of the Markdown and
//! JSON forms for the selections that matter, the JSON checked against its schema, and the
//! guide URL round trip.

use keyway_guide::{GuideRequest, guide_url, parse_guide_url, render};
use keyway_tests::bundled_profile;
use std::sync::OnceLock;

fn request(actions: &[&str]) -> GuideRequest {
    GuideRequest {
        actions: actions.iter().map(|a| a.to_string()).collect(),
        callback_url: Some("https://app.example.com/oauth/callback".to_owned()),
        app_name: Some("Acme Integration".to_owned()),
        ..GuideRequest::default()
    }
}

fn check_json_schema(guide: &keyway_guide::Guide) -> serde_json::Value {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let schema: serde_json::Value =
            serde_json::from_str(&keyway_guide::guide_schema_json()).expect("the guide schema is JSON");
        jsonschema::validator_for(&schema).expect("the guide schema compiles")
    });
    let json = serde_json::to_value(guide).expect("a guide serializes");
    let errors: Vec<String> = validator.iter_errors(&json).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    json
}

fn snapshot(name: &str, profile_id: &str, request: &GuideRequest) -> keyway_guide::Guide<'static> {
    let guide = render(bundled_profile(profile_id), request).unwrap_or_else(|d| panic!("{name}: {d:#?}"));
    let json = check_json_schema(&guide);
    insta::assert_snapshot!(format!("{name}.md"), guide.to_markdown());
    insta::assert_json_snapshot!(format!("{name}.json"), json);
    guide
}

fn scopes<'g>(guide: &'g keyway_guide::Guide<'_>) -> Vec<&'g str> {
    guide.scopes.iter().map(|s| s.value.as_str()).collect()
}

fn step_ids(guide: &keyway_guide::Guide) -> Vec<String> {
    guide.sections.iter().flat_map(|s| s.steps.iter().map(move |t| format!("{}/{}", s.id, t.id))).collect()
}

#[test]
fn service_cloud_create_and_list_cases() {
    let guide = snapshot("service_cloud_cases", "salesforce-service-cloud", &request(&["create_case", "list_cases"]));
    assert_eq!(scopes(&guide), ["api", "refresh_token", "offline_access"]);
    assert_eq!(guide.scopes[0].actions, ["Create Case", "List Cases"]);
    assert!(
        !step_ids(&guide).iter().any(|s| s.contains("knowledge")),
        "no Knowledge prerequisite without a Knowledge action"
    );
}

#[test]
fn service_cloud_all_34_actions() {
    let all: Vec<&str> = bundled_profile("salesforce-service-cloud").actions.keys().map(String::as_str).collect();
    assert_eq!(all.len(), 34);
    let guide = snapshot("service_cloud_all", "salesforce-service-cloud", &request(&all));
    assert_eq!(guide.actions.len(), 34);
    assert_eq!(guide.scopes[0].actions.len(), 34, "every action needs api");
}

#[test]
fn service_cloud_knowledge_in_the_sandbox() {
    let mut req = request(&["publish_knowledge_article"]);
    req.environment = Some("sandbox".to_owned());
    let guide = snapshot("service_cloud_knowledge_sandbox", "salesforce-service-cloud", &req);
    assert_eq!(guide.environment.id, "sandbox");
    let md = guide.to_markdown();
    assert!(md.contains("https://test.salesforce.com"), "the sandbox login host");
    assert!(md.contains("Lightning Knowledge"), "the Knowledge prerequisite");
    assert!(md.contains("destroy their apps when they are refreshed"), "the sandbox-refresh warning");
    let production =
        render(bundled_profile("salesforce-service-cloud"), &request(&["publish_knowledge_article"])).expect("renders");
    assert!(!production.to_markdown().contains("destroy their apps"), "the warning is for sandboxes");
}

#[test]
fn salesforce_crm_defaults() {
    let guide = snapshot("crm_defaults", "salesforce", &request(&[]));
    assert_eq!(guide.scope_string, "api refresh_token offline_access");
    assert_eq!(guide.variant.as_deref(), Some("external_client_app"));
}

#[test]
fn custom_scopes_add_their_section() {
    let mut req = request(&["list_accounts", "post_chatter_feed_item"]);
    req.custom_scopes = Some(vec![
        "api".into(),
        "chatter_api".into(),
        "content".into(),
        "refresh_token".into(),
        "offline_access".into(),
    ]);
    let guide = snapshot("crm_custom_scopes", "salesforce", &req);
    assert!(guide.custom_scopes);
    assert_eq!(guide.scope_string, "api chatter_api content refresh_token offline_access");
    assert!(guide.sections.iter().any(|s| s.id == "custom_scopes"));
    // Seeds 000 and 001 state the custom-scope rules for every guide: a platform may let the
    // admin customize scopes later. The guide for custom scopes says which it requests.
    let computed = render(bundled_profile("salesforce"), &request(&["list_accounts"])).expect("renders");
    assert!(computed.sections.iter().any(|s| s.id == "custom_scopes"));
}

#[test]
fn the_classic_connected_app_flavour() {
    let mut req = request(&["create_case"]);
    req.variant = Some("connected-app".to_owned());
    let guide = snapshot("service_cloud_connected_app", "salesforce-service-cloud", &req);
    assert_eq!(guide.variant.as_deref(), Some("connected_app"));
    let md = guide.to_markdown();
    assert!(md.contains("Build") && md.contains("New Connected App"), "Classic and Lightning navigation");
    assert!(md.contains("Manage Consumer Details"));
    assert!(!md.contains("New External Client App"));
}

#[test]
fn unknown_actions_environments_and_variants_are_errors_not_empty_guides() {
    let mut req = request(&["create_cse"]);
    req.environment = Some("prod".to_owned());
    req.variant = Some("lightning".to_owned());
    let errors = render(bundled_profile("salesforce-service-cloud"), &req).expect_err("bad request");
    let codes: Vec<&str> = errors.iter().map(|d| d.code.as_str()).collect();
    assert_eq!(codes, ["KW0501", "KW0505", "KW0508"]);
    assert_eq!(errors[0].help.as_deref(), Some("did you mean `create_case`?"));
}

#[test]
fn guide_urls_are_canonical_and_round_trip() {
    let p = bundled_profile("salesforce-service-cloud");
    let mut req = request(&["list_cases", "create_case", "list_cases"]);
    req.environment = Some("sandbox".to_owned());
    // An alias of the default variant, the profile's default PKCE: both left out.
    req.variant = Some("eca".to_owned());
    req.sends_pkce = Some(true);
    req.refresh_sends_secret = Some(false);
    req.parameters.insert("my_domain".to_owned(), "acme.my.salesforce.com".to_owned());
    req.callback_url = Some("https://app.example.com/cb?x=1".to_owned());
    req.app_name = Some("Acme & Co".to_owned());
    // The base's own query is kept ahead of the guide's keys; its stale guide keys are not.
    let url = guide_url("https://docs.example.com/guides/salesforce?lang=en&env=old#top", p, &req).expect("a URL");
    assert_eq!(
        url,
        "https://docs.example.com/guides/salesforce?lang=en&profile=salesforce-service-cloud&actions=create_case%2Clist_cases&env=sandbox&refresh_secret=off&callback=https%3A%2F%2Fapp.example.com%2Fcb%3Fx%3D1&app=Acme+%26+Co&param.my_domain=acme.my.salesforce.com#top"
    );
    let (id, back) = parse_guide_url(&url).expect("parses");
    assert_eq!(id, "salesforce-service-cloud");
    assert_eq!(back.actions, ["create_case", "list_cases"]);
    assert_eq!((back.environment.as_deref(), back.variant.as_deref()), (Some("sandbox"), None));
    assert_eq!((back.sends_pkce, back.refresh_sends_secret), (None, Some(false)));
    assert_eq!(back.parameters.get("my_domain").map(String::as_str), Some("acme.my.salesforce.com"));
    assert_eq!(back.app_name.as_deref(), Some("Acme & Co"));
    let again = guide_url("https://docs.example.com/guides/salesforce?lang=en#top", p, &back).expect("a URL");
    assert_eq!(again, url, "the same selection gives the same URL");
    // The same guide either way.
    assert_eq!(render(p, &req).map(|g| g.to_markdown()), render(p, &back).map(|g| g.to_markdown()));
    let code = |r: Result<_, Box<keyway_diagnostics::Diagnostic>>| r.err().map(|d| d.code.as_str());
    assert_eq!(code(parse_guide_url("https://d.example/g?profile=x&acitons=a")), Some("KW0510"));
    assert_eq!(code(parse_guide_url("https://d.example/g?profile=x&profile=y")), Some("KW0510"));
    assert_eq!(code(parse_guide_url("https://d.example/g?profile=x&pkce=maybe")), Some("KW0510"));
    assert!(parse_guide_url("https://d.example/g?profile=x&lang=en").is_ok(), "the page's own keys are kept");
    let unknown = guide_url("https://d.example/g", p, &request(&["nope"])).err().map(|d| d.code.as_str());
    assert_eq!(unknown, Some("KW0501"));
}

/// Scopes as imported catalogues write them (`value: {}`: no label) are shown by their value.
/// A profile that offers actions is warned of a scope nothing needs; one that offers none has
/// nothing to check its catalogue against, and gets no warning.
#[test]
fn unlabelled_scopes_show_their_value_and_only_profiles_with_actions_warn_of_unused_scopes() {
    use keyway_diagnostics::Code;
    let with_actions = keyway_tests::MINIMAL
        .replace("read: {label: Read}", "read: {}")
        .replace("  write: {label: Write}", "  write: {label: Write}\n  extra: {}");
    let mut loaded = keyway_manifest::load_str("base.yaml", &with_actions);
    keyway_validate::check_loaded(&mut loaded);
    let found: Vec<_> = loaded.diagnostics.iter().map(|d| (d.code, d.pointer.as_deref())).collect();
    assert_eq!(found, [(Code::UnusedScope, Some("/scopes/extra"))]);
    let guide = render(&loaded.profiles[0].profile, &request(&["list_things", "create_thing"])).expect("renders");
    let shown: Vec<_> =
        guide.scopes.iter().map(|s| (s.value.as_str(), s.label.as_str(), s.console_label.as_str())).collect();
    assert_eq!(
        shown,
        [("read", "read", "read"), ("write", "Write", "Write (write)"), ("offline", "Offline", "Offline (offline)")]
    );

    let (head, tail) = with_actions.split_once("actions:\n").expect("MINIMAL has actions");
    let without_actions = format!("{head}{}", &tail[tail.find("guide:").expect("and a guide")..]);
    let mut loaded = keyway_manifest::load_str("base.yaml", &without_actions);
    keyway_validate::check_loaded(&mut loaded);
    assert!(loaded.profiles[0].profile.actions.is_empty());
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
}

/// Issue 18, part 2: each statement about Salesforce the review found wrong, or shown where it
/// does not apply, pinned (sources in the profiles' comments).
#[test]
fn the_guides_say_what_salesforce_documents_and_only_what_the_selection_needs() {
    use keyway_manifest::model::Grant;
    let crm = bundled_profile("salesforce");
    let sc = bundled_profile("salesforce-service-cloud");
    let md = |p, req: &GuideRequest| render(p, req).expect("renders").to_markdown();
    let with = |f: &dyn Fn(&mut GuideRequest)| {
        let mut r = request(&[]);
        f(&mut r);
        r
    };
    let eca = md(crm, &request(&[]));
    let classic = md(crm, &with(&|r| r.variant = Some("connected_app".into())));

    // A Local External Client App serves only its own org; a Connected App any org.
    assert!(eca.contains("**Local** distribution serves only the org it is created in"), "{eca}");
    assert!(!eca.contains("Any Salesforce org can own"));
    assert!(classic.contains("Any Salesforce org can own a Connected App"));
    assert!(eca.contains("### Cross-org OAuth flows are not supported for this external client app"));
    assert!(!classic.contains("Cross-org OAuth flows"));
    // The permissions of each app type.
    assert!(
        eca.contains("**Create, edit, and delete External Client Apps**") && !eca.contains("Manage Connected Apps")
    );
    assert!(classic.contains("**Manage Connected Apps**") && !classic.contains("delete External Client Apps"));
    // The web server flow needs no "Authorization Code and Credentials" flow; own tokens need no
    // "Introspect All Tokens".
    let states = |g: &keyway_guide::Guide, name: &str| -> Vec<String> {
        g.sections
            .iter()
            .flat_map(|s| &s.steps)
            .flat_map(|t| &t.items)
            .filter_map(|i| i.setting.as_ref())
            .filter(|s| s.name == name)
            .map(|s| s.state.to_string())
            .collect()
    };
    let g = render(crm, &request(&[])).expect("renders");
    assert_eq!(states(&g, "Enable Authorization Code and Credentials Flow"), ["unchecked"]);
    assert_eq!(states(&g, "Introspect All Tokens"), ["unchecked"]);
    // Rotation follows the platform's choice, in Salesforce's words, naming no product.
    assert_eq!(states(&g, "Enable Refresh Token Rotation"), ["unchecked"]);
    let rotating = with(&|r| r.rotates_refresh_tokens = Some(true));
    let g = render(crm, &rotating).expect("renders");
    assert_eq!(states(&g, "Enable Refresh Token Rotation"), ["checked"]);
    assert!(g.to_markdown().contains("Salesforce recommends rotation as a security best practice"));
    for text in [&eca, &classic, &g.to_markdown(), &md(sc, &request(&[]))] {
        assert!(!text.to_lowercase().contains("keyway"), "a guide names the product");
    }
    // The "full access" tip is for those who have not selected full.
    let full = with(&|r| r.custom_scopes = Some(vec!["full".into(), "refresh_token".into(), "offline_access".into()]));
    assert!(eca.contains("For broader access, select **Full access (full)**"));
    assert!(!md(crm, &full).contains("For broader access"));
    // Other flows' steps only for those flows; the ID token only with openid.
    for absent in [
        "Device Flow",
        "Enable JWT Bearer Flow",
        "Use Digital Signatures",
        "Choose a **Run As** user",
        "Configure ID token",
    ] {
        assert!(!eca.contains(absent), "{absent} in the default guide");
    }
    let all_flows = with(&|r| {
        r.grants = Some(vec![Grant::AuthorizationCode, Grant::RefreshToken, Grant::JwtBearer, Grant::DeviceCode]);
        r.custom_scopes = Some(vec!["api".into(), "openid".into(), "refresh_token".into()]);
    });
    let every = md(crm, &all_flows);
    for present in ["Enable Device Flow", "Enable JWT Bearer Flow", "Configure ID token"] {
        assert!(every.contains(present), "{present} missing with its flow");
    }
    // The custom-scope rules appear whenever custom scopes are possible: always.
    assert!(eca.contains("## Custom OAuth scopes") && eca.contains("always include `refresh_token` or"));
    // Action-specific troubleshooting only for those actions.
    let cases = md(sc, &request(&["create_case"]));
    let knowledge = md(sc, &request(&["update_knowledge_article", "delete_knowledge_article"]));
    assert!(!cases.contains("Knowledge, entitlement or work order requests fail"));
    assert!(knowledge.contains("Knowledge, entitlement or work order requests fail"));
    // Knowledge: a draft before an update, archive then delete, Manage Articles.
    assert!(knowledge.contains("`createDraftFromOnlineKnowledgeArticle`"));
    assert!(knowledge.contains("`archiveKnowledgeArticles`") && knowledge.contains("`deleteKnowledgeArticles`"));
    assert!(knowledge.contains("**Manage Articles**"));
    assert!(!md(sc, &request(&["publish_knowledge_article"])).contains("createDraftFromOnlineKnowledgeArticle"));
}

/// Issue 26, section 5: what a newcomer found missing or wrong in the bundled guide.
#[test]
fn the_guides_follow_the_chosen_flows_app_type_and_settings() {
    use keyway_manifest::model::{Grant, ItemKind};
    let crm = bundled_profile("salesforce");
    let sc = bundled_profile("salesforce-service-cloud");
    let with = |variant: &str, grants: &[Grant]| GuideRequest {
        variant: Some(variant.to_owned()),
        grants: Some([Grant::AuthorizationCode, Grant::RefreshToken].iter().chain(grants).copied().collect()),
        ..request(&[])
    };
    let settings = |g: &keyway_guide::Guide| -> Vec<(String, String)> {
        g.sections
            .iter()
            .flat_map(|s| &s.steps)
            .flat_map(|t| &t.items)
            .filter_map(|i| i.setting.as_ref())
            .map(|s| (s.name.to_string(), s.state.to_string()))
            .collect()
    };
    let has = |g: &keyway_guide::Guide, name: &str| settings(g).contains(&(name.to_owned(), "checked".to_owned()));

    // 1. The device flow's checkbox, in each app type's words, only with the device flow.
    for (variant, label, other) in [
        ("connected_app", "Enable for Device Flow", "Enable Device Flow"),
        ("external_client_app", "Enable Device Flow", "Enable for Device Flow"),
    ] {
        let device = render(crm, &with(variant, &[Grant::DeviceCode])).expect("renders");
        assert!(has(&device, label), "{variant}: {:?}", settings(&device));
        assert!(!settings(&device).iter().any(|(n, _)| n == other), "{variant}: the other app type's label");
        assert!(device.to_markdown().contains(&format!("Check **{label}**")));
        let plain = render(crm, &with(variant, &[])).expect("renders");
        assert!(!settings(&plain).iter().any(|(n, _)| n.contains("Device Flow")), "{variant} without the device flow");
    }

    // 3. JWT bearer: an External Client App's labels, not a Connected App's.
    let eca = render(crm, &with("external_client_app", &[Grant::JwtBearer])).expect("renders");
    let md = eca.to_markdown();
    assert!(has(&eca, "Enable JWT Bearer Flow"), "{:?}", settings(&eca));
    assert!(md.contains("click **Upload Files**"), "{md}");
    assert!(!md.contains("Use Digital Signatures") && !md.contains("Choose File"), "{md}");
    let classic = render(crm, &with("connected_app", &[Grant::JwtBearer])).expect("renders");
    assert!(has(&classic, "Use Digital Signatures"));
    assert!(!classic.to_markdown().contains("Enable JWT Bearer Flow"));

    // 2. The seeds' links: Cyclr's "More information" on the five approvals (seed 004), and
    // Apideck's pointer to Salesforce's migration guide (seed 002 names it, without a URL).
    let md = render(crm, &request(&[])).expect("renders").to_markdown();
    let approvals = md.lines().find(|l| l.contains("approvals (token pairs)")).expect("the approvals warning");
    assert!(approvals.contains("**Warning:**"), "{approvals}");
    assert!(
        md.contains("[More information](https://help.salesforce.com/articleView?id=remoteaccess_request_manage.htm)"),
        "{md}"
    );
    assert!(md.contains("Salesforce's *Connected App to External Client App Migration* guide"), "{md}");
    let html = render(crm, &request(&[])).expect("renders").to_html(false);
    assert!(html.contains(
        "<a href=\"https://help.salesforce.com/articleView?id=remoteaccess_request_manage.htm\">More information</a>"
    ));

    // 4. Troubleshooting follows the PKCE choice.
    let fix_of = |g: &keyway_guide::Guide| {
        g.troubleshooting
            .iter()
            .find(|t| t.title.contains("missing required code challenge"))
            .map(|t| t.fix.to_string())
            .expect("the PKCE entry")
    };
    let with_pkce = fix_of(&render(crm, &request(&[])).expect("renders"));
    assert!(with_pkce.starts_with("Keep PKCE on for the connection"), "{with_pkce}");
    let no_pkce = fix_of(&render(crm, &GuideRequest { sends_pkce: Some(false), ..request(&[]) }).expect("renders"));
    assert!(!no_pkce.contains("Keep PKCE on"), "{no_pkce}");
    assert!(no_pkce.starts_with("This connection sends no PKCE challenge: uncheck **Require Proof Key"), "{no_pkce}");

    // 5. Lightning Knowledge cannot be turned off again: a warning, in every format.
    let knowledge = render(sc, &request(&["create_knowledge_article"])).expect("renders");
    let item = knowledge
        .sections
        .iter()
        .flat_map(|s| &s.steps)
        .flat_map(|t| &t.items)
        .find(|i| i.setting.as_ref().is_some_and(|s| s.name == "Enable Lightning Knowledge"))
        .expect("the Knowledge setting");
    assert_eq!(item.kind, ItemKind::Warning);
    assert!(item.text.contains("cannot be undone"));
    let md = knowledge.to_markdown();
    assert!(
        md.contains("- **Warning:** In Setup, open **Knowledge Settings** and enable **Lightning Knowledge**"),
        "{md}"
    );
    let html = knowledge.to_html(false);
    assert!(
        html.contains("<li class=\"warning\" data-state=\"checked\"><span class=\"label\">Warning</span> <span class=\"state on\">Checked</span> In Setup, open <strong>Knowledge Settings</strong>"),
        "{html}"
    );
    let json = serde_json::to_value(&knowledge).expect("serializes");
    let found = json["sections"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["steps"].as_array().into_iter().flatten())
        .flat_map(|t| t["items"].as_array().into_iter().flatten())
        .find(|i| i["setting"]["name"] == "Enable Lightning Knowledge")
        .expect("in JSON");
    assert_eq!(found["kind"], "warning");
}

/// The settings a platform's choices change from the defaults are marked as such, in every
/// format; those kept at their defaults are not, and the defaults mark none.
#[test]
fn the_changes_a_platform_needs_stand_out_from_the_defaults() {
    let crm = bundled_profile("salesforce");
    let changes = |g: &keyway_guide::Guide| -> Vec<(String, String)> {
        g.sections
            .iter()
            .flat_map(|s| &s.steps)
            .flat_map(|t| &t.items)
            .filter(|i| i.platform_change)
            .filter_map(|i| i.setting.as_ref().map(|s| (s.name.to_string(), s.state.to_string())))
            .collect()
    };
    let defaults = render(crm, &request(&[])).expect("renders");
    assert_eq!(changes(&defaults), []);
    assert!(!defaults.to_markdown().contains(keyway_guide::CHANGE_LABEL));
    // Choosing the defaults explicitly changes nothing either.
    let explicit = GuideRequest {
        sends_pkce: Some(true),
        refresh_sends_secret: Some(true),
        rotates_refresh_tokens: Some(false),
        ..request(&[])
    };
    assert_eq!(changes(&render(crm, &explicit).expect("renders")), []);

    let pkce = "Require Proof Key for Code Exchange (PKCE) Extension for Supported Authorization Flows";
    let no_pkce = render(crm, &GuideRequest { sends_pkce: Some(false), ..request(&[]) }).expect("renders");
    assert_eq!(changes(&no_pkce), [(pkce.to_owned(), "unchecked".to_owned())]);
    let md = no_pkce.to_markdown();
    assert!(md.contains(&format!("- **{}:** Uncheck **Require Proof Key", keyway_guide::CHANGE_LABEL)), "{md}");
    assert_eq!(md.matches(keyway_guide::CHANGE_LABEL).count(), 1, "{md}");
    let html = no_pkce.to_html(false);
    assert!(html.contains(
        "<li class=\"bullet change\" data-state=\"unchecked\"><span class=\"change-label\">Change from the default</span> <span class=\"state off\">Unchecked</span> Uncheck"
    ), "{html}");
    assert!(html.contains("<li class=\"bullet\" data-state=\"checked\"><span class=\"state on\">Checked</span> Keep <strong>Require Secret for Web Server Flow"));
    let json = serde_json::to_string(&no_pkce).expect("serializes");
    assert_eq!(json.matches("\"platform_change\":true").count(), 1);

    let all = GuideRequest {
        sends_pkce: Some(false),
        refresh_sends_secret: Some(false),
        rotates_refresh_tokens: Some(true),
        ..request(&[])
    };
    let names: Vec<String> =
        changes(&render(crm, &all).expect("renders")).into_iter().map(|(n, s)| format!("{n}: {s}")).collect();
    assert_eq!(
        names,
        [
            "Require Secret for Refresh Token Flow: unchecked".to_owned(),
            format!("{pkce}: unchecked"),
            "Enable Refresh Token Rotation: checked".to_owned(),
        ]
    );
}

/// The catalogue names each action's object by its API name and its label (the profile's
/// `objects`), for a front end's groups.
#[test]
fn the_catalogue_labels_objects() {
    let guide = render(bundled_profile("salesforce-service-cloud"), &request(&[])).expect("renders");
    let knowledge = guide.catalogue.iter().find(|a| a.id == "publish_knowledge_article").expect("in the catalogue");
    assert_eq!(knowledge.object.as_deref(), Some("Knowledge__kav"));
    assert_eq!(knowledge.object_label.as_deref(), Some("Knowledge"));
    let comment = guide.catalogue.iter().find(|a| a.id == "create_case_comment").expect("in the catalogue");
    assert_eq!(comment.object_label.as_deref(), Some("Case Comment"));
    // An object the profile gives no label is shown by its name.
    let mut profile = bundled_profile("salesforce-service-cloud").clone();
    profile.objects.shift_remove("WorkOrder");
    let guide = render(&profile, &request(&[])).expect("renders");
    let work = guide.catalogue.iter().find(|a| a.id == "create_work_order").expect("in the catalogue");
    assert_eq!(work.object_label.as_deref(), Some("WorkOrder"));
}

/// A label for an object no action names is a warning that names the likely object (KW0420).
#[test]
fn an_object_label_no_action_uses_is_warned_with_the_likely_name() {
    let text = keyway_tests::MINIMAL
        .replace("list_things: {name: List Things,", "list_things: {object: Thing, name: List Things,")
        .replace("actions:\n", "objects:\n  Thng: {label: Thing record}\nactions:\n");
    let mut loaded = keyway_manifest::load_str("base.yaml", &text);
    keyway_validate::check_loaded(&mut loaded);
    let found: Vec<_> =
        loaded.diagnostics.iter().map(|d| (d.code.as_str(), d.pointer.as_deref(), d.help.as_deref())).collect();
    assert_eq!(
        found,
        [(
            "KW0420",
            Some("/objects/Thng"),
            Some("did you mean `Thing`? Actions name it so (API names are case-sensitive)")
        )]
    );
    // The action is then shown under its bare name.
    let guide = render(&loaded.profiles[0].profile, &request(&[])).expect("renders");
    assert_eq!(guide.catalogue[0].object_label.as_deref(), Some("Thing"));
    let fixed = text.replace("Thng:", "Thing:");
    let mut loaded = keyway_manifest::load_str("base.yaml", &fixed);
    keyway_validate::check_loaded(&mut loaded);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let guide = render(&loaded.profiles[0].profile, &request(&[])).expect("renders");
    assert_eq!(guide.catalogue[0].object_label.as_deref(), Some("Thing record"));
}

/// An API-key profile's guide ends with where the end user finds each credential: the
/// field's label, its help and its documentation link; no scopes to request.
#[test]
fn an_api_key_profile_guide_says_where_to_find_each_key() {
    let text = r#"id: acme
name: Acme
environments:
  production: {label: Production, default: true}
auth:
  kind: api_key
  fields:
    api_key:
      label: API key
      help: In Acme, open **Settings → API** and create a key.
      docs: https://docs.acme.example/api-keys
    account: {label: Account id, secret: false}
  apply:
    headers: {Authorization: "Bearer {{ fields.api_key }}", X-Account: "{{ fields.account }}"}
"#;
    let loaded = keyway_manifest::load_str("acme.yaml", text);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let profile = &loaded.profile("acme").expect("acme").profile;
    let guide = render(profile, &GuideRequest::default()).expect("guide");
    check_json_schema(&guide);
    let section =
        guide.sections.iter().find(|s| s.id == keyway_guide::CREDENTIALS_SECTION).expect("the credentials section");
    let titles: Vec<&str> = section.steps.iter().map(|s| s.title.as_ref()).collect();
    assert_eq!(titles, ["API key", "Account id"]);
    assert_eq!(section.steps[0].text.as_deref(), Some("In Acme, open **Settings → API** and create a key."));
    assert_eq!(section.steps[0].items[0].text, "[Acme's instructions](<https://docs.acme.example/api-keys>)");
    let markdown = guide.to_markdown();
    assert!(!markdown.contains("Scopes to request"), "{markdown}");
    assert!(markdown.contains("## Find your Acme credentials"), "{markdown}");
}
