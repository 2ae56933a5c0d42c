//! A problem found in the manifests, located by file, line, column and JSON pointer, and its
//! three printed forms (text, JSON, GitHub Actions annotation).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Kind;

/// One error in the manifests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// File relative to the manifests root (empty for whole-set errors such as a missing Config).
    pub file: PathBuf,
    /// 1-based; 0 when the error belongs to no line.
    pub line: usize,
    /// 1-based; 0 when the error belongs to no line.
    pub column: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// JSON pointer (RFC 6901) of the offending field within the document.
    pub pointer: String,
    pub message: String,
}

impl Diagnostic {
    /// An error that belongs to the set as a whole, not to one file.
    pub fn global(message: impl Into<String>) -> Self {
        Diagnostic {
            file: PathBuf::new(),
            line: 0,
            column: 0,
            kind: None,
            name: None,
            pointer: String::new(),
            message: message.into(),
        }
    }

    /// The text form, `FILE:LINE:COL: KIND/NAME: POINTER: message`, with `root` prefixed to the file.
    pub fn display_in<'a>(&'a self, root: &'a Path) -> impl fmt::Display + 'a {
        DisplayIn { d: self, root }
    }

    /// `Kind/name` when known.
    pub fn subject(&self) -> Option<String> {
        match (&self.kind, &self.name) {
            (Some(k), Some(n)) => Some(format!("{k}/{n}")),
            (Some(k), None) => Some(k.to_string()),
            (None, Some(n)) => Some(n.clone()),
            (None, None) => None,
        }
    }

    /// One JSON object, with `root` prefixed to the file (the `--format json` line).
    pub fn to_json_in(&self, root: &Path) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["file"] = serde_json::Value::String(join(root, &self.file));
        v["severity"] = "error".into();
        v
    }

    /// A GitHub Actions workflow command that annotates the file in a pull request.
    pub fn to_github_in(&self, root: &Path) -> String {
        let mut props = format!("file={}", escape_property(&join(root, &self.file)));
        if self.line > 0 {
            props.push_str(&format!(",line={},col={}", self.line, self.column));
        }
        if let Some(subject) = self.subject() {
            props.push_str(&format!(",title={}", escape_property(&subject)));
        }
        format!(
            "::error {props}::{}",
            escape_data(&self.message_with_pointer())
        )
    }

    fn message_with_pointer(&self) -> String {
        if self.pointer.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.pointer, self.message)
        }
    }
}

fn join(root: &Path, file: &Path) -> String {
    if file.as_os_str().is_empty() {
        root.display().to_string()
    } else if file.is_absolute() || root.as_os_str().is_empty() {
        file.display().to_string()
    } else {
        root.join(file).display().to_string()
    }
}

struct DisplayIn<'a> {
    d: &'a Diagnostic,
    root: &'a Path,
}

impl fmt::Display for DisplayIn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.d;
        write!(f, "{}", join(self.root, &d.file))?;
        if d.line > 0 {
            write!(f, ":{}:{}", d.line, d.column)?;
        }
        if let Some(subject) = d.subject() {
            write!(f, ": {subject}")?;
        }
        write!(f, ": {}", d.message_with_pointer())
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.display_in(Path::new("")).fmt(f)
    }
}

// GitHub's workflow-command escaping: data escapes %, CR, LF; properties also `:` and `,`.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Diagnostic {
        Diagnostic {
            file: "tokens/ci.yaml".into(),
            line: 7,
            column: 3,
            kind: Some(Kind::Token),
            name: Some("ci".into()),
            pointer: "/spec/scope".into(),
            message: "must be one of: full, read, execute".into(),
        }
    }

    #[test]
    fn text_form_is_file_line_col_kind_name_message() {
        assert_eq!(
            sample().display_in(Path::new("manifests")).to_string(),
            "manifests/tokens/ci.yaml:7:3: Token/ci: /spec/scope: must be one of: full, read, execute"
        );
        assert_eq!(
            Diagnostic::global("no Config named default")
                .display_in(Path::new("manifests"))
                .to_string(),
            "manifests: no Config named default"
        );
    }

    #[test]
    fn github_form_escapes_properties_and_data() {
        let mut d = sample();
        d.message = "50% bad,\nreally".into();
        assert_eq!(
            d.to_github_in(Path::new("m")),
            "::error file=m/tokens/ci.yaml,line=7,col=3,title=Token/ci::/spec/scope: 50%25 bad,%0Areally"
        );
    }

    #[test]
    fn json_form_has_every_field() {
        let v = sample().to_json_in(Path::new("m"));
        assert_eq!(v["file"], "m/tokens/ci.yaml");
        assert_eq!(v["line"], 7);
        assert_eq!(v["column"], 3);
        assert_eq!(v["kind"], "Token");
        assert_eq!(v["name"], "ci");
        assert_eq!(v["pointer"], "/spec/scope");
        assert_eq!(v["severity"], "error");
    }
}
