//! YAML text -> JSON values with source positions (one entry per document), and text-level edits
//! of one document that keep the rest of the file byte-for-byte.
//!
//! A file is cut into chunks at `---` lines (column 0) and after `...` lines; every chunk is parsed
//! on its own so a document's byte range is known exactly and edits never re-serialise neighbours.
//! A chunk holding only comments/blank lines (or a bare `---`) is not a document: it is folded into
//! the span of the *following* document (its header comments travel with it), and chunks after the
//! last document are folded into the last document's span. So the spans of the documents partition
//! the whole file, and removing a document removes its own `---` line and never leaves one dangling.
//!
//! Limits: `%YAML`/`%TAG` directives are only understood directly before a `---` line; comment
//! carry-over in [`render_document`] is line based (see there); line endings written by this module
//! are `\n`.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Bounds on parsing one file (SPEC §3). They count per *file*, across all of its documents (a
/// budget per document would let a file of many small "billion laughs" documents multiply
/// it), and never limit how many files a directory holds. A file over a bound is an error
/// naming the bound; nothing it declares is applied, so the last good state stays in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of text.
    pub max_bytes: usize,
    /// Non-empty documents.
    pub max_documents: usize,
    /// Nodes built (scalars and collections), counting every copy an alias makes.
    pub max_nodes: usize,
    /// Nodes produced by alias expansion alone: aliases are how a few lines become gigabytes.
    pub max_alias_nodes: usize,
    /// Nesting of collections (serde_json drops values recursively, so unbounded nesting
    /// would overflow the stack).
    pub max_depth: usize,
}

/// The bounds in force: every manifest file is parsed under these.
pub const LIMITS: Limits = Limits {
    max_bytes: 16 * 1024 * 1024,
    max_documents: 20_000,
    max_nodes: 2_000_000,
    max_alias_nodes: 100_000,
    max_depth: 256,
};

/// A 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// One non-empty document of a file.
#[derive(Debug, Clone)]
pub struct SourceDoc {
    /// 0-based among the non-empty documents of the file.
    pub index: usize,
    pub value: Value,
    /// Byte range of the document in the file: its leading comment-only chunks, its `---` line and
    /// body, up to the next document (or EOF for the last one).
    pub span: Range<usize>,
    /// Position of the root node.
    pub start: Position,
    positions: HashMap<String, Position>,
    /// The part of `span` that `replace_document` rewrites: after the own `---` line (when that line
    /// holds no content) up to the end of the own chunk (before a closing `...` line).
    body: Range<usize>,
    /// The `---` line carries content (`--- |`, `--- !!map`), so it belongs to the body.
    marker_in_body: bool,
    /// 1-based file line of `span.start`.
    span_line: usize,
    /// Inclusive file-line ranges whose text belongs to a multi-line scalar, so a `#` there is
    /// content, not a comment.
    scalar_lines: Vec<(usize, usize)>,
}

impl SourceDoc {
    /// The part of the file that holds the document's own text (see [`super::edit`]): after its
    /// `---` line (unless that line carries content) up to the end of its chunk.
    pub(super) fn body(&self) -> Range<usize> {
        self.body.clone()
    }

    /// Position of the node at `pointer` (RFC 6901), or of its nearest existing ancestor.
    /// Mapping entries are located at their key, sequence items at the item.
    pub fn position(&self, pointer: &str) -> Position {
        let mut p = pointer;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return *pos;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return self.start,
            }
        }
    }
}

/// A parse error (or, from [`render_document`], an emit error with a zero position).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub position: Position,
    pub message: String,
}

impl YamlError {
    fn new(position: Position, message: impl Into<String>) -> Self {
        YamlError {
            position,
            message: message.into(),
        }
    }
}

/// Escape one JSON pointer reference token.
fn escape_token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn is_marker_line(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

#[derive(Debug, Clone)]
struct Chunk {
    range: Range<usize>,
    /// 1-based line of `range.start`.
    line: usize,
    body: Range<usize>,
    marker_in_body: bool,
    empty: bool,
}

/// Lines with their byte offsets (each line keeps its terminator).
fn lines_with_offsets(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split_inclusive('\n').scan(0usize, |off, line| {
        let start = *off;
        *off += line.len();
        Some((start, line))
    })
}

fn split_chunks(text: &str) -> Vec<Chunk> {
    struct Open {
        start: usize,
        line: usize,
        /// Byte range of the own `---` line.
        marker: Option<Range<usize>>,
        content: bool,
        directive: bool,
    }
    fn close(open: &Open, end: usize, body_end: usize, text: &str) -> Chunk {
        let (body_start, marker_in_body) = match &open.marker {
            Some(m) => {
                let rest = text[m.clone()].get(3..).unwrap_or("");
                if is_blank_or_comment(rest) {
                    (m.end, false)
                } else {
                    (m.start, true)
                }
            }
            None => (open.start, false),
        };
        let body_start = body_start.min(body_end);
        let empty = !marker_in_body
            && text[body_start..body_end]
                .split_inclusive('\n')
                .all(is_blank_or_comment);
        Chunk {
            range: open.start..end,
            line: open.line,
            body: body_start..body_end,
            marker_in_body,
            empty,
        }
    }
    let new_open = |start, line| Open {
        start,
        line,
        marker: None,
        content: false,
        directive: false,
    };

    let mut chunks = Vec::new();
    let mut open = new_open(0, 1);
    let mut line_no = 0;
    for (off, line) in lines_with_offsets(text) {
        line_no += 1;
        if is_marker_line(line, "---") {
            // Directives belong to the document whose `---` follows them.
            let keep = off == open.start || (open.directive && !open.content);
            if !keep || open.marker.is_some() {
                chunks.push(close(&open, off, off, text));
                open = new_open(off, line_no);
            }
            open.marker = Some(off..off + line.len());
            open.content = true;
        } else if is_marker_line(line, "...") {
            chunks.push(close(&open, off + line.len(), off, text));
            open = new_open(off + line.len(), line_no + 1);
        } else if line.starts_with('%') && !open.content {
            open.directive = true;
        } else if !is_blank_or_comment(line) {
            open.content = true;
        }
    }
    if open.start < text.len() || chunks.is_empty() {
        chunks.push(close(&open, text.len(), text.len(), text));
    }
    chunks
}

/// Parse every non-empty document of `text` under [`LIMITS`].
pub fn parse_documents(text: &str) -> Result<Vec<SourceDoc>, YamlError> {
    parse_documents_with(text, &LIMITS)
}

/// Strips a UTF-8 byte order mark and turns lone `\r` line ends (classic Mac) into `\n`, so
/// every line ending reads the same (`\r\n` is understood as it is). Without this a CR-only
/// file is one long line: a leading comment would swallow the whole file, which would then
/// read as empty and delete what it declares.
pub fn normalize_text(text: String) -> String {
    let text = match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    };
    let bytes = text.as_bytes();
    let lone_cr = |i: usize| bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n');
    if !(0..bytes.len()).any(lone_cr) {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() != Some(&'\n') {
            out.push('\n');
        } else {
            out.push(c);
        }
    }
    out
}

