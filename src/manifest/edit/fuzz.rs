//! Property tests of the in-place editor: random merge patches over generated YAML documents
//! (comments between keys, aligned trailing comments, quoting styles, flow and block
//! collections, neighbouring documents, CRLF). `PROPTEST_CASES=10000 cargo test --lib
//! manifest::edit::fuzz` runs them longer; the default case count keeps `cargo test` fast.

use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::manifest::edit::edit_document;
use crate::manifest::write::merge_patch;
use crate::manifest::yaml;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(48);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

const KEYS: &[&str] = &[
    "a", "b", "c", "d", "e", "f", "g h", "1", "true", "x:y", "k#",
];
const STRINGS: &[&str] = &[
    "v",
    "yes",
    "1.5",
    "a b",
    "#x",
    "x: y",
    "",
    "é ✓",
    "it's",
    "-",
    "q\"r",
    "null",
    "0x1F",
    "[1]",
    "{}",
    "a,b",
    " lead",
    "trail ",
    "multi\nline",
    "tab\there",
];

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(KEYS).prop_map(str::to_owned)
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(STRINGS).prop_map(|s| Value::String(s.into())),
        any::<i32>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
        (-1000.0f64..1000.0).prop_map(Value::from),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Style {
    Plain,
    Single,
    Double,
    /// `|` / `|-` where the string allows it.
    Literal,
}

fn style() -> impl Strategy<Value = Style> {
    prop_oneof![
        Just(Style::Plain),
        Just(Style::Single),
        Just(Style::Double),
        Just(Style::Literal)
    ]
}

/// How an entry is dressed: a comment line before it, a trailing comment after `pad` spaces.
#[derive(Debug, Clone)]
struct Deco {
    before: bool,
    trailing: Option<usize>,
}

fn deco() -> impl Strategy<Value = Deco> {
    (any::<bool>(), prop::option::of(1usize..12))
        .prop_map(|(before, trailing)| Deco { before, trailing })
}

/// A YAML node and how it is written.
#[derive(Debug, Clone)]
enum Y {
    Scalar(Value, Style),
    /// Written as JSON (valid YAML flow).
    Flow(Value),
    BlockMap(Vec<(String, Y, Deco)>),
    /// Items as `- x` lines, indented under the key or not.
    BlockSeq(Vec<(Value, Style)>, bool),
}

fn flow_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::collection::btree_map(key(), scalar(), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        prop::collection::vec(scalar(), 0..4).prop_map(Value::Array),
    ]
}

fn block_map(inner: impl Strategy<Value = Y>) -> impl Strategy<Value = Y> {
    prop::collection::vec((key(), inner, deco()), 1..6).prop_map(|entries| {
        let mut seen = std::collections::HashSet::new();
        Y::BlockMap(
            entries
                .into_iter()
                .filter(|(k, _, _)| seen.insert(k.clone()))
                .collect(),
        )
    })
}

fn node() -> impl Strategy<Value = Y> {
    let leaf = prop_oneof![
        4 => (scalar(), style()).prop_map(|(v, s)| Y::Scalar(v, s)),
        1 => flow_value().prop_map(Y::Flow),
        1 => (prop::collection::vec((scalar(), style()), 1..4), any::<bool>())
            .prop_map(|(items, indented)| Y::BlockSeq(items, indented)),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            3 => (scalar(), style()).prop_map(|(v, s)| Y::Scalar(v, s)),
            2 => block_map(inner),
        ]
    })
}

fn patch_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        3 => Just(Value::Null),
        3 => scalar().prop_filter("null deletes", |v| !v.is_null()),
        1 => flow_value(),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop::collection::btree_map(key(), inner, 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    })
}

fn patch() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(key(), patch_value(), 1..5)
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
}

fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn key_text(k: &str) -> String {
    if k.contains([':', '#']) {
        json(k)
    } else {
        k.to_owned()
    }
}

