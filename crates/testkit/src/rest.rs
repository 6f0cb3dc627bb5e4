//! The Salesforce-like REST API under `/services/data/vNN.N/`: sObject records (create, read,
//! update, delete), a minimal SOQL `query`, SOSL `search` and `parameterizedSearch`, and the few
//! other resources the bundled profiles' actions call. Records live in memory ([`Records`]);
//! authentication and rate limits are decided by the caller (`State::api`) before [`answer`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::http::header::{ALLOW, RETRY_AFTER};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::server::json_response;
use crate::soql;
use crate::{ApiRateLimit, RateLimitAnswer};

/// An object type the API knows: every object the bundled profiles' actions touch, with the
/// key prefix Salesforce gives its record ids.
pub(crate) struct SObjectType {
    pub(crate) name: &'static str,
    label: &'static str,
    key_prefix: &'static str,
    /// Fields a new record starts with, as Salesforce's defaults would set them.
    defaults: &'static [(&'static str, &'static str)],
}

pub(crate) const SOBJECT_TYPES: &[SObjectType] = &[
    SObjectType { name: "Account", label: "Account", key_prefix: "001", defaults: &[] },
    SObjectType { name: "Contact", label: "Contact", key_prefix: "003", defaults: &[] },
    SObjectType { name: "Lead", label: "Lead", key_prefix: "00Q", defaults: &[("Status", "Open - Not Contacted")] },
    SObjectType { name: "Opportunity", label: "Opportunity", key_prefix: "006", defaults: &[] },
    SObjectType { name: "Task", label: "Task", key_prefix: "00T", defaults: &[("Status", "Not Started")] },
    SObjectType { name: "User", label: "User", key_prefix: "005", defaults: &[] },
    SObjectType { name: "FeedItem", label: "Feed Item", key_prefix: "0D5", defaults: &[] },
    SObjectType { name: "Case", label: "Case", key_prefix: "500", defaults: &[("Status", "New")] },
    SObjectType { name: "CaseComment", label: "Case Comment", key_prefix: "00a", defaults: &[] },
    SObjectType { name: "Entitlement", label: "Entitlement", key_prefix: "550", defaults: &[] },
    SObjectType {
        name: "Knowledge__kav",
        label: "Knowledge",
        key_prefix: "ka0",
        defaults: &[("PublishStatus", "Draft")],
    },
    SObjectType { name: "ServiceContract", label: "Service Contract", key_prefix: "810", defaults: &[] },
    SObjectType { name: "WorkOrder", label: "Work Order", key_prefix: "0WO", defaults: &[] },
];

/// Child relationships readable as `sobjects/{Parent}/{id}/{Relationship}`: (parent, name,
/// child object, the child's field holding the parent's id).
const CHILD_RELATIONSHIPS: &[(&str, &str, &str, &str)] = &[
    ("Case", "CaseComments", "CaseComment", "ParentId"),
    ("Case", "WorkOrders", "WorkOrder", "CaseId"),
    ("Account", "Contacts", "Contact", "AccountId"),
    ("Account", "Opportunities", "Opportunity", "AccountId"),
    ("Account", "Cases", "Case", "AccountId"),
];

/// Object names in URLs and queries are case-insensitive, as in Salesforce.
pub(crate) fn sobject_type(name: &str) -> Option<&'static SObjectType> {
    SOBJECT_TYPES.iter().find(|t| t.name.eq_ignore_ascii_case(name))
}

/// Stored records stop at this many, so a runaway test fails with `STORAGE_LIMIT_EXCEEDED`
/// instead of exhausting memory.
const MAX_RECORDS: usize = 100_000;
/// And at this many bytes of JSON in all (a benchmark posting 1 MiB bodies stops at 64).
const MAX_STORED_BYTES: usize = 64 << 20;
/// Deleted ids remembered for `ENTITY_IS_DELETED`; older deletions are forgotten (then 404).
const MAX_REMEMBERED_DELETIONS: usize = 100_000;
/// The search answer's cap, Salesforce's default for SOSL.
const MAX_SEARCH_RESULTS: usize = 2_000;

struct Record {
    fields: Map<String, Value>,
    /// The fields' size as JSON, counted against [`MAX_STORED_BYTES`].
    size: usize,
}

