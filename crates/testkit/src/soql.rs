//! A deliberately small SOQL and SOSL reader for the REST API's `query` and `search`.
//!
//! SOQL: `SELECT f1, f2 FROM Object [WHERE Field = value [AND Field != value]...] [LIMIT n]`,
//! keywords in any case, values `'text'` (with Salesforce's backslash escapes), numbers,
//! `true`, `false` and `null`. SOSL: `FIND {text} [IN word FIELDS] [RETURNING Object, ...]
//! [LIMIT n]`. Anything else is refused with a message, never a panic: the input is capped
//! ([`MAX_QUERY_CHARS`]) and read in one pass, so no input costs more than linear time.

/// Salesforce's own cap on a SOQL statement's length.
pub(crate) const MAX_QUERY_CHARS: usize = 100_000;

/// A parsed `SELECT`.
#[derive(Debug, PartialEq)]
pub(crate) struct Query {
    /// The selected fields, as written.
    pub(crate) fields: Vec<String>,
    /// The object after `FROM`, as written.
    pub(crate) object: String,
    /// `WHERE` conditions, all of which must hold.
    pub(crate) conditions: Vec<Condition>,
    pub(crate) limit: Option<u64>,
}

/// `Field = value` or `Field != value`.
#[derive(Debug, PartialEq)]
pub(crate) struct Condition {
    pub(crate) field: String,
    pub(crate) negated: bool,
    pub(crate) value: Literal,
}

#[derive(Debug, PartialEq)]
pub(crate) enum Literal {
    Text(String),
    Number(f64),
    Boolean(bool),
    Null,
}

impl Literal {
    /// Whether a stored field value (absent: `None`) equals this literal, as SOQL compares.
    pub(crate) fn matches(&self, stored: Option<&serde_json::Value>) -> bool {
        use serde_json::Value;
        match (self, stored) {
            (Literal::Null, None | Some(Value::Null)) => true,
            (Literal::Text(text), Some(Value::String(stored))) => text == stored,
            (Literal::Number(number), Some(Value::Number(stored))) => stored.as_f64() == Some(*number),
            (Literal::Boolean(boolean), Some(Value::Bool(stored))) => boolean == stored,
            _ => false,
        }
    }
}

/// A parsed `FIND`.
#[derive(Debug, PartialEq)]
pub(crate) struct Search {
    /// The text between the braces, without `*` wildcards.
    pub(crate) text: String,
    /// The objects after `RETURNING`; empty means every object.
    pub(crate) objects: Vec<String>,
    pub(crate) limit: Option<u64>,
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Comma,
    Equals,
    NotEquals,
    Text(String),
    Number(String),
    /// `{...}`: SOSL's search text.
    Braced(String),
}

fn tokenize(input: &str) -> Result<Vec<Token>, String> {
    if input.chars().count() > MAX_QUERY_CHARS {
        return Err(format!("the query is longer than {MAX_QUERY_CHARS} characters"));
    }
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            ',' => {
                chars.next();
                tokens.push(Token::Comma);
            }
            '=' => {
                chars.next();
                tokens.push(Token::Equals);
            }
            '!' => {
                chars.next();
                if chars.next() != Some('=') {
                    return Err("unexpected token: '!'".to_owned());
                }
                tokens.push(Token::NotEquals);
            }
            '\'' => {
                chars.next();
                tokens.push(Token::Text(read_quoted(&mut chars)?));
            }
            '{' => {
                chars.next();
                tokens.push(Token::Braced(read_braced(&mut chars)?));
            }
            c if c.is_ascii_digit() || c == '-' || c == '.' => {
                let mut number = String::new();
                while let Some(&c) = chars.peek().filter(|c| c.is_ascii_digit() || matches!(c, '-' | '.')) {
                    number.push(c);
                    chars.next();
                }
                tokens.push(Token::Number(number));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut word = String::new();
                while let Some(&c) = chars.peek().filter(|c| c.is_ascii_alphanumeric() || **c == '_') {
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
            other => return Err(format!("unexpected token: '{}'", other.escape_default())),
        }
    }
    Ok(tokens)
}

/// A `'...'` literal after its opening quote, with SOQL's escapes.
fn read_quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String, String> {
    let mut text = String::new();
    loop {
        match chars.next() {
            None => return Err("unterminated string literal".to_owned()),
            Some('\'') => return Ok(text),
            Some('\\') => match chars.next() {
                Some(c @ ('\'' | '"' | '\\' | '_' | '%')) => text.push(c),
                Some('n') => text.push('\n'),
                Some('r') => text.push('\r'),
                Some('t') => text.push('\t'),
                Some('b') => text.push('\u{8}'),
                Some('f') => text.push('\u{c}'),
                _ => return Err("invalid escape sequence in a string literal".to_owned()),
            },
            Some(c) => text.push(c),
        }
    }
}