/// Nodes counted so far in one file, across its documents.
#[derive(Debug, Default)]
struct Budget {
    nodes: usize,
    alias_nodes: usize,
}

/// [`parse_documents`] without the position of every node: [`SourceDoc::position`] then
/// answers with the document's start. Loading uses it, since positions are only needed to
/// name the line of an error (and building them was a third of a file's parse); a file with
/// errors is parsed again with them.
pub fn parse_documents_unpositioned(text: &str) -> Result<Vec<SourceDoc>, YamlError> {
    parse_documents_impl(text, &LIMITS, false)
}

/// [`parse_documents`] under explicit bounds.
pub fn parse_documents_with(text: &str, limits: &Limits) -> Result<Vec<SourceDoc>, YamlError> {
    parse_documents_impl(text, limits, true)
}

fn parse_documents_impl(
    text: &str,
    limits: &Limits,
    positions: bool,
) -> Result<Vec<SourceDoc>, YamlError> {
    let top = Position { line: 1, column: 1 };
    if text.len() > limits.max_bytes {
        return Err(YamlError::new(
            top,
            format!(
                "file too large: {} bytes, over the limit of {} bytes per file; split it into several files",
                text.len(),
                limits.max_bytes
            ),
        ));
    }
    let mut budget = Budget::default();
    let mut docs: Vec<SourceDoc> = Vec::new();
    let mut lead: Option<(usize, usize)> = None;
    for chunk in split_chunks(text) {
        if chunk.empty {
            if lead.is_none() {
                lead = Some((chunk.range.start, chunk.line));
            }
            if let Some(last) = docs.last_mut() {
                // Provisional: trailing empty chunks stay with the last document.
                last.span.end = chunk.range.end;
            }
            continue;
        }
        let (span_start, span_line) = lead.take().unwrap_or((chunk.range.start, chunk.line));
        if let Some(last) = docs.last_mut() {
            last.span.end = span_start;
        }
        if docs.len() >= limits.max_documents {
            return Err(YamlError::new(
                Position {
                    line: chunk.line,
                    column: 1,
                },
                format!(
                    "too many documents: over the limit of {} documents per file; split it into several files",
                    limits.max_documents
                ),
            ));
        }
        let parsed = parse_chunk(
            &text[chunk.range.clone()],
            chunk.line - 1,
            limits,
            &mut budget,
            positions,
        )?;
        docs.push(SourceDoc {
            index: docs.len(),
            value: parsed.value,
            span: span_start..chunk.range.end,
            start: parsed.start,
            positions: parsed.positions,
            body: chunk.body.clone(),
            marker_in_body: chunk.marker_in_body,
            span_line,
            scalar_lines: parsed.scalar_lines,
        });
    }
    if let Some(last) = docs.last_mut() {
        last.span.end = text.len();
    }
    Ok(docs)
}

struct Parsed {
    value: Value,
    start: Position,
    positions: HashMap<String, Position>,
    scalar_lines: Vec<(usize, usize)>,
}

struct PendingKey {
    name: String,
    pos: Position,
    merge: bool,
}

enum Container {
    Seq(Vec<Value>),
    Map {
        map: Map<String, Value>,
        key: Option<PendingKey>,
        merges: Vec<Map<String, Value>>,
        merge_pos: Option<Position>,
    },
}

struct Frame {
    container: Container,
    pointer: String,
    pos: Position,
    /// Record the container's own position (false for mapping values, which use their key's).
    own_pos: bool,
    anchor: usize,
    start_count: usize,
}

enum Slot {
    Key,
    Node { pointer: String, record: bool },
}

struct Builder<'a> {
    chunk: &'a str,
    lines: Vec<(usize, &'a str)>,
    line_offset: usize,
    positions: HashMap<String, Position>,
    /// Whether `positions` is filled (see [`parse_documents_unpositioned`]).
    record_positions: bool,
    anchors: HashMap<usize, (Value, usize)>,
    stack: Vec<Frame>,
    root: Option<Value>,
    start: Option<Position>,
    /// Nodes of the whole file so far (starts where the previous document ended).
    count: usize,
    /// Nodes made by alias expansion in the whole file so far.
    alias_nodes: usize,
    limits: &'a Limits,
    scalar_lines: Vec<(usize, usize)>,
}

fn parse_chunk(
    chunk: &str,
    line_offset: usize,
    limits: &Limits,
    budget: &mut Budget,
    record_positions: bool,
) -> Result<Parsed, YamlError> {
    let mut b = Builder {
        chunk,
        lines: lines_with_offsets(chunk).collect(),
        line_offset,
        positions: HashMap::new(),
        record_positions,
        anchors: HashMap::new(),
        stack: Vec::new(),
        root: None,
        start: None,
        count: budget.nodes,
        alias_nodes: budget.alias_nodes,
        limits,
        scalar_lines: Vec::new(),
    };
    let mut parser = Parser::new_from_str(chunk);
    let mut documents = 0;
    loop {
        let (event, marker) = parser
            .next_token()
            .map_err(|e| YamlError::new(b.pos(e.marker()), e.info().to_string()))?;
        let pos = b.pos(&marker);
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(YamlError::new(
                        pos,
                        "more than one document in one chunk; separate documents with `---`",
                    ));
                }
            }
            Event::Scalar(v, style, anchor, tag) => b.scalar(v, style, anchor, tag, pos)?,
            Event::Alias(id) => b.alias(id, pos)?,
            Event::SequenceStart(anchor, tag) => b.start_container(false, anchor, tag, pos)?,
            Event::MappingStart(anchor, tag) => b.start_container(true, anchor, tag, pos)?,
            Event::SequenceEnd | Event::MappingEnd => b.end_container(pos)?,
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
        }
        if b.count > limits.max_nodes {
            return Err(YamlError::new(
                pos,
                format!(
                    "file too large: more than {} nodes (the limit per file, counting every copy an alias makes)",
                    limits.max_nodes
                ),
            ));
        }
    }
    budget.nodes = b.count;
    budget.alias_nodes = b.alias_nodes;
    let start = b.start.unwrap_or(Position {
        line: line_offset + 1,
        column: 1,
    });
    Ok(Parsed {
        value: b.root.unwrap_or(Value::Null),
        start,
        positions: b.positions,
        scalar_lines: b.scalar_lines,
    })
}

enum TagKind {
    Str,
    Int,
    Float,
    Bool,
    Null,
    Map,
    Seq,
    NonSpecific,
}