/// Every record, by object and id (ids sort in creation order: see [`Records::new_id`]).
#[derive(Default)]
pub(crate) struct Records {
    by_type: BTreeMap<&'static str, BTreeMap<String, Record>>,
    deleted: BTreeSet<String>,
    next_seq: u64,
    count: usize,
    stored_bytes: usize,
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Salesforce's 18-character id: the 15-character id and three characters that encode which
/// of its letters are capitals, five at a time (so the id survives case-insensitive systems).
fn with_checksum(id15: &str) -> String {
    const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let mut id = id15.to_owned();
    for chunk in id15.as_bytes().chunks(5) {
        let flags: usize =
            chunk.iter().enumerate().filter(|(_, b)| b.is_ascii_uppercase()).map(|(i, _)| 1usize << i).sum();
        id.push(char::from(SUFFIX.get(flags).copied().unwrap_or(b'A')));
    }
    id
}

/// The 18-character form of an id given in either form; `None` if it cannot be one.
fn normalise_id(id: &str) -> Option<String> {
    if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    match id.len() {
        15 => Some(with_checksum(id)),
        18 => Some(id.to_owned()),
        _ => None,
    }
}

fn json_size(value: &Map<String, Value>) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing to a counter cannot fail; a failure would only undercount.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

impl Records {
    /// `prefix` + instance `5g` + `0` + nine base-62 digits of a sequence, then the checksum.
    fn new_id(&mut self, sobject: &SObjectType) -> String {
        self.next_seq += 1;
        let mut digits = [b'0'; 9];
        let mut rest = self.next_seq;
        for digit in digits.iter_mut().rev() {
            *digit = BASE62[(rest % 62) as usize];
            rest /= 62;
        }
        let id15 = format!("{}5g0{}", sobject.key_prefix, String::from_utf8_lossy(&digits));
        with_checksum(&id15)
    }

    fn room_for(&self, extra_records: usize, extra_bytes: usize) -> bool {
        self.count.saturating_add(extra_records) <= MAX_RECORDS
            && self.stored_bytes.saturating_add(extra_bytes) <= MAX_STORED_BYTES
    }

    /// Creates a record of `object` from checked `fields` (defaults first); its id.
    pub(crate) fn create(&mut self, object: &str, fields: Map<String, Value>) -> Result<String, ApiError> {
        let sobject = sobject_type(object).ok_or_else(not_found)?;
        let mut record: Map<String, Value> =
            sobject.defaults.iter().map(|(name, value)| ((*name).to_owned(), json!(value))).collect();
        merge_fields(&mut record, fields);
        let size = json_size(&record);
        if !self.room_for(1, size) {
            return Err(storage_limit_exceeded());
        }
        let id = self.new_id(sobject);
        self.by_type.entry(sobject.name).or_default().insert(id.clone(), Record { fields: record, size });
        self.count += 1;
        self.stored_bytes += size;
        Ok(id)
    }

    /// Creates a record from a JSON value as a test would seed one (the same checks as `POST`).
    pub(crate) fn create_from_value(&mut self, object: &str, fields: Value) -> Result<String, String> {
        let sobject = sobject_type(object).ok_or_else(|| format!("unknown object: {object}"))?;
        let fields = match check_fields(sobject, fields) {
            Ok(fields) => fields,
            Err(error) => return Err(error.message),
        };
        self.create(sobject.name, fields).map_err(|error| error.message)
    }

    /// The calling user exists as a `User` record, as every API user does in an org.
    pub(crate) fn ensure_user(&mut self, user_id: &str, username: &str) {
        let users = self.by_type.entry("User").or_default();
        if !users.contains_key(user_id) && self.count < MAX_RECORDS {
            let name = username.split('@').next().unwrap_or_default();
            let mut fields = Map::new();
            fields.insert("Username".into(), json!(username));
            fields.insert("Email".into(), json!(username));
            fields.insert("Name".into(), json!(name));
            fields.insert("IsActive".into(), json!(true));
            let size = json_size(&fields);
            users.insert(user_id.to_owned(), Record { fields, size });
            self.count += 1;
            self.stored_bytes += size;
        }
    }

    fn get(&self, sobject: &SObjectType, id: &str) -> Option<(&str, &Map<String, Value>)> {
        let id = normalise_id(id)?;
        let (id, record) = self.by_type.get(sobject.name)?.get_key_value(&id)?;
        Some((id.as_str(), &record.fields))
    }

    fn update(&mut self, sobject: &SObjectType, id: &str, fields: Map<String, Value>) -> Result<(), ApiError> {
        let Some(id) = normalise_id(id) else { return Err(not_found_id(id)) };
        let stored_bytes = self.stored_bytes;
        let Some(record) = self.by_type.get_mut(sobject.name).and_then(|records| records.get_mut(&id)) else {
            return Err(self.missing(&id));
        };
        let mut merged = record.fields.clone();
        merge_fields(&mut merged, fields);
        let size = json_size(&merged);
        let new_total = stored_bytes.saturating_sub(record.size).saturating_add(size);
        if new_total > MAX_STORED_BYTES {
            return Err(storage_limit_exceeded());
        }
        *record = Record { fields: merged, size };
        self.stored_bytes = new_total;
        Ok(())
    }