/// SOSL's `{...}` after its opening brace (`\}` and `\\` escape).
fn read_braced(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String, String> {
    let mut text = String::new();
    loop {
        match chars.next() {
            None => return Err("unterminated search text: a '}' is missing".to_owned()),
            Some('}') => return Ok(text),
            Some('\\') => match chars.next() {
                Some(c) => text.push(c),
                None => return Err("unterminated search text: a '}' is missing".to_owned()),
            },
            Some(c) => text.push(c),
        }
    }
}

/// Reads tokens front to back; every method refuses rather than assumes.
struct Reader {
    tokens: std::vec::IntoIter<Token>,
    peeked: Option<Token>,
}

impl Reader {
    fn new(tokens: Vec<Token>) -> Reader {
        let mut tokens = tokens.into_iter();
        let peeked = tokens.next();
        Reader { tokens, peeked }
    }

    fn next(&mut self) -> Option<Token> {
        std::mem::replace(&mut self.peeked, self.tokens.next())
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        matches!(&self.peeked, Some(Token::Word(word)) if word.eq_ignore_ascii_case(keyword))
    }

    fn keyword(&mut self, keyword: &str) -> Result<(), String> {
        if self.at_keyword(keyword) {
            self.next();
            Ok(())
        } else {
            Err(format!("expected {keyword}, found {}", describe(self.peeked.as_ref())))
        }
    }

    fn name(&mut self, what: &str) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(word)) => Ok(word),
            other => Err(format!("expected {what}, found {}", describe(other.as_ref()))),
        }
    }

    fn names(&mut self, what: &str) -> Result<Vec<String>, String> {
        let mut names = vec![self.name(what)?];
        while self.peeked == Some(Token::Comma) {
            self.next();
            names.push(self.name(what)?);
        }
        Ok(names)
    }

    fn optional_limit(&mut self) -> Result<Option<u64>, String> {
        if !self.at_keyword("LIMIT") {
            return Ok(None);
        }
        self.next();
        match self.next() {
            Some(Token::Number(number)) => number.parse().map(Some).map_err(|_| format!("invalid LIMIT: {number}")),
            other => Err(format!("expected a number after LIMIT, found {}", describe(other.as_ref()))),
        }
    }

    fn end(&mut self) -> Result<(), String> {
        match self.next() {
            None => Ok(()),
            Some(token) => Err(format!("unexpected token: {}", describe(Some(&token)))),
        }
    }
}

fn describe(token: Option<&Token>) -> String {
    match token {
        None => "the end of the query".to_owned(),
        Some(Token::Word(word)) => format!("'{word}'"),
        Some(Token::Comma) => "','".to_owned(),
        Some(Token::Equals) => "'='".to_owned(),
        Some(Token::NotEquals) => "'!='".to_owned(),
        Some(Token::Text(_)) => "a string literal".to_owned(),
        Some(Token::Number(number)) => format!("'{number}'"),
        Some(Token::Braced(_)) => "'{'".to_owned(),
    }
}

/// Parses a `SELECT`; `Err` carries the message of a `MALFORMED_QUERY` answer.
pub(crate) fn parse_query(input: &str) -> Result<Query, String> {
    let mut reader = Reader::new(tokenize(input)?);
    reader.keyword("SELECT")?;
    let fields = reader.names("a field name")?;
    for (i, field) in fields.iter().enumerate() {
        if fields[..i].iter().any(|earlier| earlier.eq_ignore_ascii_case(field)) {
            return Err(format!("duplicate field selected: {field}"));
        }
    }
    reader.keyword("FROM")?;
    let object = reader.name("an object name")?;
    let mut conditions = Vec::new();
    if reader.at_keyword("WHERE") {
        reader.next();
        loop {
            let field = reader.name("a field name")?;
            let negated = match reader.next() {
                Some(Token::Equals) => false,
                Some(Token::NotEquals) => true,
                other => return Err(format!("expected = or !=, found {}", describe(other.as_ref()))),
            };
            let value = match reader.next() {
                Some(Token::Text(text)) => Literal::Text(text),
                Some(Token::Number(number)) => {
                    Literal::Number(number.parse().map_err(|_| format!("invalid number: {number}"))?)
                }
                Some(Token::Word(word)) if word.eq_ignore_ascii_case("true") => Literal::Boolean(true),
                Some(Token::Word(word)) if word.eq_ignore_ascii_case("false") => Literal::Boolean(false),
                Some(Token::Word(word)) if word.eq_ignore_ascii_case("null") => Literal::Null,
                other => return Err(format!("expected a value, found {}", describe(other.as_ref()))),
            };
            conditions.push(Condition { field, negated, value });
            if !reader.at_keyword("AND") {
                break;
            }
            reader.next();
        }
    }
    let limit = reader.optional_limit()?;
    reader.end()?;
    Ok(Query { fields, object, conditions, limit })
}

