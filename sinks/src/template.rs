//! Message templates for the sinks people read (chat titles, ticket summaries and descriptions):
//! text with `{field}` placeholders filled in from a record's JSON.
//!
//! ```text
//! [{severity_id}] {rule_id} on {subject} (team {labels.team|unassigned})
//! ```
//!
//! - `{path}` is a dotted path into the JSON: `{summary}`, `{labels.team}`; a name that is all
//!   digits indexes an array (`{items.0}`). Names are letters, digits, `_` and `-`, so a key that
//!   holds other characters (`.`, `/`, spaces) cannot be reached.
//! - A string is inserted verbatim, a number or bool as written in JSON, an object or array as
//!   compact JSON. A missing field (or `null`) is inserted as the text after `|` in the
//!   placeholder (`{labels.team|-}`), else as the template's missing text (empty unless set with
//!   [`Template::with_missing`]).
//! - `{{` and `}}` are literal braces.
//!
//! Templates are checked once, when the config is read ([`Template::parse`], or deserializing
//! one from a config string): a mistake is a config error naming the character it is at, not a
//! message that renders wrongly at 3 a.m. Rendering never fails.

use std::fmt;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A parsed template; see the [module documentation](self) for the syntax.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    /// The text it was parsed from, shown in `Debug` and [`Template::as_str`].
    source: String,
    parts: Vec<Part>,
    /// Inserted for a missing field whose placeholder has no `|` fallback.
    missing: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Field { path: Vec<String>, fallback: Option<String> },
}

/// Why a template text is not a template, and where: `position` is the 1-based character (not
/// byte) the problem is at.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid template: {message} at character {position}")]
pub struct TemplateError {
    /// The 1-based character index of the problem.
    pub position: usize,
    /// What is wrong, with a hint how to fix it.
    pub message: String,
}

fn error(index: usize, message: impl Into<String>) -> TemplateError {
    TemplateError { position: index + 1, message: message.into() }
}

impl Template {
    /// Parses `text`, or says what is wrong and at which character.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let chars: Vec<char> = text.chars().collect();
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while i < chars.len() {
            match (chars[i], chars.get(i + 1)) {
                ('{', Some('{')) | ('}', Some('}')) => {
                    literal.push(chars[i]);
                    i += 2;
                }
                ('}', _) => return Err(error(i, "`}` without an opening `{` (write `}}` for a literal brace)")),
                ('{', _) => {
                    let open = i;
                    let mut close = open + 1;
                    loop {
                        match chars.get(close) {
                            None => {
                                return Err(error(open, "unclosed `{` (close it with `}`, or write `{{` for a brace)"))
                            }
                            Some('}') => break,
                            Some('{') => return Err(error(close, "`{` inside a placeholder")),
                            Some(_) => close += 1,
                        }
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(placeholder(&chars[open + 1..close], open + 1)?);
                    i = close + 1;
                }
                (c, _) => {
                    literal.push(c);
                    i += 1;
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template { source: text.to_string(), parts, missing: String::new() })
    }

    /// The same template with `missing` inserted for missing fields that have no `|` fallback
    /// (e.g. `-`, so a gap stays visible).
    pub fn with_missing(mut self, missing: impl Into<String>) -> Template {
        self.missing = missing.into();
        self
    }

    /// The text the template was parsed from.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The template filled in from `value`.
    pub fn render(&self, value: &Value) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Field { path, fallback } => match lookup(value, path) {
                    Some(Value::String(text)) => out.push_str(text),
                    // Numbers, bools, objects and arrays: their compact JSON text.
                    Some(other) => out.push_str(&other.to_string()),
                    None => out.push_str(fallback.as_deref().unwrap_or(&self.missing)),
                },
            }
        }
        out
    }
}

/// The placeholder between braces, `chars`, which starts at character index `start`.
fn placeholder(chars: &[char], start: usize) -> Result<Part, TemplateError> {
    let bar = chars.iter().position(|&c| c == '|');
    let (path_chars, fallback) = match bar {
        Some(at) => (&chars[..at], Some(chars[at + 1..].iter().collect::<String>())),
        None => (chars, None),
    };
    if path_chars.is_empty() {
        return Err(error(start.saturating_sub(1), "empty placeholder (name a field, e.g. `{rule_id}`)"));
    }
    let mut path = vec![String::new()];
    for (offset, &c) in path_chars.iter().enumerate() {
        let index = start + offset;
        if c == '.' {
            if path.last().is_some_and(String::is_empty) {
                return Err(error(index, "empty name in a field path (e.g. `{labels.team}`)"));
            }
            path.push(String::new());
        } else if c.is_alphanumeric() || c == '_' || c == '-' {
            if let Some(name) = path.last_mut() {
                name.push(c);
            }
        } else {
            return Err(error(
                index,
                format!("`{c}` in a field path (names are letters, digits, `_` and `-`, joined by `.`)"),
            ));
        }
    }
    if path.last().is_some_and(String::is_empty) {
        return Err(error(start + path_chars.len() - 1, "a field path ends with `.`"));
    }
    Ok(Part::Field { path, fallback })
}

/// The value at `path`, or `None` when a step is missing, not an object or array, or `null`.
fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    let found = path.iter().try_fold(value, |current, name| match current {
        Value::Object(map) => map.get(name),
        Value::Array(items) => name.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })?;
    (!found.is_null()).then_some(found)
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Template").field(&self.source).finish()
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for Template {
    type Err = TemplateError;

    fn from_str(text: &str) -> Result<Template, TemplateError> {
        Template::parse(text)
    }
}

