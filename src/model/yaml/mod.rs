//! YAML streams: splitting a file into documents and parsing each into a value. The one module
//! that talks to the YAML library, so its limits and error messages are handled in one place.
//!
//! Limits (README, "Limits"): a stream (a file, a Service annotation) of at most
//! [`MAX_STREAM_BYTES`] and [`MAX_DOCUMENTS`]; each document at most [`MAX_DOCUMENT_BYTES`] and
//! within [`DOCUMENT_LIMITS`] (depth, and nodes and scalar bytes with aliases expanded), checked by
//! [`limits::check`] before serde_yaml builds anything.

pub mod limits;

use crate::diagnostic::Kind;
use limits::DocumentLimits;
use serde_yaml::Value;

/// How YAML syntax errors begin in diagnostics.
pub const SYNTAX_ERROR: &str = "unparseable YAML";

/// Largest file (or Service annotation) read as configuration.
pub const MAX_STREAM_BYTES: usize = 16 << 20;
/// Most documents in one stream (the 50,000-Mapping benchmark file has 50,201).
pub const MAX_DOCUMENTS: usize = 100_000;
/// Largest single document.
pub const MAX_DOCUMENT_BYTES: usize = 4 << 20;
/// What one document may expand to: about 25 MiB of parsed values at most (serde_yaml spends
/// some 230 bytes per node), where an alias bomb of 10 KiB would otherwise take gigabytes.
pub const DOCUMENT_LIMITS: DocumentLimits =
    DocumentLimits { max_depth: 64, max_nodes: 100_000, max_scalar_bytes: 8 << 20 };

/// Why a document (or a whole stream) was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// [`Kind::Syntax`] or [`Kind::Limit`].
    pub kind: Kind,
    pub message: String,
}

impl ParseError {
    fn limit(message: String) -> ParseError {
        ParseError { kind: Kind::Limit, message }
    }
}

/// Below this size a file is parsed on one thread; spawning costs more than it saves.
pub(super) const PARALLEL_THRESHOLD: usize = 256 * 1024;

/// One YAML document of a stream: its text (starting at its `---` line, if any), its index, and
/// the line it starts on (0-based) so error positions refer to the whole file.
pub(super) struct Document<'a> {
    pub text: &'a str,
    pub index: usize,
    pub first_line: usize,
    /// Anything but blank lines, comments and directives.
    has_content: bool,
}

impl Document<'_> {
    /// The document's value, or why it was not read, with line numbers counted from the top of
    /// the file.
    pub fn parse(&self) -> Result<Value, ParseError> {
        if !self.has_content {
            return Ok(Value::Null);
        }
        if self.text.len() > MAX_DOCUMENT_BYTES {
            let (size, max) = (self.text.len(), MAX_DOCUMENT_BYTES);
            return Err(ParseError::limit(format!(
                "document of {size} bytes is over the limit of {max} bytes; not read"
            )));
        }
        if let Err(breach) = limits::check(self.text, &DOCUMENT_LIMITS) {
            let line = breach.line + self.first_line as u64;
            return Err(ParseError::limit(format!(
                "document {} (at line {line} column {}); not read",
                breach.message, breach.column
            )));
        }
        serde_yaml::from_str::<Value>(self.text).map_err(|err| ParseError {
            kind: Kind::Syntax,
            message: format!("{SYNTAX_ERROR}: {}", shift_line_numbers(&err.to_string(), self.first_line)),
        })
    }
}

/// Checks a stream's size before it is split or parsed.
pub(super) fn check_stream_size(text: &str) -> Result<(), ParseError> {
    if text.len() > MAX_STREAM_BYTES {
        let (size, max) = (text.len(), MAX_STREAM_BYTES);
        return Err(ParseError::limit(format!("{size} bytes is over the limit of {max} bytes per file; not read")));
    }
    Ok(())
}