/// Parses a `FIND`; `Err` carries the message of a `MALFORMED_SEARCH` answer.
pub(crate) fn parse_search(input: &str) -> Result<Search, String> {
    let mut reader = Reader::new(tokenize(input)?);
    reader.keyword("FIND")?;
    let text = match reader.next() {
        Some(Token::Braced(text)) => text.replace('*', "").trim().to_owned(),
        other => return Err(format!("expected {{search text}}, found {}", describe(other.as_ref()))),
    };
    if text.is_empty() {
        return Err("the search text is empty".to_owned());
    }
    if reader.at_keyword("IN") {
        reader.next();
        reader.name("a search group (ALL, NAME, EMAIL, PHONE)")?;
        reader.keyword("FIELDS")?;
    }
    let objects = if reader.at_keyword("RETURNING") {
        reader.next();
        reader.names("an object name")?
    } else {
        Vec::new()
    };
    let limit = reader.optional_limit()?;
    reader.end()?;
    Ok(Search { text, objects, limit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_select_where_and_limit() {
        let query = parse_query("select Id, Subject FROM Case where Status = 'New' and IsEscalated != true LIMIT 5")
            .expect("parses");
        assert_eq!(query.fields, ["Id", "Subject"]);
        assert_eq!(query.object, "Case");
        assert_eq!(
            query.conditions,
            [
                Condition { field: "Status".into(), negated: false, value: Literal::Text("New".into()) },
                Condition { field: "IsEscalated".into(), negated: true, value: Literal::Boolean(true) },
            ]
        );
        assert_eq!(query.limit, Some(5));
        let plain = parse_query("SELECT Id FROM Account").expect("parses");
        assert_eq!((plain.conditions.len(), plain.limit), (0, None));
    }

    #[test]
    fn string_literals_keep_their_escapes() {
        let query = parse_query(r"SELECT Id FROM Case WHERE Subject = 'it\'s a \\ test\n'").expect("parses");
        assert_eq!(query.conditions[0].value, Literal::Text("it's a \\ test\n".into()));
    }

    #[test]
    fn hostile_queries_are_refused_not_panicked_on() {
        let long = format!("SELECT Id FROM Case WHERE Subject = '{}'", "a".repeat(MAX_QUERY_CHARS));
        let deep = "(".repeat(10_000);
        let duplicate_fields = format!("SELECT {} FROM Case", ["Id"; 2].join(","));
        let hostile = [
            "",
            "SELECT",
            "SELECT FROM Case",
            "SELECT Id FROM",
            "SELECT Id, FROM Case",
            "SELECT Id FROM Case WHERE",
            "SELECT Id FROM Case WHERE Status = ",
            "SELECT Id FROM Case WHERE Status = 'open",
            "SELECT Id FROM Case WHERE Status = 'bad \\q escape'",
            "SELECT Id FROM Case WHERE Status 'x'",
            "SELECT Id FROM Case LIMIT",
            "SELECT Id FROM Case LIMIT -1",
            "SELECT Id FROM Case LIMIT 99999999999999999999999",
            "SELECT Id FROM Case LIMIT 1 LIMIT 2",
            "SELECT Id FROM Case WHERE Amount = 1.2.3",
            "SELECT Id FROM Case; DELETE FROM Case",
            "SELECT Id FROM Case WHERE Status = 'x' OR Status = 'y'",
            "SELECT Id FROM Case ORDER BY Id",
            "SELECT Account.Name FROM Contact",
            "SELECT Id FROM Case WHERE Status ! 'x'",
            "SELECT \u{0} FROM Case",
            "SELECT Id FROM Case WHERE Subject = '\\",
            "SÉLECT Id FROM Case",
            "DELETE Case",
            &deep,
            &long,
            &duplicate_fields,
        ];
        for input in hostile {
            assert!(parse_query(input).is_err(), "accepted: {:.80}", input);
        }
    }

    #[test]
    fn reads_find_and_refuses_broken_searches() {
        let search = parse_search("FIND {printer*} IN ALL FIELDS RETURNING Case, WorkOrder LIMIT 10").expect("parses");
        assert_eq!(
            search,
            Search { text: "printer".into(), objects: vec!["Case".into(), "WorkOrder".into()], limit: Some(10) }
        );
        assert_eq!(parse_search("find {a\\}b}").expect("parses").text, "a}b");
        for input in
            ["", "FIND", "FIND {", "FIND {}", "FIND {x} IN", "FIND {x} RETURNING", "FIND {x} junk", "FIND {x\\"]
        {
            assert!(parse_search(input).is_err(), "accepted: {input}");
        }
    }

    #[test]
    fn literals_compare_like_soql() {
        use serde_json::json;
        assert!(Literal::Null.matches(None));
        assert!(Literal::Null.matches(Some(&json!(null))));
        assert!(!Literal::Null.matches(Some(&json!("x"))));
        assert!(Literal::Number(5.0).matches(Some(&json!(5))));
        assert!(!Literal::Text("5".into()).matches(Some(&json!(5))));
        assert!(Literal::Boolean(false).matches(Some(&json!(false))));
    }
}