/// A string a `|` block scalar can hold as written here: lines without leading or trailing
/// blanks, at most one final newline.
fn literal_ok(s: &str) -> bool {
    let body = s.strip_suffix('\n').unwrap_or(s);
    !body.is_empty()
        && body
            .split('\n')
            .all(|l| !l.is_empty() && l.trim() == l && !l.chars().any(char::is_control))
}

fn scalar_text(v: &Value, style: Style) -> String {
    match (v, style) {
        (Value::String(s), Style::Single) if !s.chars().any(char::is_control) => {
            format!("'{}'", s.replace('\'', "''"))
        }
        (Value::String(s), Style::Double) => json(s),
        (Value::String(s), _) => {
            let t = yaml_serde::to_string(v).unwrap();
            let t = t.trim_end_matches('\n');
            if t.contains('\n') || t.is_empty() {
                json(s)
            } else {
                t.to_owned()
            }
        }
        _ => v.to_string(),
    }
}

/// A rendered document: its lines, each with the JSON pointer of the entry it belongs to.
struct Rendered {
    lines: Vec<(String, String)>,
    /// Pointers whose key line opens a block collection (`key:`, maybe a comment).
    heads: Vec<String>,
}

impl Rendered {
    fn trailing(&mut self, line: String, deco: &Deco, ptr: &str) {
        let line = match deco.trailing {
            Some(pad) => format!("{line}{}# note", " ".repeat(pad)),
            None => line,
        };
        self.lines.push((line, ptr.to_owned()));
    }

    fn map(&mut self, entries: &[(String, Y, Deco)], indent: usize, at: &str) -> Value {
        let pad = " ".repeat(indent);
        let mut value = Map::new();
        for (k, y, deco) in entries {
            let ptr = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
            if deco.before {
                self.lines.push((format!("{pad}# about {k}"), ptr.clone()));
            }
            let head = format!("{pad}{}:", key_text(k));
            let v = match y {
                Y::Scalar(Value::String(s), Style::Literal) if literal_ok(s) => {
                    let chomp = if s.ends_with('\n') { "" } else { "-" };
                    self.trailing(format!("{head} |{chomp}"), deco, &ptr);
                    for line in s.trim_end_matches('\n').split('\n') {
                        self.lines.push((format!("{pad}  {line}"), ptr.clone()));
                    }
                    Value::String(s.clone())
                }
                Y::Scalar(v, style) => {
                    self.trailing(format!("{head} {}", scalar_text(v, *style)), deco, &ptr);
                    v.clone()
                }
                Y::Flow(v) => {
                    self.trailing(format!("{head} {v}"), deco, &ptr);
                    v.clone()
                }
                Y::BlockMap(inner) => {
                    self.heads.push(ptr.clone());
                    self.trailing(head, deco, &ptr);
                    self.map(inner, indent + 2, &ptr)
                }
                Y::BlockSeq(items, indented) => {
                    self.heads.push(ptr.clone());
                    self.trailing(head, deco, &ptr);
                    let dash = if *indented { "  - " } else { "- " };
                    for (i, (v, style)) in items.iter().enumerate() {
                        let line = format!("{pad}{dash}{}", scalar_text(v, *style));
                        self.lines.push((line, format!("{ptr}/{i}")));
                    }
                    Value::Array(items.iter().map(|(v, _)| v.clone()).collect())
                }
            };
            value.insert(k.clone(), v);
        }
        Value::Object(value)
    }
}

/// Pointers the patch replaces, removes or adds, plus mappings it empties.
fn touched(old: &Value, patch: &Value, at: &str, out: &mut Vec<String>) {
    let (Value::Object(o), Value::Object(p)) = (old, patch) else {
        out.push(at.to_owned());
        return;
    };
    for (k, pv) in p {
        let ptr = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
        match o.get(k) {
            Some(ov) if pv.is_object() && ov.is_object() => touched(ov, pv, &ptr, out),
            _ => out.push(ptr),
        }
    }
    let mut after = old.clone();
    merge_patch(&mut after, patch);
    if !o.is_empty() && after.as_object().is_some_and(Map::is_empty) {
        out.push(at.to_owned());
    }
}