fn tag_kind(tag: &Tag, pos: Position) -> Result<TagKind, YamlError> {
    if tag.handle.is_empty() && tag.suffix == "!" {
        return Ok(TagKind::NonSpecific);
    }
    let full = format!("{}{}", tag.handle, tag.suffix);
    let kind = match full.strip_prefix("tag:yaml.org,2002:") {
        Some("str") => TagKind::Str,
        Some("int") => TagKind::Int,
        Some("float") => TagKind::Float,
        Some("bool") => TagKind::Bool,
        Some("null") => TagKind::Null,
        Some("map") => TagKind::Map,
        Some("seq") => TagKind::Seq,
        Some(other) => return Err(YamlError::new(pos, format!("unknown tag !!{other}"))),
        None => return Err(YamlError::new(pos, format!("unknown tag {full}"))),
    };
    Ok(kind)
}

fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn number_from_u64(neg: bool, magnitude: u64) -> Option<Number> {
    if !neg {
        return Some(Number::from(magnitude));
    }
    if magnitude <= i64::MAX as u64 {
        Some(Number::from(-(magnitude as i64)))
    } else if magnitude == i64::MAX as u64 + 1 {
        Some(Number::from(i64::MIN))
    } else {
        None
    }
}

/// `Ok(None)`: not an integer; `Err(())`: an integer that does not fit 64 bits.
fn parse_int(s: &str) -> Result<Option<Number>, ()> {
    let digits = |d: &str, radix: u32| !d.is_empty() && d.chars().all(|c| c.is_digit(radix));
    if let Some(hex) = s.strip_prefix("0x") {
        if digits(hex, 16) {
            return u64::from_str_radix(hex, 16)
                .map(|n| Some(Number::from(n)))
                .map_err(|_| ());
        }
        return Ok(None);
    }
    if let Some(oct) = s.strip_prefix("0o") {
        if digits(oct, 8) {
            return u64::from_str_radix(oct, 8)
                .map(|n| Some(Number::from(n)))
                .map_err(|_| ());
        }
        return Ok(None);
    }
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if !digits(body, 10) {
        return Ok(None);
    }
    let magnitude = body.parse::<u64>().map_err(|_| ())?;
    number_from_u64(neg, magnitude).map(Some).ok_or(())
}

fn is_float_syntax(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let all_digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            all_digits(int) && all_digits(frac) && (!int.is_empty() || !frac.is_empty())
        }
        None => !mantissa.is_empty() && all_digits(mantissa),
    };
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exp_ok
}

fn is_inf_or_nan(s: &str) -> bool {
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    matches!(unsigned, ".inf" | ".Inf" | ".INF") || matches!(s, ".nan" | ".NaN" | ".NAN")
}

fn parse_float(s: &str, pos: Position) -> Result<Option<Value>, YamlError> {
    if is_inf_or_nan(s) {
        return Err(YamlError::new(
            pos,
            format!("{s:?}: infinity and NaN cannot be represented in JSON"),
        ));
    }
    if !is_float_syntax(s) {
        return Ok(None);
    }
    let f: f64 = s
        .parse()
        .map_err(|_| YamlError::new(pos, format!("invalid float {s:?}")))?;
    Number::from_f64(f)
        .map(|n| Some(Value::Number(n)))
        .ok_or_else(|| YamlError::new(pos, format!("float {s:?} is out of range")))
}

fn int_value(s: &str, pos: Position) -> Result<Option<Value>, YamlError> {
    parse_int(s)
        .map(|n| n.map(Value::Number))
        .map_err(|()| YamlError::new(pos, format!("integer {s} does not fit in 64 bits")))
}

/// Core-schema resolution of a plain scalar.
fn resolve_plain(s: &str, pos: Position) -> Result<Value, YamlError> {
    if is_null(s) {
        return Ok(Value::Null);
    }
    if let Some(b) = parse_bool(s) {
        return Ok(Value::Bool(b));
    }
    if let Some(v) = int_value(s, pos)? {
        return Ok(v);
    }
    if let Some(v) = parse_float(s, pos)? {
        return Ok(v);
    }
    Ok(Value::String(s.to_string()))
}

fn resolve_scalar(
    s: String,
    style: TScalarStyle,
    tag: Option<&Tag>,
    pos: Position,
) -> Result<Value, YamlError> {
    let kind = match tag {
        Some(t) => Some(tag_kind(t, pos)?),
        None => None,
    };
    let bad = |what: &str| YamlError::new(pos, format!("{s:?} is not a valid {what}"));
    match kind {
        None if style == TScalarStyle::Plain => resolve_plain(&s, pos),
        None | Some(TagKind::Str) | Some(TagKind::NonSpecific) => Ok(Value::String(s)),
        Some(TagKind::Int) => int_value(&s, pos)?.ok_or_else(|| bad("!!int")),
        Some(TagKind::Float) => match int_value(&s, pos)? {
            Some(Value::Number(n)) => n
                .as_f64()
                .and_then(Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| bad("!!float")),
            _ => parse_float(&s, pos)?.ok_or_else(|| bad("!!float")),
        },
        Some(TagKind::Bool) => parse_bool(&s).map(Value::Bool).ok_or_else(|| bad("!!bool")),
        Some(TagKind::Null) if is_null(&s) => Ok(Value::Null),
        Some(TagKind::Null) => Err(bad("!!null")),
        Some(TagKind::Map) | Some(TagKind::Seq) => Err(YamlError::new(
            pos,
            "a !!map or !!seq tag cannot be applied to a scalar",
        )),
    }
}