    fn delete(&mut self, sobject: &SObjectType, id: &str) -> Result<(), ApiError> {
        let Some(id) = normalise_id(id) else { return Err(not_found_id(id)) };
        let Some(record) = self.by_type.get_mut(sobject.name).and_then(|records| records.remove(&id)) else {
            return Err(self.missing(&id));
        };
        self.count -= 1;
        self.stored_bytes = self.stored_bytes.saturating_sub(record.size);
        if self.deleted.len() < MAX_REMEMBERED_DELETIONS {
            self.deleted.insert(id);
        }
        Ok(())
    }

    /// The answer for an id that is not (or no longer) there.
    fn missing(&self, id: &str) -> ApiError {
        if self.deleted.contains(id) {
            ApiError::new(StatusCode::NOT_FOUND, "ENTITY_IS_DELETED", "entity is deleted")
        } else {
            not_found()
        }
    }

    /// The records of `object` in creation order, as `GET sobjects/{object}/{id}` shows them.
    pub(crate) fn list(&self, object: &str, version: &str) -> Vec<Value> {
        let Some(sobject) = sobject_type(object) else { return Vec::new() };
        self.iter(sobject).map(|(id, fields)| full_record(sobject, version, id, fields)).collect()
    }

    fn iter<'a>(&'a self, sobject: &SObjectType) -> impl Iterator<Item = (&'a str, &'a Map<String, Value>)> + 'a {
        self.by_type.get(sobject.name).into_iter().flatten().map(|(id, record)| (id.as_str(), &record.fields))
    }

    /// The fields seen on any record of `sobject`, for its describe.
    fn field_names(&self, sobject: &SObjectType) -> BTreeSet<&str> {
        self.iter(sobject).flat_map(|(_, fields)| fields.keys().map(String::as_str)).collect()
    }
}

/// Sets `fields` on `record`, matching existing names case-insensitively (as Salesforce's
/// field names are), so `subject` updates `Subject`.
fn merge_fields(record: &mut Map<String, Value>, fields: Map<String, Value>) {
    for (name, value) in fields {
        let existing = record.keys().find(|key| key.eq_ignore_ascii_case(&name)).cloned();
        record.insert(existing.unwrap_or(name), value);
    }
}

/// A field's value by name, case-insensitively; `Id` is the record's id.
fn field<'a>(id: &'a str, fields: &'a Map<String, Value>, name: &str) -> (Option<&'a str>, Option<Value>) {
    if name.eq_ignore_ascii_case("Id") {
        return (Some("Id"), Some(json!(id)));
    }
    fields
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map_or((None, None), |(key, value)| (Some(key.as_str()), Some(value.clone())))
}

fn attributes(sobject: &SObjectType, version: &str, id: &str) -> Value {
    json!({"type": sobject.name, "url": format!("/services/data/{version}/sobjects/{}/{id}", sobject.name)})
}

fn full_record(sobject: &SObjectType, version: &str, id: &str, fields: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    out.insert("attributes".into(), attributes(sobject, version, id));
    out.insert("Id".into(), json!(id));
    out.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
    Value::Object(out)
}

/// A record with only the `selected` fields, named as stored (as written when unset).
fn selected_record(
    sobject: &SObjectType,
    version: &str,
    id: &str,
    fields: &Map<String, Value>,
    selected: &[String],
) -> Value {
    let mut out = Map::new();
    out.insert("attributes".into(), attributes(sobject, version, id));
    for name in selected {
        let (stored_name, value) = field(id, fields, name);
        out.insert(stored_name.unwrap_or(name).to_owned(), value.unwrap_or(Value::Null));
    }
    Value::Object(out)
}

// ---- answers ----

/// Salesforce's REST error shape: a list of `{message, errorCode}`.
pub(crate) fn sf_error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(status, &json!([{"message": message, "errorCode": code}]))
}

/// An error answer not yet rendered (a `Response` is too large to pass around in `Result`s).
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }
}

impl From<ApiError> for Response {
    fn from(error: ApiError) -> Response {
        sf_error(error.status, error.code, &error.message)
    }
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "The requested resource does not exist")
}

fn not_found_id(id: &str) -> ApiError {
    let message = format!("Provided external ID field does not exist or is not accessible: {id}");
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
}