fn is_prefix(prefix: &str, ptr: &str) -> bool {
    ptr == prefix || ptr.starts_with(&format!("{prefix}/"))
}

/// `sub` appears in `all` in order (other lines may be between).
fn is_subsequence(sub: &[&str], all: &[&str]) -> bool {
    let mut it = all.iter();
    sub.iter().all(|s| it.any(|a| a == s))
}

const BEFORE: &str = "# other\nkind: Before\nspec: {n: 1}   # kept\n---\n";
const AFTER: &str = "...\n# trailing\n---\nkind: After\nlist:\n- 1\n";

proptest! {
    #![proptest_config(config())]

    #[test]
    fn patches_land_in_place_and_read_back_exactly(
        root in block_map(node()),
        patch in patch(),
        crlf in any::<bool>(),
        neighbours in any::<bool>(),
    ) {
        let Y::BlockMap(entries) = &root else { unreachable!() };
        let mut r = Rendered { lines: Vec::new(), heads: Vec::new() };
        let old_value = r.map(entries, 0, "");
        let nl = if crlf { "\r\n" } else { "\n" };
        let body: String = r.lines.iter().map(|(l, _)| format!("{l}{nl}")).collect();
        let (before, after) = if neighbours {
            (BEFORE.replace('\n', nl), AFTER.replace('\n', nl))
        } else {
            (String::new(), String::new())
        };
        let text = format!("{before}{body}{after}");
        let docs = yaml::parse_documents(&text).unwrap();
        let index = usize::from(neighbours);
        prop_assert_eq!(&docs[index].value, &old_value, "generator:\n{}", text);

        let mut new_value = old_value.clone();
        merge_patch(&mut new_value, &patch);
        let out = edit_document(&text, &docs[index], &new_value).unwrap();
        let again = yaml::parse_documents(&out).unwrap();
        prop_assert_eq!(again.len(), docs.len());
        prop_assert_eq!(&again[index].value, &new_value, "{}", out);

        // Neighbouring documents and line endings.
        prop_assert!(out.starts_with(&before) && out.ends_with(&after), "{}", out);
        if crlf {
            prop_assert!(!out.replace("\r\n", "").contains('\n'), "{:?}", out);
        }
        // Every line the patch does not touch is still there, in order. Touched: lines inside
        // what the patch replaces, removes or empties, and one-line ancestors of it (a flow
        // collection changes on its line; a block `key:` line above the change does not).
        let mut hit = Vec::new();
        touched(&old_value, &patch, "", &mut hit);
        let kept: Vec<&str> = r
            .lines
            .iter()
            .filter(|(_, ptr)| {
                !hit.iter().any(|t| {
                    is_prefix(t, ptr) || (is_prefix(ptr, t) && !r.heads.contains(ptr))
                })
            })
            .map(|(l, _)| l.as_str())
            .collect();
        let out_lines: Vec<&str> = out.split(nl).collect();
        prop_assert!(is_subsequence(&kept, &out_lines), "old:\n{}\nnew:\n{}\npatch: {}", text, out, patch);
    }

    #[test]
    fn arbitrary_text_never_panics(
        text in "([a-c]|: |:|#| |\n|- |\\{|\\}|\\[|\\]|, |'|\"|\\||>|&a|\\*a|!!str |---\n|\t|\r\n|é){0,60}",
        patch in patch(),
    ) {
        if let Ok(docs) = yaml::parse_documents(&text) {
            for doc in &docs {
                let mut new_value = doc.value.clone();
                merge_patch(&mut new_value, &patch);
                if let Ok(out) = edit_document(&text, doc, &new_value) {
                    let again = yaml::parse_documents(&out).unwrap();
                    prop_assert_eq!(&again[doc.index].value, &new_value);
                }
            }
        }
    }
}