/// From a config string; a bad template is a config error (the loader adds file, line and key).
impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Template, D::Error> {
        let text = String::deserialize(deserializer)?;
        Template::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn render(template: &str, value: &Value) -> String {
        Template::parse(template).unwrap().render(value)
    }

    fn parse_error(template: &str) -> (usize, String) {
        let e = Template::parse(template).unwrap_err();
        (e.position, e.message)
    }

    #[test]
    fn fills_in_fields_and_dotted_paths() {
        let value = json!({"rule_id": "okta.mfa", "labels": {"team": "iam", "on-call": "bob"}, "items": ["a", "b"]});
        assert_eq!(render("[{rule_id}] team {labels.team}", &value), "[okta.mfa] team iam");
        assert_eq!(render("{labels.on-call}/{items.1}", &value), "bob/b");
        assert_eq!(render("no placeholders", &value), "no placeholders");
        assert_eq!(render("", &value), "");
        assert_eq!(render("{rule_id}{rule_id}", &value), "okta.mfaokta.mfa");
    }

    #[test]
    fn renders_each_json_type() {
        let value = json!({"s": "a \"quoted\" <b>", "n": 4, "f": 1.5, "neg": -2, "t": true, "o": {"k": [1, "x"]},
                           "a": [1, 2], "empty": ""});
        assert_eq!(render("{s}", &value), "a \"quoted\" <b>", "strings verbatim");
        assert_eq!(render("{n} {f} {neg} {t}", &value), "4 1.5 -2 true");
        assert_eq!(render("{o}|{a}", &value), r#"{"k":[1,"x"]}|[1,2]"#);
        assert_eq!(render("<{empty}>", &value), "<>", "an empty string is present, not missing");
    }

    #[test]
    fn missing_fields_render_empty_or_the_fallback() {
        let value = json!({"labels": {"team": "iam"}, "n": null, "s": "text"});
        assert_eq!(render("<{nope}>", &value), "<>");
        assert_eq!(render("<{labels.owner}>", &value), "<>");
        assert_eq!(render("<{n}>", &value), "<>", "null counts as missing");
        assert_eq!(render("<{s.deeper}>", &value), "<>", "a path through a string is missing");
        assert_eq!(render("<{labels.owner|-}> <{labels.team|-}>", &value), "<-> <iam>");
        assert_eq!(render("<{x|no owner, yet}>", &value), "<no owner, yet>");
        assert_eq!(render("<{x|}>", &value), "<>");
        let dash = Template::parse("<{x}> <{y|?}>").unwrap().with_missing("-");
        assert_eq!(dash.render(&value), "<-> <?>");
        assert_eq!(render("{labels.team}", &json!("not an object")), "");
    }

    #[test]
    fn doubled_braces_are_literal() {
        let value = json!({"a": 1});
        assert_eq!(render("{{a}} {a} {{{a}}}", &value), "{a} 1 {1}");
        assert_eq!(render("}}{{", &value), "}{");
    }

    #[test]
    fn parse_errors_say_what_and_where() {
        assert_eq!(parse_error("abc {rule_id").0, 5);
        assert!(parse_error("abc {rule_id").1.starts_with("unclosed `{`"));
        assert_eq!(parse_error("{").0, 1);
        assert_eq!(parse_error("ab } c").0, 4);
        assert!(parse_error("ab } c").1.contains("without an opening"));
        assert_eq!(parse_error("{{a}").0, 4, "`{{{{` is literal, so the `}}` is alone");
        assert_eq!(parse_error("x {a{b}").0, 5);
        assert!(parse_error("x {a{b}").1.contains("inside a placeholder"));
        assert_eq!(parse_error("x {}").0, 3);
        assert!(parse_error("x {}").1.starts_with("empty placeholder"));
        assert_eq!(parse_error("{|-}").0, 1);
        assert_eq!(parse_error("{rule id}").0, 6);
        assert!(parse_error("{rule id}").1.starts_with("` ` in a field path"));
        assert_eq!(parse_error("{x:>10}").0, 3);
        assert_eq!(parse_error("{.a}").0, 2);
        assert_eq!(parse_error("{a..b}").0, 4);
        assert!(parse_error("{a..b}").1.contains("empty name"));
        assert_eq!(parse_error("{a.}").0, 3);
        // Characters, not bytes: `é` and `→` are one character each.
        assert_eq!(parse_error("é→ {a").0, 4);
        let e = Template::parse("ab {").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid template: unclosed `{` (close it with `}`, or write `{{` for a brace) at character 4"
        );
    }

    #[test]
    fn deserializes_from_a_config_string() {
        #[derive(Debug, Deserialize)]
        struct Options {
            title_template: Option<Template>,
        }
        let options: Options = toml::from_str(r#"title_template = "[{rule_id}] {labels.team|-}""#).unwrap();
        let template = options.title_template.unwrap();
        assert_eq!(template.as_str(), "[{rule_id}] {labels.team|-}");
        assert_eq!(template.to_string(), "[{rule_id}] {labels.team|-}");
        assert_eq!(format!("{template:?}"), r#"Template("[{rule_id}] {labels.team|-}")"#);
        assert_eq!(template.render(&json!({"rule_id": "r"})), "[r] -");
        let e = toml::from_str::<Options>(r#"title_template = "[{rule_id""#).unwrap_err().to_string();
        assert!(e.contains("unclosed `{`") && e.contains("at character 2"), "{e}");
        assert_eq!("{a}".parse::<Template>().unwrap().render(&json!({"a": 1})), "1");
    }
}