fn storage_limit_exceeded() -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "STORAGE_LIMIT_EXCEEDED", "storage limit exceeded")
}

fn json_parser_error(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", message)
}

fn method_not_allowed(method: &str, allowed: &'static str) -> Response {
    let message = format!("HTTP Method '{method}' not allowed. Allowed are {allowed}");
    let mut response = sf_error(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", &message);
    response.headers_mut().insert(ALLOW, HeaderValue::from_static(allowed));
    response
}

fn no_content() -> Response {
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// The body as JSON; `Err` is the `JSON_PARSER_ERROR` answer.
fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| json_parser_error(format!("Unexpected character in the JSON body: {e}")))
}

/// A record body: a JSON object of field names (identifiers) to scalar values; `attributes`
/// (which Salesforce ignores) dropped; `Id` refused as Salesforce refuses it.
fn check_fields(sobject: &SObjectType, body: Value) -> Result<Map<String, Value>, ApiError> {
    let Value::Object(mut fields) = body else {
        let message =
            format!("Cannot deserialize instance of {} from a JSON value that is not an object", sobject.name);
        return Err(json_parser_error(message));
    };
    fields.remove("attributes");
    for (name, value) in &fields {
        let identifier = name.len() <= 80
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !identifier {
            let message = format!("No such column '{name}' on sobject of type {}", sobject.name);
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "INVALID_FIELD", message));
        }
        if name.eq_ignore_ascii_case("Id") {
            let message = "Unable to create/update fields: Id. Please check the security settings of this field and verify that it is read/write for your profile or permission set.";
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "INVALID_FIELD_FOR_INSERT_UPDATE", message));
        }
        if value.is_object() || value.is_array() {
            let message =
                format!("Cannot deserialize instance of {} from a nested value in field {name}", sobject.name);
            return Err(json_parser_error(message));
        }
    }
    Ok(fields)
}

/// One authenticated API call, as [`answer`] needs it.
pub(crate) struct ApiCall<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: &'a [(String, String)],
    pub(crate) body: &'a [u8],
    pub(crate) username: &'a str,
    pub(crate) user_id: &'a str,
}