fn scalar_key(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => Some("null".to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

impl Builder<'_> {
    fn pos(&self, m: &Marker) -> Position {
        Position {
            line: m.line() + self.line_offset,
            column: m.col() + 1,
        }
    }

    fn slot(&mut self, pos: Position) -> Slot {
        if self.start.is_none() {
            self.start = Some(pos);
        }
        if !self.record_positions {
            // Pointers only name positions: none are made.
            return match self.stack.last().map(|f| &f.container) {
                Some(Container::Map { key: None, .. }) => Slot::Key,
                // The root records its own position (see `set_key`), as below.
                _ => Slot::Node {
                    pointer: String::new(),
                    record: self.stack.is_empty(),
                },
            };
        }
        let (pointer, record) = match self.stack.last() {
            None => (String::new(), true),
            Some(frame) => match &frame.container {
                Container::Seq(items) => (format!("{}/{}", frame.pointer, items.len()), true),
                Container::Map { key: None, .. } => return Slot::Key,
                Container::Map { key: Some(k), .. } if k.merge => {
                    (format!("{}/<<", frame.pointer), false)
                }
                Container::Map { key: Some(k), .. } => (
                    format!("{}/{}", frame.pointer, escape_token(&k.name)),
                    false,
                ),
            },
        };
        if record {
            self.positions.insert(pointer.clone(), pos);
        }
        Slot::Node { pointer, record }
    }

    /// The parent's indentation, below which a block scalar's content cannot go.
    fn parent_indent(&self) -> Option<usize> {
        self.stack.last().map(|f| f.pos.column - 1)
    }

    fn note_scalar_lines(&mut self, value: &str, style: TScalarStyle, pos: Position) {
        let first = pos.line.saturating_sub(self.line_offset + 1);
        let Some(&(line_start, first_line)) = self.lines.get(first) else {
            return;
        };
        let last = match style {
            TScalarStyle::Literal | TScalarStyle::Folded => {
                // The marker sits on the first content line, at the content indentation.
                if value.is_empty() || self.parent_indent().is_some_and(|p| pos.column - 1 <= p) {
                    return;
                }
                let indent = pos.column - 1;
                let mut last = first;
                for (i, (_, line)) in self.lines.iter().enumerate().skip(first + 1) {
                    if line.trim().is_empty() {
                        continue;
                    }
                    if indent_of(line) < indent {
                        break;
                    }
                    last = i;
                }
                self.scalar_lines
                    .push((pos.line, pos.line + (last - first)));
                return;
            }
            TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => {
                let Some(byte) = first_line
                    .char_indices()
                    .nth(pos.column - 1)
                    .map(|(b, _)| b)
                else {
                    return;
                };
                let quoted = &self.chunk[line_start + byte..];
                let Some(len) = quoted_len(quoted) else {
                    return;
                };
                quoted[..len].matches('\n').count()
            }
            TScalarStyle::Plain => return,
        };
        if last > 0 {
            // The opening line holds the key and may hold other text; only later lines are inside.
            self.scalar_lines.push((pos.line + 1, pos.line + last));
        }
    }

    fn scalar(
        &mut self,
        v: String,
        style: TScalarStyle,
        anchor: usize,
        tag: Option<Tag>,
        pos: Position,
    ) -> Result<(), YamlError> {
        match self.slot(pos) {
            Slot::Key => {
                if let Some(t) = &tag {
                    if let TagKind::Map | TagKind::Seq = tag_kind(t, pos)? {
                        return Err(YamlError::new(
                            pos,
                            "a !!map or !!seq tag cannot be applied to a scalar",
                        ));
                    }
                }
                let merge = style == TScalarStyle::Plain && tag.is_none() && v == "<<";
                if anchor != 0 {
                    self.anchors.insert(anchor, (Value::String(v.clone()), 1));
                }
                self.count += 1;
                self.set_key(v, pos, merge)
            }
            Slot::Node { .. } => {
                self.note_scalar_lines(&v, style, pos);
                let value = resolve_scalar(v, style, tag.as_ref(), pos)?;
                self.count += 1;
                if anchor != 0 {
                    self.anchors.insert(anchor, (value.clone(), 1));
                }
                self.place(value, pos)
            }
        }
    }

    fn set_key(&mut self, name: String, pos: Position, merge: bool) -> Result<(), YamlError> {
        let is_root = self.stack.len() == 1;
        let Some(frame) = self.stack.last_mut() else {
            return Ok(());
        };
        let record_positions = self.record_positions;
        let first_key = matches!(&frame.container, Container::Map { map, merges, key: None, .. } if map.is_empty() && merges.is_empty());
        if first_key && (pos.line, pos.column) < (frame.pos.line, frame.pos.column) {
            // A block mapping's start event is reported after its first key; use the key instead.
            frame.pos = pos;
            if frame.own_pos {
                if record_positions {
                    self.positions.insert(frame.pointer.clone(), pos);
                }
                if is_root {
                    self.start = Some(pos);
                }
            }
        }
        if let Container::Map {
            map,
            key,
            merge_pos,
            ..
        } = &mut frame.container
        {
            if merge {
                if merge_pos.is_some() {
                    return Err(YamlError::new(pos, "duplicate key \"<<\""));
                }
                *merge_pos = Some(pos);
            } else {
                if map.contains_key(&name) {
                    return Err(YamlError::new(pos, format!("duplicate key {name:?}")));
                }
                if record_positions {
                    let pointer = format!("{}/{}", frame.pointer, escape_token(&name));
                    self.positions.insert(pointer, pos);
                }
            }
            *key = Some(PendingKey { name, pos, merge });
        }
        Ok(())
    }

    fn alias(&mut self, id: usize, pos: Position) -> Result<(), YamlError> {
        let slot = self.slot(pos);
        let Some((value, nodes)) = self.anchors.get(&id) else {
            return Err(YamlError::new(
                pos,
                "alias to an anchor that is not complete yet",
            ));
        };
        let nodes = *nodes;
        if self.alias_nodes + nodes > self.limits.max_alias_nodes {
            return Err(YamlError::new(
                pos,
                format!(
                    "file too large: aliases expand to more than {} nodes (the limit per file, across all its documents)",
                    self.limits.max_alias_nodes
                ),
            ));
        }
        if self.count + nodes > self.limits.max_nodes {
            return Err(YamlError::new(
                pos,
                format!(
                    "file too large: more than {} nodes (the limit per file, counting every copy an alias makes)",
                    self.limits.max_nodes
                ),
            ));
        }
        let value = value.clone();
        self.count += nodes;
        self.alias_nodes += nodes;
        match slot {
            Slot::Key => {
                let name = scalar_key(&value).ok_or_else(|| {
                    YamlError::new(pos, "a mapping or sequence cannot be a mapping key")
                })?;
                self.set_key(name, pos, false)
            }
            Slot::Node { .. } => self.place(value, pos),
        }
    }

    fn start_container(
        &mut self,
        is_map: bool,
        anchor: usize,
        tag: Option<Tag>,
        pos: Position,
    ) -> Result<(), YamlError> {
        let Slot::Node { pointer, record } = self.slot(pos) else {
            return Err(YamlError::new(
                pos,
                "a mapping or sequence cannot be a mapping key",
            ));
        };
        if let Some(t) = &tag {
            match (tag_kind(t, pos)?, is_map) {
                (TagKind::Map, true) | (TagKind::Seq, false) | (TagKind::NonSpecific, _) => {}
                _ => {
                    let what = if is_map { "a mapping" } else { "a sequence" };
                    return Err(YamlError::new(
                        pos,
                        format!("tag {}{} cannot be applied to {what}", t.handle, t.suffix),
                    ));
                }
            }
        }
        if self.stack.len() >= self.limits.max_depth {
            return Err(YamlError::new(
                pos,
                format!(
                    "nesting deeper than {} levels (the limit per file)",
                    self.limits.max_depth
                ),
            ));
        }
        let container = if is_map {
            Container::Map {
                map: Map::new(),
                key: None,
                merges: Vec::new(),
                merge_pos: None,
            }
        } else {
            Container::Seq(Vec::new())
        };
        self.stack.push(Frame {
            container,
            pointer,
            pos,
            own_pos: record,
            anchor,
            start_count: self.count,
        });
        Ok(())
    }

    fn end_container(&mut self, pos: Position) -> Result<(), YamlError> {
        let Some(frame) = self.stack.pop() else {
            return Err(YamlError::new(pos, "unbalanced end of collection"));
        };
        let value = match frame.container {
            Container::Seq(items) => Value::Array(items),
            Container::Map {
                mut map,
                merges,
                merge_pos,
                ..
            } => {
                let merge_pos = merge_pos.unwrap_or(frame.pos);
                for merged in merges {
                    for (k, v) in merged {
                        if !map.contains_key(&k) {
                            if self.record_positions {
                                let pointer = format!("{}/{}", frame.pointer, escape_token(&k));
                                self.positions.entry(pointer).or_insert(merge_pos);
                            }
                            map.insert(k, v);
                        }
                    }
                }
                Value::Object(map)
            }
        };
        self.count += 1;
        if frame.anchor != 0 {
            let nodes = self.count - frame.start_count;
            self.anchors.insert(frame.anchor, (value.clone(), nodes));
        }
        self.place(value, frame.pos)
    }

    fn place(&mut self, value: Value, pos: Position) -> Result<(), YamlError> {
        let Some(frame) = self.stack.last_mut() else {
            self.root = Some(value);
            return Ok(());
        };
        match &mut frame.container {
            Container::Seq(items) => items.push(value),
            Container::Map {
                map, key, merges, ..
            } => {
                let Some(k) = key.take() else {
                    return Err(YamlError::new(pos, "mapping value without a key"));
                };
                if !k.merge {
                    map.insert(k.name, value);
                    return Ok(());
                }
                let bad = || {
                    YamlError::new(
                        k.pos,
                        "the value of a merge key `<<` must be a mapping or a list of mappings",
                    )
                };
                match value {
                    Value::Object(m) => merges.push(m),
                    Value::Array(list) => {
                        for item in list {
                            match item {
                                Value::Object(m) => merges.push(m),
                                _ => return Err(bad()),
                            }
                        }
                    }
                    _ => return Err(bad()),
                }
            }
        }
        Ok(())
    }
}

/// Byte length of the quoted scalar at the start of `s` (including both quotes).
pub(super) fn quoted_len(s: &str) -> Option<usize> {
    let mut chars = s.char_indices();
    let (_, quote) = chars.next()?;
    while let Some((i, c)) = chars.next() {
        if quote == '"' && c == '\\' {
            chars.next();
        } else if c == quote {
            if quote == '\'' && s[i + 1..].starts_with('\'') {
                chars.next();
            } else {
                return Some(i + 1);
            }
        }
    }
    None
}

/// The `# comment` at the end of a content line, if any.
fn trailing_comment(line: &str) -> Option<&str> {
    let mut prev: Option<char> = None;
    let mut iter = line.char_indices();
    while let Some((i, c)) = iter.next() {
        let at_token_start = prev.is_none_or(|p| p.is_whitespace() || "[{,".contains(p));
        if c == '#' && prev.is_some_and(char::is_whitespace) {
            return Some(line[i..].trim_end());
        }
        if (c == '"' || c == '\'') && at_token_start {
            let len = quoted_len(&line[i..])?;
            let end = i + len;
            while iter.offset() < end {
                iter.next();
            }
            prev = Some(c);
            continue;
        }
        prev = Some(c);
    }
    None
}

#[derive(Default)]
struct Comments {
    head: Vec<String>,
    /// In old document order.
    before: Vec<(String, Vec<String>)>,
    trailing: Vec<(String, String)>,
    tail: Vec<String>,
}

fn collect_comments(text: &str, doc: &SourceDoc) -> Comments {
    // Only the body is rewritten; the lead (header chunks, `---` line) stays in the file.
    let body = if text.len() == doc.span.len() {
        let mut start = doc.body.start.saturating_sub(doc.span.start);
        if doc.marker_in_body {
            // A `---` line with content is rewritten as a bare one; no comment lives there.
            start = text[start..]
                .find('\n')
                .map_or(text.len(), |i| start + i + 1);
        }
        start..doc.body.end.saturating_sub(doc.span.start)
    } else {
        0..text.len()
    };
    // Per line: the shallowest and the deepest pointer starting there.
    let mut first: BTreeMap<usize, (usize, usize, &str)> = BTreeMap::new();
    let mut last: BTreeMap<usize, (usize, usize, &str)> = BTreeMap::new();
    for (ptr, pos) in &doc.positions {
        let key = (pos.column, ptr.len(), ptr.as_str());
        first
            .entry(pos.line)
            .and_modify(|e| *e = (*e).min(key))
            .or_insert(key);
        last.entry(pos.line)
            .and_modify(|e| *e = (*e).max(key))
            .or_insert(key);
    }
    let in_scalar = |line: usize| {
        doc.scalar_lines
            .iter()
            .any(|&(a, b)| a <= line && line <= b)
    };

    let mut out = Comments::default();
    let mut pending: Vec<String> = Vec::new();
    for (idx, (off, line)) in lines_with_offsets(text).enumerate() {
        let line_no = doc.span_line + idx;
        if off < body.start || off >= body.end || in_scalar(line_no) {
            continue;
        }
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if trimmed.starts_with('#') {
            pending.push(trimmed.to_string());
            continue;
        }
        if let Some(&(_, _, ptr)) = first.get(&line_no) {
            if !pending.is_empty() {
                if ptr.is_empty() {
                    out.head.append(&mut pending);
                } else {
                    out.before
                        .push((ptr.to_string(), std::mem::take(&mut pending)));
                }
            }
        }
        if let (Some(c), Some(&(_, _, ptr))) = (trailing_comment(line), last.get(&line_no)) {
            out.trailing.push((ptr.to_string(), c.to_string()));
        }
    }
    out.tail = pending;
    out
}

fn emit_error(e: impl std::fmt::Display) -> YamlError {
    YamlError::new(Position::default(), format!("cannot render YAML: {e}"))
}

fn with_comments(body: &str, new_doc: &SourceDoc, comments: &Comments, trailing: bool) -> String {
    let mut before: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for (ptr, lines) in &comments.before {
        if let Some(pos) = new_doc.positions.get(ptr) {
            before
                .entry(pos.line)
                .or_default()
                .extend(lines.iter().map(String::as_str));
        }
    }
    let mut after: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    if trailing {
        for (ptr, c) in &comments.trailing {
            if let Some(pos) = new_doc.positions.get(ptr) {
                after.entry(pos.line).or_default().push(c);
            }
        }
    }
    let mut out = String::new();
    for c in &comments.head {
        out.push_str(c);
        out.push('\n');
    }
    for (i, line) in body.lines().enumerate() {
        let line_no = i + 1;
        let indent = &line[..line.len() - line.trim_start().len()];
        for c in before.get(&line_no).into_iter().flatten() {
            out.push_str(indent);
            out.push_str(c);
            out.push('\n');
        }
        out.push_str(line);
        for c in after.get(&line_no).into_iter().flatten() {
            out.push(' ');
            out.push_str(c);
        }
        out.push('\n');
    }
    for c in &comments.tail {
        out.push_str(c);
        out.push('\n');
    }
    out
}

/// Render `value` as a YAML document body (no leading `---`), block style, keys in the value's
/// order, ending with a newline.
///
/// If `previous` is given (`&text[doc.span.clone()]` and its parsed `doc`), its comments are carried
/// over, matched by JSON pointer: full-line comments before a key/item go before the same pointer
/// (re-indented), a trailing `# comment` goes to the end of the same pointer's line, comments
/// before the root stay at the head and comments after the last node stay at the end. Comments of
/// pointers that no longer exist are dropped; so are blank lines. Comments in the lead of the span
/// (before and on the document's own `---` line) are not carried: [`replace_document`] keeps them.
/// If placing trailing comments would change the meaning (e.g. after a long plain scalar the
/// emitter wrapped), they are dropped; the result always parses back to `value`.
pub fn render_document(
    value: &Value,
    previous: Option<(&str, &SourceDoc)>,
) -> Result<String, YamlError> {
    let mut body = yaml_serde::to_string(value).map_err(emit_error)?;
    if !body.ends_with('\n') {
        body.push('\n');
    }
    let Some((old_text, old_doc)) = previous else {
        return Ok(body);
    };
    let comments = collect_comments(old_text, old_doc);
    let new_docs = parse_documents(&body)?;
    let Some(new_doc) = new_docs.first() else {
        return Ok(body);
    };
    for trailing in [true, false] {
        let text = with_comments(&body, new_doc, &comments, trailing);
        let same =
            parse_documents(&text).is_ok_and(|docs| docs.len() == 1 && docs[0].value == *value);
        if same {
            return Ok(text);
        }
    }
    Ok(body)
}

fn ensure_newline(s: &mut String) {
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
}

/// The file text with document `doc` replaced by `new_body` (as returned by [`render_document`]).
/// Everything outside the document's body (other documents, its own `---` line and header
/// comments) is kept byte-for-byte. `doc` must come from parsing this `text`.
pub fn replace_document(text: &str, doc: &SourceDoc, new_body: &str) -> String {
    let (Some(before), Some(after)) = (text.get(..doc.body.start), text.get(doc.body.end..)) else {
        return text.to_string();
    };
    let mut out = before.to_string();
    ensure_newline(&mut out);
    if doc.marker_in_body {
        out.push_str("---\n");
    }
    out.push_str(new_body);
    if !after.is_empty() {
        ensure_newline(&mut out);
    }
    out.push_str(after);
    out
}

/// The file text without document `doc`, its `---` line and its header comments (its whole
/// span); other documents byte-for-byte. May return an empty or comment-only string.
pub fn remove_document(text: &str, doc: &SourceDoc) -> String {
    match (text.get(..doc.span.start), text.get(doc.span.end..)) {
        (Some(before), Some(after)) => format!("{before}{after}"),
        _ => text.to_string(),
    }
}

/// The file text with a new document appended (adding `---` when the file already holds a
/// document), ending with a newline.
pub fn append_document(text: &str, new_body: &str) -> String {
    let chunks = split_chunks(text);
    let has_doc = chunks.iter().any(|c| !c.empty);
    let mut out = text.to_string();
    ensure_newline(&mut out);
    if has_doc {
        out.push_str("---\n");
    }
    out.push_str(new_body);
    ensure_newline(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Vec<SourceDoc> {
        match parse_documents(text) {
            Ok(docs) => docs,
            Err(e) => panic!("parse failed at {:?}: {}", e.position, e.message),
        }
    }

    fn err(text: &str) -> YamlError {
        match parse_documents(text) {
            Ok(docs) => panic!("expected an error, got {:?}", docs),
            Err(e) => e,
        }
    }

    fn pos(line: usize, column: usize) -> Position {
        Position { line, column }
    }

    const MULTI: &str = "# file header\n\
---\n\
# first doc\n\
kind: A\n\
metadata:\n  name: a   # the name\n\
---\n\
kind: B\n\
items:\n  - x\n  - name: y\n\
...\n\
# between\n\
--- # third\n\
kind: C\n\
---\n\
# trailing\n";

    #[test]
    fn multi_document_spans_and_values() {
        let docs = parse(MULTI);
        assert_eq!(docs.len(), 3);
        assert_eq!(
            docs[0].value,
            json!({"kind": "A", "metadata": {"name": "a"}})
        );
        assert_eq!(
            docs[1].value,
            json!({"kind": "B", "items": ["x", {"name": "y"}]})
        );
        assert_eq!(docs[2].value, json!({"kind": "C"}));
        assert_eq!(docs.iter().map(|d| d.index).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(docs[0].span.start, 0);
        assert_eq!(docs[0].span.end, docs[1].span.start);
        assert_eq!(docs[1].span.end, docs[2].span.start);
        assert_eq!(docs[2].span.end, MULTI.len());
        assert!(MULTI[docs[1].span.clone()].starts_with("---\nkind: B"));
        assert!(MULTI[docs[1].span.clone()].ends_with("...\n"));
        assert!(MULTI[docs[2].span.clone()].starts_with("# between\n--- # third\n"));
        assert_eq!(docs[0].start, pos(4, 1));
        assert_eq!(docs[2].start, pos(15, 1));
    }

    #[test]
    fn empty_and_comment_only_files() {
        assert!(parse("").is_empty());
        assert!(parse("# only\n\n---\n# more\n").is_empty());
        assert!(parse("---\n").is_empty());
        let docs = parse("---\na: 1\n---\n");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].span, 0.."---\na: 1\n---\n".len());
    }

    #[test]
    fn positions() {
        let docs = parse(MULTI);
        assert_eq!(docs[0].position("/metadata/name"), pos(6, 3));
        assert_eq!(docs[0].position("/metadata"), pos(5, 1));
        assert_eq!(docs[0].position("/metadata/missing/deeper"), pos(6 - 1, 1));
        assert_eq!(docs[1].position("/items/0"), pos(10, 5));
        assert_eq!(docs[1].position("/items/1"), pos(11, 5));
        assert_eq!(docs[1].position("/items/1/name"), pos(11, 5));
        assert_eq!(docs[1].position("/items/7"), pos(9, 1));
        assert_eq!(docs[1].position(""), pos(8, 1));
        assert_eq!(docs[1].position("/nope"), pos(8, 1));

        let docs = parse("a: {b: [1, 2]}\n\"x/y~\": 3\n");
        assert_eq!(docs[0].position("/a/b/1"), pos(1, 12));
        assert_eq!(docs[0].position("/a/b"), pos(1, 5));
        assert_eq!(docs[0].position("/x~1y~0"), pos(2, 1));
    }

    #[test]
    fn core_schema_scalars() {
        let text = "a: null\nb: ~\nc: Null\nd: NULL\ne:\nf: true\ng: False\nh: TRUE\n\
i: 12\nj: -3\nk: +4\nl: 0x1F\nm: 0o17\nn: 1.5\no: 1e3\np: .5\nq: '123'\nr: \"true\"\n\
s: yes\nt: 1_000\nu: 18446744073709551615\nv: |\n  lit\nw: !!str 12\nx: !!int \"7\"\n\
y: !!float 2\nz: !!bool \"false\"\naa: !!null ''\nab: !!map {k: v}\nac: !!seq [1]\nad: -0x1\n\
ae: 0o\naf: ! 5\n";
        let docs = parse(text);
        assert_eq!(
            docs[0].value,
            json!({"a": null, "b": null, "c": null, "d": null, "e": null,
                   "f": true, "g": false, "h": true,
                   "i": 12, "j": -3, "k": 4, "l": 31, "m": 15, "n": 1.5, "o": 1000.0, "p": 0.5,
                   "q": "123", "r": "true", "s": "yes", "t": "1_000", "u": u64::MAX,
                   "v": "lit\n", "w": "12", "x": 7, "y": 2.0, "z": false, "aa": null,
                   "ab": {"k": "v"}, "ac": [1], "ad": "-0x1", "ae": "0o", "af": "5"})
        );
        assert!(docs[0].value["i"].is_i64());
        assert!(docs[0].value["o"].is_f64());
    }

    #[test]
    fn keys_are_strings() {
        let docs = parse("1: a\ntrue: b\n~: c\n'2': d\n");
        assert_eq!(
            docs[0].value,
            json!({"1": "a", "true": "b", "~": "c", "2": "d"})
        );
        assert!(err("? [a]\n: 1\n")
            .message
            .contains("cannot be a mapping key"));
        assert!(err("{a: 1}: 2\n")
            .message
            .contains("cannot be a mapping key"));
    }

    #[test]
    fn scalar_errors() {
        let e = err("a: .inf\n");
        assert_eq!(e.position, pos(1, 4));
        assert!(err("a: -.Inf\n").message.contains("infinity"));
        assert!(err("a: .NaN\n").message.contains("NaN"));
        assert!(err("a: 99999999999999999999\n").message.contains("64 bits"));
        assert!(err("a: !!int x\n").message.contains("!!int"));
        let e = err("x: 1\ny: !foo bar\n");
        assert_eq!(e.message, "unknown tag !foo");
        assert_eq!(e.position.line, 2);
        assert_eq!(err("y: !!binary aGk=\n").message, "unknown tag !!binary");
        assert!(err("y: !!seq {a: 1}\n")
            .message
            .contains("cannot be applied"));
    }

    #[test]
    fn duplicate_key() {
        let e = err("---\nmetadata:\n  name: a\n  labels: {}\n  name: b\n");
        assert_eq!(e.message, "duplicate key \"name\"");
        assert_eq!(e.position, pos(5, 3));
    }

    #[test]
    fn aliases_and_merge() {
        let text = "base: &b\n  x: 1\n  y: 2\nother: &o {z: 3}\n\
c:\n  <<: *b\n  y: 20\nd:\n  y: 5\n  <<: [*o, *b]\nlist: &l [1, 2]\ncopy: *l\n";
        let docs = parse(text);
        assert_eq!(
            docs[0].value,
            json!({"base": {"x": 1, "y": 2}, "other": {"z": 3},
                   "c": {"y": 20, "x": 1}, "d": {"y": 5, "z": 3, "x": 1},
                   "list": [1, 2], "copy": [1, 2]})
        );
        assert_eq!(docs[0].position("/c/x"), pos(6, 3));
        assert_eq!(docs[0].position("/c/y"), pos(7, 3));
        assert_eq!(docs[0].position("/copy/1"), pos(12, 1));
        assert!(err("a:\n  <<: 1\n").message.contains("merge key"));
    }

    #[test]
    fn alias_bomb() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = err(&text);
        assert!(e.message.contains("too large"), "{}", e.message);
    }

    #[test]
    fn alias_bomb_split_across_documents_is_bounded_per_file() {
        // Each document alone stays far under the bound; together they pass it.
        let doc = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n";
        let text = vec![doc; 150].join("---\n");
        let e = err(&text);
        assert!(
            e.message
                .contains("aliases expand to more than 100000 nodes"),
            "{}",
            e.message
        );
        assert!(
            e.position.line > 1,
            "the error points into a later document"
        );
    }

    #[test]
    fn every_limit_is_an_error_naming_it() {
        let small = Limits {
            max_bytes: 100,
            max_documents: 2,
            max_nodes: 20,
            max_alias_nodes: 5,
            max_depth: 3,
        };
        let e = |text: &str| parse_documents_with(text, &small).unwrap_err().message;
        assert!(e(&"a: b\n".repeat(30)).contains("over the limit of 100 bytes"));
        assert!(e("a: 1\n---\nb: 2\n---\nc: 3\n").contains("limit of 2 documents"));
        assert!(e("[[[[1]]]]").contains("deeper than 3 levels"));
        assert!(
            e("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]")
                .contains("more than 20 nodes")
        );
        assert!(e("a: &a [1, 2, 3]\nb: *a\nc: *a\n").contains("more than 5 nodes"));
        assert_eq!(
            parse_documents_with("a: &a [1, 2]\nb: *a\n", &small)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn bom_and_every_line_ending_read_alike() {
        let lf = "# tokens\napiVersion: v1\nkind: Token\nmetadata:\n  name: a\n---\nkind: Token\n";
        let want: Vec<Value> = parse(lf).into_iter().map(|d| d.value).collect();
        assert_eq!(want.len(), 2);
        for text in [
            lf.to_owned(),
            lf.replace('\n', "\r\n"),
            lf.replace('\n', "\r"),
            format!("\u{feff}{lf}"),
            format!("\u{feff}{}", lf.replace('\n', "\r")),
        ] {
            let got: Vec<Value> = parse(&normalize_text(text.clone()))
                .into_iter()
                .map(|d| d.value)
                .collect();
            assert_eq!(got, want, "{text:?}");
        }
        assert_eq!(normalize_text("a\r\nb\rc".into()), "a\r\nb\nc");
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let text = format!("{}{}\n", "[".repeat(2000), "]".repeat(2000));
        let e = err(&text);
        assert!(
            e.message.contains("nesting") || e.message.contains("recursion limit"),
            "{}",
            e.message
        );
    }

    #[test]
    fn syntax_error_position() {
        let e = err("a: 1\n---\nb: 1\nc: d: e\n");
        assert_eq!(e.position, pos(4, 5));
        assert!(
            e.message.contains("mapping values are not allowed"),
            "{}",
            e.message
        );
        let e = err("ok: 1\n---\nx: [1, 2\n");
        assert_eq!(e.position.line, 4);
    }

    #[test]
    fn replace_keeps_other_documents() {
        let docs = parse(MULTI);
        let body = render_document(&json!({"kind": "B2"}), None).unwrap();
        let out = replace_document(MULTI, &docs[1], &body);
        let start = docs[1].span.start;
        assert_eq!(&out[..start], &MULTI[..start]);
        let tail = &MULTI[docs[1].body.end..];
        assert!(tail.starts_with("...\n"));
        assert!(out.ends_with(tail));
        assert!(out.contains("---\nkind: B2\n...\n"));
        let again = parse(&out);
        assert_eq!(again.len(), 3);
        assert_eq!(again[1].value, json!({"kind": "B2"}));
        assert_eq!(again[2].value, docs[2].value);

        // The first document keeps its header and `---`.
        let out = replace_document(MULTI, &docs[0], "kind: Z\n");
        assert!(out.starts_with("# file header\n---\nkind: Z\n---\nkind: B"));
        // A `---` line with content is rewritten as a bare `---`.
        let text = "a: 1\n--- !!map\nb: 2\n";
        let docs = parse(text);
        assert_eq!(
            replace_document(text, &docs[1], "c: 3\n"),
            "a: 1\n---\nc: 3\n"
        );
    }

    #[test]
    fn remove_documents() {
        let text = "a: 1\n---\n# b header\nb: 2\n---\nc: 3\n";
        let docs = parse(text);
        assert_eq!(
            remove_document(text, &docs[0]),
            "---\n# b header\nb: 2\n---\nc: 3\n"
        );
        assert_eq!(remove_document(text, &docs[1]), "a: 1\n---\nc: 3\n");
        assert_eq!(
            remove_document(text, &docs[2]),
            "a: 1\n---\n# b header\nb: 2\n"
        );

        let text = "# header\n---\na: 1\n---\n# c header\n---\nc: 3\n---\n# end\n";
        let docs = parse(text);
        assert_eq!(docs.len(), 2);
        assert_eq!(remove_document(text, &docs[1]), "# header\n---\na: 1\n");
        assert_eq!(
            remove_document(text, &docs[0]),
            "---\n# c header\n---\nc: 3\n---\n# end\n"
        );
        let only = parse("x: 1\n");
        assert_eq!(remove_document("x: 1\n", &only[0]), "");
    }

    #[test]
    fn append_documents() {
        assert_eq!(append_document("", "a: 1\n"), "a: 1\n");
        assert_eq!(append_document("# c\n", "a: 1"), "# c\na: 1\n");
        assert_eq!(append_document("a: 1", "b: 2\n"), "a: 1\n---\nb: 2\n");
        assert_eq!(append_document("a: 1\n", "b: 2\n"), "a: 1\n---\nb: 2\n");
        let docs = parse(&append_document("a: 1\n---\n# end\n", "b: 2\n"));
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].value, json!({"b": 2}));
    }

    #[test]
    fn render_round_trip() {
        let strings = [
            "true",
            "True",
            "1.0",
            "",
            "null",
            "~",
            "a: b",
            "- x",
            "été ✓ 日本",
            "line1\nline2",
            "trail\n",
            "  lead",
            "#x",
            "x #y",
            ".inf",
            "-.Inf",
            ".nan",
            "0x1F",
            "0o17",
            "1e3",
            ".5",
            "+1",
            "-0",
            "1_000",
            "yes",
            "'",
            "\"",
            "---",
            "...",
            "--- x",
            "*a",
            "&a",
            "!x",
            "%x",
            "@x",
            "{}",
            "[]",
            "|",
            ">",
            "?",
            "key: |\n  x",
            "\t",
            "a\r\nb",
            "\u{1F600}",
        ];
        let mut values: Vec<Value> = strings.iter().map(|s| json!(s)).collect();
        values.push(json!(strings.to_vec()));
        values.push(Value::Object(
            strings.iter().map(|s| (s.to_string(), json!(s))).collect(),
        ));
        values.extend([
            json!(null),
            json!({}),
            json!([]),
            json!({"a": [[], {}, [1, [2, {"b": null}]]], "n": 1e300, "f": -0.5, "u": u64::MAX,
                   "i": i64::MIN, "m": 1.0, "long": "word ".repeat(40)}),
            json!([{"x": "a\nb\n\n"}, {"y": " \n "}]),
        ]);
        for v in values {
            let text = render_document(&v, None).unwrap();
            let docs = parse(&text);
            assert_eq!(docs.len(), 1, "{text}");
            assert_eq!(docs[0].value, v, "{text}");
        }
    }

    #[test]
    fn comments_carry_over() {
        let old = "---
# head comment
kind: Deployment # the kind
# about metadata
metadata:
  # the name
  name: old   # trailing name
  gone: 1 # dropped
spec:
  script: |
    # not a comment
    echo hi
  # before items
  items:
    # first item
    - a # item a
    - b
# the end
";
        let docs = parse(old);
        assert_eq!(
            docs[0].value["spec"]["script"],
            json!("# not a comment\necho hi\n")
        );
        let mut v = docs[0].value.clone();
        v["metadata"] = json!({"name": "new", "labels": {"x": "y"}});
        v["spec"]["items"] = json!(["a2", "b", "c"]);
        let new_body = render_document(&v, Some((&old[docs[0].span.clone()], &docs[0]))).unwrap();
        let expected = "# head comment
kind: Deployment # the kind
# about metadata
metadata:
  # the name
  name: new # trailing name
  labels:
    x: y
spec:
  script: |
    # not a comment
    echo hi
  # before items
  items:
  # first item
  - a2 # item a
  - b
  - c
# the end
";
        assert_eq!(new_body, expected);
        let out = replace_document(old, &docs[0], &new_body);
        assert_eq!(out, format!("---\n{expected}"));
        assert_eq!(parse(&out)[0].value, v);
    }

    #[test]
    fn comments_that_would_break_the_value_are_dropped() {
        let old = "a: x # c\n";
        let docs = parse(old);
        let v = json!({"a": "word ".repeat(40).trim_end()});
        let body = render_document(&v, Some((old, &docs[0]))).unwrap();
        assert_eq!(parse(&body)[0].value, v);
    }

    #[test]
    fn trailing_comment_detection() {
        assert_eq!(trailing_comment("a: b # c"), Some("# c"));
        assert_eq!(trailing_comment("a: b#c"), None);
        assert_eq!(trailing_comment("a: 'x # y' # z"), Some("# z"));
        assert_eq!(trailing_comment("a: \"x \\\" # y\""), None);
        assert_eq!(trailing_comment("a: it's # z"), Some("# z"));
        assert_eq!(trailing_comment("a: 'it''s # q'"), None);
    }

    #[test]
    fn quoted_multiline_and_crlf() {
        let old = "a: \"x\n  # not a comment\"\n# real\nb: 1\n";
        let docs = parse(old);
        assert_eq!(docs[0].value, json!({"a": "x # not a comment", "b": 1}));
        let v = json!({"a": "y", "b": 2});
        let body = render_document(&v, Some((old, &docs[0]))).unwrap();
        assert_eq!(body, "a: y\n# real\nb: 2\n");

        let text = "a: 1 # one\r\n---\r\nb: 2\r\n";
        let docs = parse(text);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].value, json!({"b": 2}));
        assert_eq!(remove_document(text, &docs[1]), "a: 1 # one\r\n");
    }
}
