//! The REST API under /services/data: records created, read, updated and deleted over loopback,
//! SOQL, errors in Salesforce's shape, expired tokens, both rate-limit answers, and every
//! action of the bundled profiles answered.

use std::time::Duration;

use crate::common::*;
use keyway_testkit::{API_VERSION, ApiRateLimit, Endpoint, Fault, ProviderConfig, RateLimitAnswer, TestProvider};
use oauth2::reqwest::{self, Method};
use serde_json::{Value, json};

/// An answer with its headers.
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a Salesforce error answer: `[{"errorCode": CODE, "message": ...}]`.
    #[track_caller]
    fn assert_sf_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        let json = self.json();
        assert_eq!(json[0]["errorCode"], code, "{}", self.body);
        assert!(json[0]["message"].is_string(), "{}", self.body);
    }
}

async fn call(method: Method, url: &str, token: &str, body: Option<&str>) -> Reply {
    let mut request = http().request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.header("Content-Type", "application/json").body(body.to_owned());
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.expect("body");
    Reply { status, headers, body }
}

/// A provider and a live access token for `user@example.com` with `api`.
async fn api_provider(config: ProviderConfig) -> (TestProvider, String) {
    let provider = start(config).await;
    let token = s(&provider.issue_tokens("user@example.com", "api"), "access_token");
    (provider, token)
}

fn url(provider: &TestProvider, path: &str) -> String {
    format!("{}{path}", provider.api_base_url())
}

fn query_url(provider: &TestProvider, soql: &str) -> String {
    let mut url = oauth2::url::Url::parse(&url(provider, "/query")).expect("URL");
    url.query_pairs_mut().append_pair("q", soql);
    url.to_string()
}