impl ApiCall<'_> {
    fn query_value(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// `v62.0`-shaped.
fn is_version(segment: &str) -> bool {
    segment.strip_prefix('v').and_then(|rest| rest.split_once('.')).is_some_and(|(major, minor)| {
        !major.is_empty() && !minor.is_empty() && (major.bytes().chain(minor.bytes())).all(|b| b.is_ascii_digit())
    })
}

/// Answers an authenticated call under `/services/data`.
pub(crate) fn answer(records: &mut Records, call: &ApiCall<'_>) -> Response {
    let rest = call.path.strip_prefix("/services/data").unwrap_or_default();
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    if rest.is_empty() {
        return match call.method {
            "GET" => versions(),
            method => method_not_allowed(method, "GET"),
        };
    }
    let (version, resource) = rest.split_once('/').unwrap_or((rest, ""));
    if !is_version(version) {
        return not_found().into();
    }
    // `sobjects/` and `sobjects` are the same resource; an empty segment inside is not.
    let resource = resource.strip_suffix('/').unwrap_or(resource);
    let segments: Vec<&str> = if resource.is_empty() { Vec::new() } else { resource.split('/').collect() };
    if segments.iter().any(|segment| segment.is_empty()) {
        return not_found().into();
    }
    let method = call.method;
    match segments.as_slice() {
        [] => only_get(method, "GET", || resources(version)),
        ["sobjects"] => only_get(method, "GET", || describe_global(version)),
        ["sobjects", object, rest @ ..] => {
            let Some(sobject) = sobject_type(object) else { return not_found().into() };
            sobjects(records, call, version, sobject, rest)
        }
        ["query"] => only_get(method, "GET", || query(records, call, version)),
        ["search"] => only_get(method, "GET", || search(records, call, version)),
        ["parameterizedSearch"] => only_get(method, "GET", || parameterized_search(records, call, version)),
        ["chatter", "users", "me"] => only_get(method, "GET", || chatter_me(call, version)),
        ["chatter", "feed-elements"] => match method {
            "POST" => post_feed_element(records, call, version),
            method => method_not_allowed(method, "POST"),
        },
        ["actions", "standard", "publishKnowledgeArticles"] => match method {
            "POST" => publish_knowledge_articles(records, call),
            method => method_not_allowed(method, "POST"),
        },
        _ => not_found().into(),
    }
}

fn only_get(method: &str, allowed: &'static str, answer: impl FnOnce() -> Response) -> Response {
    if method == "GET" { answer() } else { method_not_allowed(method, allowed) }
}

fn sobjects(
    records: &mut Records,
    call: &ApiCall<'_>,
    version: &str,
    sobject: &SObjectType,
    rest: &[&str],
) -> Response {
    let method = call.method;
    match rest {
        [] => match method {
            "POST" => {
                let fields = match parse_body(call.body).and_then(|body| check_fields(sobject, body)) {
                    Ok(fields) => fields,
                    Err(error) => return error.into(),
                };
                match records.create(sobject.name, fields) {
                    Ok(id) => json_response(StatusCode::CREATED, &json!({"id": id, "success": true, "errors": []})),
                    Err(error) => error.into(),
                }
            }
            "GET" => json_response(
                StatusCode::OK,
                &json!({"objectDescribe": describe_summary(sobject, version), "recentItems": []}),
            ),
            method => method_not_allowed(method, "GET,POST"),
        },
        ["describe"] => only_get(method, "GET", || describe(records, sobject, version)),
        [id] => match method {
            "GET" => match records.get(sobject, id) {
                Some((id, fields)) => json_response(StatusCode::OK, &full_record(sobject, version, id, fields)),
                None if normalise_id(id).is_some() => not_found().into(),
                None => not_found_id(id).into(),
            },
            "PATCH" => {
                let fields = match parse_body(call.body).and_then(|body| check_fields(sobject, body)) {
                    Ok(fields) => fields,
                    Err(error) => return error.into(),
                };
                records.update(sobject, id, fields).map_or_else(Response::from, |()| no_content())
            }
            "DELETE" => records.delete(sobject, id).map_or_else(Response::from, |()| no_content()),
            method => method_not_allowed(method, "GET,PATCH,DELETE"),
        },
        [id, relationship] => only_get(method, "GET", || child_records(records, sobject, version, id, relationship)),
        _ => not_found().into(),
    }
}

fn child_records(records: &Records, parent: &SObjectType, version: &str, id: &str, relationship: &str) -> Response {
    let Some(&(_, _, child, parent_field)) =
        CHILD_RELATIONSHIPS.iter().find(|(p, name, _, _)| *p == parent.name && name.eq_ignore_ascii_case(relationship))
    else {
        return not_found().into();
    };
    let Some((parent_id, _)) = records.get(parent, id) else { return not_found().into() };
    let Some(child) = sobject_type(child) else { return not_found().into() };
    let children: Vec<Value> = records
        .iter(child)
        .filter(|(child_id, fields)| {
            field(child_id, fields, parent_field).1.as_ref().and_then(Value::as_str) == Some(parent_id)
        })
        .map(|(child_id, fields)| full_record(child, version, child_id, fields))
        .collect();
    json_response(StatusCode::OK, &json!({"totalSize": children.len(), "done": true, "records": children}))
}

fn versions() -> Response {
    json_response(StatusCode::OK, &json!([{"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"}]))
}

fn resources(version: &str) -> Response {
    let base = format!("/services/data/{version}");
    let mut map = Map::new();
    for name in ["sobjects", "query", "search", "parameterizedSearch", "chatter", "actions", "limits"] {
        map.insert(name.into(), json!(format!("{base}/{name}")));
    }
    json_response(StatusCode::OK, &Value::Object(map))
}

fn describe_summary(sobject: &SObjectType, version: &str) -> Value {
    let url = format!("/services/data/{version}/sobjects/{}", sobject.name);
    json!({
        "name": sobject.name,
        "label": sobject.label,
        "keyPrefix": sobject.key_prefix,
        "custom": sobject.name.contains("__"),
        "createable": true,
        "updateable": true,
        "deletable": true,
        "queryable": true,
        "searchable": true,
        "urls": {"sobject": url, "describe": format!("{url}/describe"), "rowTemplate": format!("{url}/{{ID}}")},
    })
}

fn describe_global(version: &str) -> Response {
    let sobjects: Vec<Value> = SOBJECT_TYPES.iter().map(|sobject| describe_summary(sobject, version)).collect();
    json_response(StatusCode::OK, &json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects}))
}

fn describe(records: &Records, sobject: &SObjectType, version: &str) -> Response {
    let mut names: BTreeSet<&str> = records.field_names(sobject);
    names.extend(sobject.defaults.iter().map(|(name, _)| *name));
    let mut fields =
        vec![json!({"name": "Id", "type": "id", "nillable": false, "createable": false, "updateable": false})];
    fields.extend(
        names.into_iter().map(
            |name| json!({"name": name, "type": "string", "nillable": true, "createable": true, "updateable": true}),
        ),
    );
    let mut describe = describe_summary(sobject, version);
    if let Some(map) = describe.as_object_mut() {
        map.insert("fields".into(), Value::Array(fields));
    }
    json_response(StatusCode::OK, &describe)
}