/// Splits a YAML stream at document markers (`---` at the start of a line, alone or followed by
/// a space). YAML forbids such a line inside content, so the split is exact. Text before the
/// first marker is a document only if it holds content. More than [`MAX_DOCUMENTS`] is an error
/// (found without keeping them all).
pub(super) fn split_documents(text: &str) -> Result<Vec<Document<'_>>, ParseError> {
    let mut starts = vec![(0usize, 0usize)];
    let mut offset = 0;
    for (line_number, line) in text.split_inclusive('\n').enumerate() {
        let content = line.trim_end_matches(['\n', '\r']);
        let is_marker = content == "---" || content.starts_with("--- ") || content.starts_with("---\t");
        if is_marker && offset > 0 {
            if starts.len() >= MAX_DOCUMENTS {
                let max = MAX_DOCUMENTS;
                return Err(ParseError::limit(format!("more than {max} documents in one file; not read")));
            }
            starts.push((offset, line_number));
        }
        offset += line.len();
    }
    let mut documents = Vec::with_capacity(starts.len());
    for (i, &(start, first_line)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(text.len(), |next| next.0);
        let doc = &text[start..end];
        let has_content = doc.lines().any(|line| {
            let line = line.trim();
            !line.is_empty() && !line.starts_with('#') && !line.starts_with('%')
        });
        if i == 0 && !has_content {
            continue;
        }
        documents.push(Document { text: doc, index: documents.len(), first_line, has_content });
    }
    Ok(documents)
}

/// serde_yaml reports positions within the document it was given; shift them to file lines.
fn shift_line_numbers(message: &str, offset: usize) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("line ") {
        let (before, after) = rest.split_at(at + "line ".len());
        out.push_str(before);
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        match after[..digits].parse::<usize>() {
            Ok(line) => out.push_str(&(line + offset).to_string()),
            Err(_) => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// A value's type as diagnostics name it.
pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a sequence",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_split_follows_yaml_markers() {
        let indexes = |text: &str| {
            split_documents(text).unwrap().iter().map(|d| (d.index, d.text.to_string())).collect::<Vec<_>>()
        };
        assert_eq!(indexes("---\na: 1\n---\nb: 2\n"), [(0, "---\na: 1\n".into()), (1, "---\nb: 2\n".into())]);
        assert_eq!(indexes("# comment\n---\na: 1\n").len(), 1);
        assert_eq!(indexes("a: 1\n--- |\n  text\nb: ---x\n").len(), 2);
        // `---` not at the start of a line, or followed by other characters, is content.
        assert_eq!(indexes("a: |\n  ---\nb: ---\nc: ----\n").len(), 1);
    }

    #[test]
    fn syntax_errors_name_the_line_in_the_file() {
        let documents = split_documents("a: 1\nc: 2\n---\nb: [\n").unwrap();
        let err = documents[1].parse().unwrap_err();
        assert_eq!(err.kind, Kind::Syntax);
        assert!(err.message.starts_with(SYNTAX_ERROR), "{err:?}");
        // The document's own line 3 (after `---` and `b: [`) is the file's line 5.
        assert!(err.message.contains("line 5"), "{err:?}");
    }

    #[test]
    fn limits_are_reported_with_file_lines() {
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n".to_string()
            + &(b'b'..=b'f')
                .map(|c| {
                    let prev = (c - 1) as char;
                    format!("{}: &{} [{}]\n", c as char, c as char, vec![format!("*{prev}"); 10].join(", "))
                })
                .collect::<String>();
        let text = format!("x: 1\n---\n{bomb}");
        let documents = split_documents(&text).unwrap();
        let err = documents[1].parse().unwrap_err();
        assert_eq!(err.kind, Kind::Limit);
        assert!(err.message.contains("more than 100000 nodes"), "{err:?}");
        assert!(err.message.contains("at line 7 column"), "{err:?}");
    }

    #[test]
    fn too_many_documents_is_one_error() {
        let text = "---\na: 1\n".repeat(MAX_DOCUMENTS + 1);
        assert_eq!(split_documents(&text).err().map(|e| e.kind), Some(Kind::Limit));
        assert!(split_documents(&"---\na: 1\n".repeat(MAX_DOCUMENTS)).is_ok());
    }

    #[test]
    fn empty_documents_are_not_parsed() {
        let documents = split_documents("a: 1\n---\n# nothing\n---\n").unwrap();
        assert_eq!(documents.len(), 3);
        assert_eq!(documents[1].parse(), Ok(Value::Null));
    }
}