#[tokio::test]
async fn records_are_created_read_updated_and_deleted() {
    let (provider, token) = api_provider(ProviderConfig::default()).await;
    let created = call(
        Method::POST,
        &url(&provider, "/sobjects/Case"),
        &token,
        Some(r#"{"Subject": "Printer on fire", "Priority": "High"}"#),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let json = created.json();
    assert_eq!((&json["success"], &json["errors"]), (&json!(true), &json!([])));
    let id = s(&json, "id");
    assert_eq!(id.len(), 18);
    assert!(id.starts_with("500"), "a Case id has Case's key prefix: {id}");
    let contact = call(Method::POST, &url(&provider, "/sobjects/Contact"), &token, Some(r#"{"LastName": "Ng"}"#)).await;
    assert!(s(&contact.json(), "id").starts_with("003"));

    let record_path = format!("/sobjects/Case/{id}");
    let read = call(Method::GET, &url(&provider, &record_path), &token, None).await;
    assert_eq!(read.status, 200, "{}", read.body);
    let json = read.json();
    assert_eq!(
        json["attributes"],
        json!({"type": "Case", "url": format!("/services/data/{API_VERSION}{record_path}")})
    );
    assert_eq!(json["Id"], id);
    assert_eq!(json["Subject"], "Printer on fire");
    assert_eq!(json["Status"], "New", "a new case starts New, as in Salesforce");

    // PATCH merges (field names in any case), answers 204 with no body
    let patched =
        call(Method::PATCH, &url(&provider, &record_path), &token, Some(r#"{"status": "Escalated", "Origin": "Web"}"#))
            .await;
    assert_eq!((patched.status, patched.body.as_str()), (204, ""));
    let json = call(Method::GET, &url(&provider, &record_path), &token, None).await.json();
    assert_eq!(
        (&json["Status"], &json["Origin"], &json["Subject"]),
        (&json!("Escalated"), &json!("Web"), &json!("Printer on fire"))
    );
    assert!(json.get("status").is_none(), "merged into Status: {json}");
    // the 15-character id and any case of the object name work too
    let short = call(Method::GET, &url(&provider, &format!("/sobjects/case/{}", &id[..15])), &token, None).await;
    assert_eq!((short.status, short.json()["Id"].clone()), (200, json!(id)));
    assert_eq!(provider.records("Case"), vec![json.clone()]);
    assert_eq!(provider.record("Case", &id), Some(json));

    let deleted = call(Method::DELETE, &url(&provider, &record_path), &token, None).await;
    assert_eq!((deleted.status, deleted.body.as_str()), (204, ""));
    call(Method::GET, &url(&provider, &record_path), &token, None).await.assert_sf_error(404, "NOT_FOUND");
    call(Method::DELETE, &url(&provider, &record_path), &token, None).await.assert_sf_error(404, "ENTITY_IS_DELETED");
    call(Method::PATCH, &url(&provider, &record_path), &token, Some("{}"))
        .await
        .assert_sf_error(404, "ENTITY_IS_DELETED");
    assert!(provider.records("Case").is_empty());

    let counts = provider.counts();
    assert_eq!(counts.api_call("POST", &format!("/services/data/{API_VERSION}/sobjects/Case")), 1);
    assert_eq!(counts.api_call("GET", &format!("/services/data/{API_VERSION}{record_path}")), 3);
    assert_eq!(counts.api_call("DELETE", &format!("/services/data/{API_VERSION}{record_path}")), 2);
    assert_eq!(counts.api, counts.api_calls.values().sum::<u64>());

    // what arrived is recorded: headers (Debug redacts the token) and the body's length
    let post = provider.requests().into_iter().find(|r| r.method == "POST").expect("recorded POST");
    assert_eq!(post.header("content-type"), Some("application/json"));
    assert_eq!(post.body_len, r#"{"Subject": "Printer on fire", "Priority": "High"}"#.len());
    assert!(post.form.is_empty(), "a JSON body is not read as a form");
    assert!(!format!("{post:?}").contains(&token));
}

#[tokio::test]
async fn missing_records_unknown_objects_and_bad_bodies_answer_salesforce_errors() {
    let (provider, token) = api_provider(ProviderConfig::default()).await;
    let unknown = call(Method::POST, &url(&provider, "/sobjects/Invoice__c"), &token, Some("{}")).await;
    unknown.assert_sf_error(404, "NOT_FOUND");
    assert_eq!(unknown.json()[0]["message"], "The requested resource does not exist");
    call(Method::GET, &url(&provider, "/sobjects/Nope/001000000000000AAA"), &token, None)
        .await
        .assert_sf_error(404, "NOT_FOUND");
    call(Method::GET, &url(&provider, "/sobjects/Account/001000000000000AAA"), &token, None)
        .await
        .assert_sf_error(404, "NOT_FOUND");
    let malformed_id = call(Method::GET, &url(&provider, "/sobjects/Account/not-an-id"), &token, None).await;
    malformed_id.assert_sf_error(404, "NOT_FOUND");
    assert!(malformed_id.body.contains("not-an-id"), "{}", malformed_id.body);
    call(Method::GET, &url(&provider, "/nothing/here"), &token, None).await.assert_sf_error(404, "NOT_FOUND");
    call(Method::GET, &url(&provider, "/sobjects//x"), &token, None).await.assert_sf_error(404, "NOT_FOUND");
    let no_version =
        call(Method::GET, &format!("{}/services/data/62/sobjects", provider.base_url()), &token, None).await;
    no_version.assert_sf_error(404, "NOT_FOUND");

    let case = url(&provider, "/sobjects/Case");
    for body in [r#"{"Subject": "#, "", "not json", r#"["Subject"]"#, r#""text""#, r#"{"Subject": {"nested": 1}}"#] {
        call(Method::POST, &case, &token, Some(body)).await.assert_sf_error(400, "JSON_PARSER_ERROR");
    }
    call(Method::POST, &case, &token, Some(r#"{"Id": "500000000000000AAA"}"#))
        .await
        .assert_sf_error(400, "INVALID_FIELD_FOR_INSERT_UPDATE");
    call(Method::POST, &case, &token, Some(r#"{"bad name": 1}"#)).await.assert_sf_error(400, "INVALID_FIELD");
    let id = provider.create_record("Case", json!({"Subject": "kept"})).expect("seeded");
    let record = url(&provider, &format!("/sobjects/Case/{id}"));
    call(Method::PATCH, &record, &token, Some("{oops")).await.assert_sf_error(400, "JSON_PARSER_ERROR");
    assert_eq!(provider.record("Case", &id).expect("still there")["Subject"], "kept");
    let put = call(Method::PUT, &record, &token, Some("{}")).await;
    put.assert_sf_error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(put.header("allow"), Some("GET,PATCH,DELETE"));
    assert!(provider.records("Case").len() == 1, "no failed call stored anything");

    // seeding refuses what POST refuses
    assert!(provider.create_record("Nope", json!({})).is_err());
    assert!(provider.create_record("Case", json!(["x"])).is_err());
}

#[tokio::test]
async fn soql_selects_filters_and_limits() {
    let (provider, token) = api_provider(ProviderConfig::default()).await;
    for (subject, status, priority) in [("a", "New", 1), ("b", "Closed", 2), ("c", "New", 3), ("d", "New", 3)] {
        provider
            .create_record("Case", json!({"Subject": subject, "Status": status, "Priority": priority}))
            .expect("seeded");
    }
    let answer = call(
        Method::GET,
        &query_url(&provider, "SELECT Id, Subject FROM Case WHERE Status = 'New' LIMIT 2"),
        &token,
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let json = answer.json();
    assert_eq!((&json["totalSize"], &json["done"]), (&json!(2), &json!(true)));
    let records = json["records"].as_array().expect("records");
    assert_eq!(records.iter().map(|r| r["Subject"].clone()).collect::<Vec<_>>(), [json!("a"), json!("c")]);
    assert_eq!(records[0]["attributes"]["type"], "Case");
    assert!(records[0]["Id"].as_str().is_some_and(|id| id.starts_with("500")));
    assert!(records[0].get("Status").is_none(), "only the selected fields");

    let json = call(
        Method::GET,
        &query_url(&provider, "select subject, Origin from case where Priority = 3 and Subject != 'c'"),
        &token,
        None,
    )
    .await
    .json();
    assert_eq!(json["totalSize"], 1);
    assert_eq!(json["records"][0]["Subject"], "d", "named as stored: {json}");
    assert_eq!(json["records"][0]["Origin"], Value::Null, "an unset field is null");
    let everything = call(Method::GET, &query_url(&provider, "SELECT Id FROM Case"), &token, None).await.json();
    assert_eq!(everything["totalSize"], 4);

    for soql in [
        "SELECT FROM Case",
        "SELECT Id FROM Case WHERE Status = 'New",
        "DELETE FROM Case",
        "SELECT Id FROM Case ORDER BY Id",
        " ",
    ] {
        call(Method::GET, &query_url(&provider, soql), &token, None).await.assert_sf_error(400, "MALFORMED_QUERY");
    }
    // the parser's length cap (100,000 characters, unit-tested) is above what a URI can carry;
    // a long query below it is simply read
    let long = format!("SELECT Id FROM Case WHERE Subject = '{}'", "x".repeat(20_000));
    assert_eq!(call(Method::GET, &query_url(&provider, &long), &token, None).await.json()["totalSize"], 0);
    call(Method::GET, &url(&provider, "/query"), &token, None).await.assert_sf_error(400, "MALFORMED_QUERY");
    call(Method::GET, &query_url(&provider, "SELECT Id FROM Invoice__c"), &token, None)
        .await
        .assert_sf_error(400, "INVALID_TYPE");
}

#[tokio::test]
async fn an_expired_or_unknown_token_is_refused_everywhere_and_changes_nothing() {
    let (provider, token) = api_provider(ProviderConfig::default()).await;
    let id = provider.create_record("Account", json!({"Name": "Acme"})).expect("seeded");
    provider.advance_clock(Duration::from_secs(2 * 3600 + 1));
    let record = url(&provider, &format!("/sobjects/Account/{id}"));
    let calls = [
        (Method::GET, url(&provider, "/"), None),
        (Method::POST, url(&provider, "/sobjects/Account"), Some(r#"{"Name": "x"}"#)),
        (Method::GET, record.clone(), None),
        (Method::PATCH, record.clone(), Some(r#"{"Name": "changed"}"#)),
        (Method::DELETE, record.clone(), None),
        (Method::GET, query_url(&provider, "SELECT Id FROM Account"), None),
    ];
    for (method, url, body) in calls {
        for token in [token.as_str(), "00Dunknown!token"] {
            let answer = call(method.clone(), &url, token, body).await;
            assert_eq!(answer.status, 401, "{method} {url}: {}", answer.body);
            assert_eq!(
                answer.json(),
                json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
            );
        }
    }
    assert_eq!(provider.records("Account").len(), 1);
    assert_eq!(provider.record("Account", &id).expect("kept")["Name"], "Acme");
    // a fresh token (as a refresh would give) is answered again
    let fresh = s(&provider.issue_tokens("user@example.com", "api"), "access_token");
    assert_eq!(call(Method::GET, &record, &fresh, None).await.status, 200);
}

#[tokio::test]
async fn the_salesforce_request_limit_answers_403_until_the_window_closes() {
    let limit = ApiRateLimit {
        requests: 3,
        window: Duration::from_secs(3600),
        answer: RateLimitAnswer::SalesforceRequestLimit,
    };
    let (provider, token) =
        api_provider(ProviderConfig { api_rate_limit: Some(limit), ..ProviderConfig::default() }).await;
    let case = url(&provider, "/sobjects/Case");
    // refused tokens do not use the budget
    assert_eq!(call(Method::GET, &url(&provider, "/"), "bad", None).await.status, 401);
    for used in 1..=3 {
        let answer = call(Method::POST, &case, &token, Some("{}")).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        assert_eq!(answer.header("sforce-limit-info"), Some(format!("api-usage={used}/3").as_str()));
    }
    let refused = call(Method::POST, &case, &token, Some("{}")).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(
        refused.json(),
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    );
    assert_eq!(refused.header("retry-after"), None, "Salesforce sends no Retry-After");
    assert_eq!(provider.records("Case").len(), 3, "the refused call stored nothing");
    provider.advance_clock(Duration::from_secs(3599));
    assert_eq!(call(Method::GET, &url(&provider, "/"), &token, None).await.status, 403);
    provider.advance_clock(Duration::from_secs(1));
    let again = call(Method::GET, &url(&provider, "/"), &token, None).await;
    assert_eq!(again.status, 200, "a new window: {}", again.body);
    assert_eq!(again.header("sforce-limit-info"), Some("api-usage=1/3"));
}

#[tokio::test]
async fn a_generic_rate_limit_answers_429_with_retry_after() {
    let limit = ApiRateLimit { requests: 2, window: Duration::from_secs(60), answer: RateLimitAnswer::TooManyRequests };
    let (provider, token) =
        api_provider(ProviderConfig { api_rate_limit: Some(limit), ..ProviderConfig::default() }).await;
    let root = url(&provider, "/");
    let first = call(Method::GET, &root, &token, None).await;
    assert_eq!((first.header("x-ratelimit-limit"), first.header("x-ratelimit-remaining")), (Some("2"), Some("1")));
    let window_end = provider.now().as_secs() + 60;
    let reset: u64 = first.header("x-ratelimit-reset").and_then(|r| r.parse().ok()).expect("X-RateLimit-Reset");
    assert!(reset <= window_end && reset + 2 >= window_end, "{reset} against {window_end}");
    assert_eq!(call(Method::GET, &root, &token, None).await.status, 200);
    let limited = call(Method::GET, &root, &token, None).await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    let retry_after: u64 = limited.header("retry-after").and_then(|r| r.parse().ok()).expect("Retry-After seconds");
    assert!((59..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    provider.advance_clock(Duration::from_secs(30));
    let later = call(Method::GET, &root, &token, None).await;
    let retry_after: u64 = later.header("retry-after").and_then(|r| r.parse().ok()).expect("Retry-After seconds");
    assert!((29..=30).contains(&retry_after), "the wait shrinks with the clock: {retry_after}");
    provider.advance_clock(Duration::from_secs(30));
    assert_eq!(call(Method::GET, &root, &token, None).await.status, 200);

    // the limit can be lifted mid-test
    provider.update_config(|config| config.api_rate_limit = None);
    for _ in 0..5 {
        assert_eq!(call(Method::GET, &root, &token, None).await.status, 200);
    }
}

#[tokio::test]
async fn injected_faults_still_apply_to_the_api() {
    let (provider, token) = api_provider(ProviderConfig::default()).await;
    provider.inject_faults(Endpoint::Api, [Fault::Status(503), Fault::Status(401)]);
    let case = url(&provider, "/sobjects/Case");
    assert_eq!(call(Method::POST, &case, &token, Some("{}")).await.status, 503);
    assert_eq!(call(Method::POST, &case, &token, Some("{}")).await.status, 401);
    assert!(provider.records("Case").is_empty(), "faulted calls store nothing");
    assert_eq!(call(Method::POST, &case, &token, Some("{}")).await.status, 201);
    assert_eq!(provider.counts().api_call("POST", &format!("/services/data/{API_VERSION}/sobjects/Case")), 3);
}

#[tokio::test]
async fn search_describe_relationships_chatter_and_knowledge_publishing() {
    let (provider, token) = api_provider(ProviderConfig::default()).await;
    let case = provider.create_record("Case", json!({"Subject": "Broken Printer"})).expect("seeded");
    let comment =
        provider.create_record("CaseComment", json!({"ParentId": case, "CommentBody": "On it"})).expect("seeded");
    provider
        .create_record("CaseComment", json!({"ParentId": "500000000000001AAA", "CommentBody": "elsewhere"}))
        .expect("seeded");
    let comments =
        call(Method::GET, &url(&provider, &format!("/sobjects/Case/{case}/CaseComments")), &token, None).await.json();
    assert_eq!((&comments["totalSize"], &comments["records"][0]["Id"]), (&json!(1), &json!(comment)));

    let mut search = oauth2::url::Url::parse(&url(&provider, "/search")).expect("URL");
    search.query_pairs_mut().append_pair("q", "FIND {printer} IN ALL FIELDS RETURNING Case");
    let found = call(Method::GET, search.as_str(), &token, None).await.json();
    assert_eq!(found["searchRecords"][0]["Id"], case);
    let found =
        call(Method::GET, &url(&provider, "/parameterizedSearch?q=printer&sobject=Case&fields=Subject"), &token, None)
            .await
            .json();
    assert_eq!(found["searchRecords"][0]["Subject"], "Broken Printer");
    let found = call(Method::GET, &url(&provider, "/parameterizedSearch?q=nothing&sobject=WorkOrder"), &token, None)
        .await
        .json();
    assert_eq!(found["searchRecords"], json!([]));
    call(Method::GET, &url(&provider, "/search?q=FIND"), &token, None).await.assert_sf_error(400, "MALFORMED_SEARCH");

    let global = call(Method::GET, &url(&provider, "/sobjects"), &token, None).await.json();
    assert!(global["sobjects"].as_array().is_some_and(|all| all.iter().any(|o| o["name"] == "Knowledge__kav")));
    let describe = call(Method::GET, &url(&provider, "/sobjects/Case/describe"), &token, None).await.json();
    assert_eq!(describe["keyPrefix"], "500");
    assert!(describe["fields"].as_array().is_some_and(|f| f.iter().any(|f| f["name"] == "Subject")), "{describe}");

    let me = call(Method::GET, &url(&provider, "/chatter/users/me"), &token, None).await.json();
    assert_eq!(me["username"], "user@example.com");
    let user = call(Method::GET, &url(&provider, &format!("/sobjects/User/{}", s(&me, "id"))), &token, None).await;
    assert_eq!(
        (user.status, user.json()["Username"].clone()),
        (200, json!("user@example.com")),
        "the caller is a User"
    );
    let post = r#"{"feedElementType": "FeedItem", "subjectId": "me", "body": {"messageSegments": [{"type": "Text", "text": "Hello"}]}}"#;
    let posted = call(Method::POST, &url(&provider, "/chatter/feed-elements"), &token, Some(post)).await;
    assert_eq!(posted.status, 201, "{}", posted.body);
    assert_eq!(provider.records("FeedItem")[0]["Body"], "Hello");

    let article =
        provider.create_record("Knowledge__kav", json!({"Title": "Reset", "UrlName": "reset"})).expect("seeded");
    assert_eq!(provider.record("Knowledge__kav", &article).expect("draft")["PublishStatus"], "Draft");
    let publish = json!({"inputs": [{"articleVersionIdList": [article], "pubAction": "PUBLISH_ARTICLE"}]}).to_string();
    let published =
        call(Method::POST, &url(&provider, "/actions/standard/publishKnowledgeArticles"), &token, Some(&publish)).await;
    assert_eq!((published.status, published.json()[0]["isSuccess"].clone()), (200, json!(true)), "{}", published.body);
    assert_eq!(provider.record("Knowledge__kav", &article).expect("online")["PublishStatus"], "Online");
    let online = call(
        Method::GET,
        &query_url(&provider, "SELECT Id, Title FROM Knowledge__kav WHERE PublishStatus = 'Online'"),
        &token,
        None,
    )
    .await;
    assert_eq!(online.json()["totalSize"], 1);
    let unknown = json!({"inputs": [{"articleVersionIdList": ["ka05g0000000000AAA"], "pubAction": "PUBLISH_ARTICLE"}]})
        .to_string();
    let refused =
        call(Method::POST, &url(&provider, "/actions/standard/publishKnowledgeArticles"), &token, Some(&unknown)).await;
    assert_eq!((refused.status, refused.json()[0]["isSuccess"].clone()), (400, json!(false)));
}

/// One action of a bundled profile: (profile, action id, method, path template, object).
/// The profiles are loaded as keyway loads them (`extends` applied), so an inherited action
/// is checked under each profile that offers it.
fn profile_actions() -> Vec<(String, String, String, String, Option<String>)> {
    let dir = keyway_testkit::profiles::bundled_profiles_dir();
    let files = ["salesforce.yaml", "salesforce-service-cloud.yaml"].map(|file| dir.join(file));
    let loaded = keyway_manifest::load_paths(&files);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    assert_eq!(loaded.profiles.len(), 2, "both bundled profiles load");
    let mut actions = Vec::new();
    for profile in loaded.profiles.iter().map(|p| &p.profile) {
        if let Some(api) = &profile.api {
            assert_eq!(
                api.base_url,
                format!("{{{{ token.instance_url }}}}/services/data/{API_VERSION}"),
                "{}",
                profile.id
            );
        }
        for (id, action) in &profile.actions {
            let method = serde_json::to_value(action.method).expect("method");
            actions.push((
                profile.id.clone(),
                id.clone(),
                method.as_str().expect("a method is a string").to_owned(),
                action.path.clone(),
                action.object.clone(),
            ));
        }
    }
    actions
}

/// Fills an action's `{placeholders}` and picks a query and body that a real caller would send.
fn fill(provider: &TestProvider, method: &str, template: &str, object: Option<&str>) -> (String, Option<String>) {
    let segments: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    // The record an `{id}` names is of the object in the path (`sobjects/Case/{id}/CaseComments`).
    let path_object = match segments.as_slice() {
        ["sobjects", object, ..] if !object.starts_with('{') => Some(*object),
        _ => None,
    };
    let target = path_object.or(object).unwrap_or("Account");
    let mut path = template.to_owned();
    if path.contains("{id}") {
        let id = provider.create_record(target, json!({"Name": "seeded"})).expect("seeded");
        path = path.replace("{id}", &id);
    }
    path = path.replace("{sobject}", "Case");
    assert!(!path.contains('{'), "every placeholder filled: {path}");
    let query = match template {
        "/query" => format!("?q={}", form_encode(&format!("SELECT Id, Name FROM {target}"))),
        "/search" => format!("?q={}", form_encode("FIND {seeded}")),
        "/parameterizedSearch" => format!("?q=seeded&sobject={target}"),
        _ => String::new(),
    };
    let body = match (method, template) {
        ("POST", "/chatter/feed-elements") => Some(
            json!({"feedElementType": "FeedItem", "subjectId": "me", "body": {"messageSegments": [{"type": "Text", "text": "hi"}]}})
                .to_string(),
        ),
        ("POST", "/actions/standard/publishKnowledgeArticles") => {
            let article = provider.create_record("Knowledge__kav", json!({"Title": "t"})).expect("seeded");
            Some(json!({"inputs": [{"articleVersionIdList": [article], "pubAction": "PUBLISH_ARTICLE"}]}).to_string())
        }
        ("POST" | "PATCH", _) => Some(json!({"Name": "from the action", "Description": "x"}).to_string()),
        _ => None,
    };
    (format!("{path}{query}"), body)
}

fn form_encode(text: &str) -> String {
    oauth2::url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn every_action_of_the_bundled_profiles_is_answered() {
    let (provider, token) = api_provider(ProviderConfig::default()).await;
    let actions = profile_actions();
    let service_cloud = actions.iter().filter(|(profile, ..)| profile == "salesforce-service-cloud").count();
    assert_eq!(service_cloud, 34, "the Service Cloud profile's actions");
    assert!(actions.len() > service_cloud + 20, "and the CRM profile's: {}", actions.len());
    for (profile, action, method, template, object) in &actions {
        let (path, body) = fill(&provider, method, template, object.as_deref());
        let method = Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let answer = call(method.clone(), &url(&provider, &path), &token, body.as_deref()).await;
        assert!(
            (200..300).contains(&answer.status),
            "{profile} {action}: {method} {path}: {} {}",
            answer.status,
            answer.body
        );
        if method == Method::POST && template.starts_with("/sobjects/") {
            let id = s(&answer.json(), "id");
            let object = object.as_deref().expect("a create names its object");
            assert!(provider.record(object, &id).is_some(), "{action} stored a {object}");
        }
    }
    let counts = provider.counts();
    assert_eq!(counts.api, actions.len() as u64, "one call per action");
}