fn query(records: &Records, call: &ApiCall<'_>, version: &str) -> Response {
    let malformed = |message: &str| sf_error(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", message);
    let Some(text) = call.query_value("q").filter(|q| !q.trim().is_empty()) else {
        return malformed("A query string has to be specified");
    };
    let parsed = match soql::parse_query(text) {
        Ok(parsed) => parsed,
        Err(message) => return malformed(&message),
    };
    let Some(sobject) = sobject_type(&parsed.object) else {
        let message = format!("sObject type '{}' is not supported.", parsed.object);
        return sf_error(StatusCode::BAD_REQUEST, "INVALID_TYPE", &message);
    };
    let limit = parsed.limit.map_or(usize::MAX, |limit| usize::try_from(limit).unwrap_or(usize::MAX));
    let found: Vec<Value> = records
        .iter(sobject)
        .filter(|(id, fields)| {
            parsed.conditions.iter().all(|condition| {
                let value = field(id, fields, &condition.field).1;
                condition.value.matches(value.as_ref()) != condition.negated
            })
        })
        .take(limit)
        .map(|(id, fields)| selected_record(sobject, version, id, fields, &parsed.fields))
        .collect();
    json_response(StatusCode::OK, &json!({"totalSize": found.len(), "done": true, "records": found}))
}

/// Records of `objects` (every object when empty) with a text field containing `text`, any case.
fn find_records(
    records: &Records,
    version: &str,
    text: &str,
    objects: &[&'static SObjectType],
    limit: usize,
    fields: &[String],
) -> Vec<Value> {
    let needle = text.to_lowercase();
    let objects: Vec<&SObjectType> = if objects.is_empty() { SOBJECT_TYPES.iter().collect() } else { objects.to_vec() };
    let mut found = Vec::new();
    for sobject in objects {
        for (id, record) in records.iter(sobject) {
            if found.len() >= limit {
                return found;
            }
            let hit = record.values().any(|value| value.as_str().is_some_and(|s| s.to_lowercase().contains(&needle)));
            if hit {
                let mut selected = vec!["Id".to_owned()];
                selected.extend(fields.iter().cloned());
                found.push(selected_record(sobject, version, id, record, &selected));
            }
        }
    }
    found
}

fn known_objects(names: &[String]) -> Result<Vec<&'static SObjectType>, String> {
    names
        .iter()
        .map(|name| sobject_type(name).ok_or_else(|| format!("sObject type '{name}' is not supported.")))
        .collect()
}

fn search(records: &Records, call: &ApiCall<'_>, version: &str) -> Response {
    let malformed = |message: &str| sf_error(StatusCode::BAD_REQUEST, "MALFORMED_SEARCH", message);
    let Some(text) = call.query_value("q").filter(|q| !q.trim().is_empty()) else {
        return malformed("A search string has to be specified");
    };
    let parsed = match soql::parse_search(text) {
        Ok(parsed) => parsed,
        Err(message) => return malformed(&message),
    };
    let objects = match known_objects(&parsed.objects) {
        Ok(objects) => objects,
        Err(message) => return sf_error(StatusCode::BAD_REQUEST, "INVALID_TYPE", &message),
    };
    let limit = parsed
        .limit
        .map_or(MAX_SEARCH_RESULTS, |limit| usize::try_from(limit).unwrap_or(usize::MAX).min(MAX_SEARCH_RESULTS));
    let found = find_records(records, version, &parsed.text, &objects, limit, &[]);
    json_response(StatusCode::OK, &json!({"searchRecords": found}))
}

fn parameterized_search(records: &Records, call: &ApiCall<'_>, version: &str) -> Response {
    let Some(text) = call.query_value("q").map(str::trim).filter(|q| !q.is_empty()) else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_SEARCH",
            "No search term found. The search term must be at least 2 characters long.",
        );
    };
    let names: Vec<String> = call.query.iter().filter(|(k, _)| k == "sobject").map(|(_, v)| v.clone()).collect();
    let objects = match known_objects(&names) {
        Ok(objects) => objects,
        Err(message) => return sf_error(StatusCode::BAD_REQUEST, "INVALID_TYPE", &message),
    };
    let fields: Vec<String> = call
        .query_value("fields")
        .map(|fields| {
            fields
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty() && !f.eq_ignore_ascii_case("Id"))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let limit = call
        .query_value("overallLimit")
        .and_then(|n| n.parse().ok())
        .map_or(MAX_SEARCH_RESULTS, |n: usize| n.min(MAX_SEARCH_RESULTS));
    let found = find_records(records, version, &text.replace('*', ""), &objects, limit, &fields);
    json_response(StatusCode::OK, &json!({"searchRecords": found}))
}

