//! YAML streams: splitting a file into documents and parsing each into a value. The one module
//! that talks to the YAML library, so its limits and error messages are handled in one place.

use serde_yaml::Value;

/// How YAML syntax errors begin in diagnostics.
pub const SYNTAX_ERROR: &str = "unparseable YAML";

/// Below this size a file is parsed on one thread; spawning costs more than it saves.
pub(super) const PARALLEL_THRESHOLD: usize = 256 * 1024;

/// One YAML document of a stream: its text (starting at its `---` line, if any), its index, and
/// the line it starts on (0-based) so error positions refer to the whole file.
pub(super) struct Document<'a> {
    pub text: &'a str,
    pub index: usize,
    pub first_line: usize,
}

impl Document<'_> {
    /// The document's value, or the syntax error with line numbers counted from the top of the file.
    pub fn parse(&self) -> Result<Value, String> {
        serde_yaml::from_str::<Value>(self.text)
            .map_err(|err| format!("{SYNTAX_ERROR}: {}", shift_line_numbers(&err.to_string(), self.first_line)))
    }
}

/// Splits a YAML stream at document markers (`---` at the start of a line, alone or followed by
/// a space). YAML forbids such a line inside content, so the split is exact. Text before the
/// first marker is a document only if it holds content.
pub(super) fn split_documents(text: &str) -> Vec<Document<'_>> {
    let mut starts = vec![(0usize, 0usize)];
    let mut offset = 0;
    for (line_number, line) in text.split_inclusive('\n').enumerate() {
        let content = line.trim_end_matches(['\n', '\r']);
        let is_marker = content == "---" || content.starts_with("--- ") || content.starts_with("---\t");
        if is_marker && offset > 0 {
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
        documents.push(Document { text: doc, index: documents.len(), first_line });
    }
    documents
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
        let indexes =
            |text: &str| split_documents(text).iter().map(|d| (d.index, d.text.to_string())).collect::<Vec<_>>();
        assert_eq!(indexes("---\na: 1\n---\nb: 2\n"), [(0, "---\na: 1\n".into()), (1, "---\nb: 2\n".into())]);
        assert_eq!(indexes("# comment\n---\na: 1\n").len(), 1);
        assert_eq!(indexes("a: 1\n--- |\n  text\nb: ---x\n").len(), 2);
        // `---` not at the start of a line, or followed by other characters, is content.
        assert_eq!(indexes("a: |\n  ---\nb: ---\nc: ----\n").len(), 1);
    }

    #[test]
    fn syntax_errors_name_the_line_in_the_file() {
        let documents = split_documents("a: 1\nc: 2\n---\nb: [\n");
        let err = documents[1].parse().unwrap_err();
        assert!(err.starts_with(SYNTAX_ERROR), "{err}");
        // The document's own line 3 (after `---` and `b: [`) is the file's line 5.
        assert!(err.contains("line 5"), "{err}");
    }
}