fn chatter_me(call: &ApiCall<'_>, version: &str) -> Response {
    let name = call.username.split('@').next().unwrap_or_default();
    json_response(
        StatusCode::OK,
        &json!({
            "id": call.user_id,
            "username": call.username,
            "email": call.username,
            "displayName": name,
            "name": name,
            "type": "User",
            "url": format!("/services/data/{version}/chatter/users/{}", call.user_id),
        }),
    )
}

/// `POST chatter/feed-elements`: `{"feedElementType": "FeedItem", "subjectId": ID or "me",
/// "body": {"messageSegments": [{"type": "Text", "text": ...}]}}`, stored as a `FeedItem`.
fn post_feed_element(records: &mut Records, call: &ApiCall<'_>, version: &str) -> Response {
    let invalid = |message: &str| sf_error(StatusCode::BAD_REQUEST, "INVALID_API_INPUT", message);
    let body = match parse_body(call.body) {
        Ok(body) => body,
        Err(error) => return error.into(),
    };
    if body.get("feedElementType").and_then(Value::as_str) != Some("FeedItem") {
        return invalid("feedElementType must be FeedItem");
    }
    let Some(subject) = body.get("subjectId").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
        return invalid("Missing required input: subjectId");
    };
    let Some(segments) = body.pointer("/body/messageSegments").and_then(Value::as_array) else {
        return invalid("Missing required input: body.messageSegments");
    };
    let text: String = segments.iter().filter_map(|segment| segment.get("text").and_then(Value::as_str)).collect();
    let parent = if subject == "me" { call.user_id } else { subject };
    let mut fields = Map::new();
    fields.insert("ParentId".into(), json!(parent));
    fields.insert("Body".into(), json!(text));
    fields.insert("Type".into(), json!("TextPost"));
    match records.create("FeedItem", fields) {
        Ok(id) => json_response(
            StatusCode::CREATED,
            &json!({
                "id": id,
                "feedElementType": "FeedItem",
                "type": "TextPost",
                "body": {"text": text},
                "parent": {"id": parent},
                "url": format!("/services/data/{version}/chatter/feed-elements/{id}"),
            }),
        ),
        Err(error) => error.into(),
    }
}

/// `POST actions/standard/publishKnowledgeArticles`: each input's article versions become
/// `PublishStatus: Online`. One result per input; 400 if any input failed, as invocable actions answer.
fn publish_knowledge_articles(records: &mut Records, call: &ApiCall<'_>) -> Response {
    let body = match parse_body(call.body) {
        Ok(body) => body,
        Err(error) => return error.into(),
    };
    let Some(inputs) = body.get("inputs").and_then(Value::as_array) else {
        return sf_error(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", "Missing required input: inputs");
    };
    let Some(knowledge) = sobject_type("Knowledge__kav") else { return not_found().into() };
    let mut results = Vec::new();
    let mut all_succeeded = true;
    for input in inputs {
        let ids: Vec<&str> = input
            .get("articleVersionIdList")
            .and_then(Value::as_array)
            .map_or_else(Vec::new, |ids| ids.iter().filter_map(Value::as_str).collect());
        let action_ok = matches!(
            input.get("pubAction").and_then(Value::as_str),
            Some("PUBLISH_ARTICLE" | "PUBLISH_ARTICLE_NEW_VERSION")
        );
        let missing: Vec<&str> = ids.iter().copied().filter(|id| records.get(knowledge, id).is_none()).collect();
        let error = if !action_ok {
            Some(("INVALID_INPUT", "pubAction must be PUBLISH_ARTICLE or PUBLISH_ARTICLE_NEW_VERSION".to_owned()))
        } else if ids.is_empty() {
            Some(("INVALID_INPUT", "articleVersionIdList must list article version ids".to_owned()))
        } else if !missing.is_empty() {
            Some(("NOT_FOUND", format!("No such article versions: {}", missing.join(", "))))
        } else {
            None
        };
        match error {
            Some((code, message)) => {
                all_succeeded = false;
                results.push(json!({"actionName": "publishKnowledgeArticles", "errors": [{"statusCode": code, "message": message}], "isSuccess": false, "outputValues": null}));
            }
            None => {
                for id in ids {
                    let mut status = Map::new();
                    status.insert("PublishStatus".into(), json!("Online"));
                    if let Err(error) = records.update(knowledge, id, status) {
                        return error.into();
                    }
                }
                results.push(json!({"actionName": "publishKnowledgeArticles", "errors": null, "isSuccess": true, "outputValues": {}}));
            }
        }
    }
    let status = if all_succeeded { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    json_response(status, &Value::Array(results))
}

// ---- rate limits ----

/// The provider's API call budget: a window opens at the first call after the last one
/// closed (so a test never straddles a boundary by chance) and lasts `window` on the
/// provider's clock.
#[derive(Default)]
pub(crate) struct Limiter {
    window_started: Option<Duration>,
    used: u64,
}

pub(crate) enum Admission {
    /// Admitted; the headers to add to the answer.
    Admitted(Vec<(HeaderName, HeaderValue)>),
    /// Refused: the whole answer.
    Refused(Response),
}

impl Limiter {
    pub(crate) fn admit(&mut self, limit: Option<&ApiRateLimit>, now: Duration) -> Admission {
        let Some(limit) = limit else { return Admission::Admitted(Vec::new()) };
        let started = match self.window_started {
            Some(started) if now < started.saturating_add(limit.window) => started,
            _ => {
                self.used = 0;
                self.window_started = Some(now);
                now
            }
        };
        let resets_at = started.saturating_add(limit.window);
        // Whole seconds, rounded up, so a client waiting that long always finds the window closed.
        let remaining = resets_at.saturating_sub(now);
        let retry_after = (remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0)).max(1);
        let max = u64::from(limit.requests);
        if self.used >= max {
            return Admission::Refused(refusal(limit, max, retry_after, resets_at));
        }
        self.used += 1;
        Admission::Admitted(usage_headers(limit, self.used, max, resets_at))
    }
}

fn header(name: &'static str, value: String) -> Option<(HeaderName, HeaderValue)> {
    Some((HeaderName::from_static(name), HeaderValue::from_str(&value).ok()?))
}

/// Salesforce reports usage on every answer (`Sforce-Limit-Info`); a generic provider, the
/// `X-RateLimit-*` trio.
fn usage_headers(limit: &ApiRateLimit, used: u64, max: u64, resets_at: Duration) -> Vec<(HeaderName, HeaderValue)> {
    match limit.answer {
        RateLimitAnswer::SalesforceRequestLimit => {
            header("sforce-limit-info", format!("api-usage={used}/{max}")).into_iter().collect()
        }
        RateLimitAnswer::TooManyRequests => [
            header("x-ratelimit-limit", max.to_string()),
            header("x-ratelimit-remaining", max.saturating_sub(used).to_string()),
            header("x-ratelimit-reset", resets_at.as_secs().to_string()),
        ]
        .into_iter()
        .flatten()
        .collect(),
    }
}

fn refusal(limit: &ApiRateLimit, max: u64, retry_after: u64, resets_at: Duration) -> Response {
    let mut response = match limit.answer {
        RateLimitAnswer::SalesforceRequestLimit => {
            sf_error(StatusCode::FORBIDDEN, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        }
        RateLimitAnswer::TooManyRequests => {
            let body = json!({"error": "rate_limited", "message": format!("Too many requests; retry after {retry_after} seconds.")});
            let mut response = json_response(StatusCode::TOO_MANY_REQUESTS, &body);
            if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
                response.headers_mut().insert(RETRY_AFTER, value);
            }
            response
        }
    };
    for (name, value) in usage_headers(limit, max, max, resets_at) {
        response.headers_mut().insert(name, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_prefix_the_length_and_salesforces_checksum() {
        // A published example: 15-character 0015000000Gv7qJ is 0015000000Gv7qJAAR.
        assert_eq!(with_checksum("0015000000Gv7qJ"), "0015000000Gv7qJAAR");
        let mut records = Records::default();
        let first = records.create("Case", Map::new()).ok().expect("created");
        let second = records.create("case", Map::new()).ok().expect("created");
        assert_eq!(first.len(), 18);
        assert!(first.starts_with("500"), "{first}");
        assert!(first < second, "ids sort in creation order");
        assert_eq!(normalise_id(&first[..15]).as_deref(), Some(first.as_str()));
        assert!(normalise_id("../etc/passwd").is_none());
        assert!(matches!(records.create("Nope", Map::new()), Err(ApiError { code: "NOT_FOUND", .. })));
    }

    #[test]
    fn versions_are_recognised() {
        assert!(is_version("v62.0"));
        assert!(!is_version("v62"));
        assert!(!is_version("62.0"));
        assert!(!is_version("v.0"));
        assert!(!is_version("v6x.0"));
    }
}
