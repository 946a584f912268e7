//! The `--alter` text understood: which clauses rename the table, rename or drop columns, or add
//! foreign keys, and the clean clause list that is appended to `ALTER TABLE <shadow>`.
//!
//! This is deliberately not a SQL parser: the server proves the ALTER by running it on the empty
//! shadow table. What is parsed here is only what the server cannot tell us afterwards (which
//! old column a renamed column came from) or what must be refused before anything is created.
//! Invariant: quoted identifiers, strings and comments never split a clause or match a keyword.

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// An unquoted word (keyword or identifier).
    Word(String),
    /// A backtick-quoted identifier, unquoted.
    Quoted(String),
    /// A string literal, unquoted.
    Str(String),
    Punct(char),
}

impl Token {
    fn is_word(&self, kw: &str) -> bool {
        matches!(self, Token::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    /// The identifier a token names, quoted or not.
    fn ident(&self) -> Option<&str> {
        match self {
            Token::Word(w) | Token::Quoted(w) => Some(w),
            _ => None,
        }
    }
}

/// Splits SQL text into tokens, dropping whitespace and comments.
pub fn tokenize(sql: &str) -> Result<Vec<Token>> {
    Ok(tokenize_with_offsets(sql)?.into_iter().map(|(t, _)| t).collect())
}

/// Tokens with the byte offset where each starts.
fn tokenize_with_offsets(sql: &str) -> Result<Vec<(Token, usize)>> {
    let byte_at: Vec<usize> = sql.char_indices().map(|(b, _)| b).collect();
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let offset = byte_at[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' || (c == '-' && chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_none_or(|c| c.is_whitespace())) {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            let end = (i + 2..chars.len().saturating_sub(1)).find(|&j| chars[j] == '*' && chars[j + 1] == '/');
            i = end.ok_or_else(|| bad_alter("an unterminated /* comment"))? + 2;
        } else if c == '`' || c == '\'' || c == '"' {
            let (text, next) = quoted(&chars, i)?;
            tokens.push((if c == '`' { Token::Quoted(text) } else { Token::Str(text) }, offset));
            i = next;
        } else if c.is_alphanumeric() || c == '_' || c == '$' || c == '@' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '$' | '.' | '@')) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            tokens.push((Token::Word(word.trim_end_matches('.').to_string()), offset));
            if word.ends_with('.') {
                tokens.push((Token::Punct('.'), byte_at[i - 1]));
            }
        } else {
            tokens.push((Token::Punct(c), offset));
            i += 1;
        }
    }
    Ok(tokens)
}

/// Reads a quoted run starting at `start`; a doubled quote (or a backslash escape in strings)
/// stands for itself. Returns the text and the index after the closing quote.
fn quoted(chars: &[char], start: usize) -> Result<(String, usize)> {
    let q = chars[start];
    let mut text = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && q != '`' && i + 1 < chars.len() {
            text.push(chars[i + 1]);
            i += 2;
        } else if c == q && chars.get(i + 1) == Some(&q) {
            text.push(q);
            i += 2;
        } else if c == q {
            return Ok((text, i + 1));
        } else {
            text.push(c);
            i += 1;
        }
    }
    Err(bad_alter(&format!("an unterminated {q}quote")))
}

fn bad_alter(what: &str) -> Error {
    Error::refused(format!("the --alter text has {what}"), "pass only the ALTER's clauses, e.g. --alter \"ADD COLUMN note VARCHAR(64)\"")
}

/// What the ALTER does that the tool must know before running it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlterSummary {
    /// The clauses to append to `ALTER TABLE <shadow>`, as the user wrote them.
    pub clauses: String,
    /// `(old, new)` column renames from `CHANGE old new ...` and `RENAME COLUMN old TO new`.
    pub renamed_columns: Vec<(String, String)>,
    /// Columns dropped with `DROP [COLUMN] name`.
    pub dropped_columns: Vec<String>,
}

impl AlterSummary {
    /// gh-ost's `--skip-renamed-columns`: each renamed column taken for a dropped one, its data
    /// not copied, beside a new column.
    pub fn renames_as_drops(mut self) -> AlterSummary {
        self.dropped_columns.extend(self.renamed_columns.drain(..).map(|(old, _)| old));
        self
    }
}

/// Reads the `--alter` value for `table`. Accepts an optional leading `ALTER TABLE [db.]table`
/// as gh-ost does, and refuses what cannot run as an online copy.
pub fn summarize(alter: &str, table: &str) -> Result<AlterSummary> {
    let text = strip_alter_table_prefix(alter.trim().trim_end_matches(';').trim(), table)?;
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Err(Error::usage("--alter is empty", "pass the ALTER's clauses, e.g. --alter \"ADD COLUMN note VARCHAR(64)\""));
    }
    if tokens.contains(&Token::Punct(';')) {
        return Err(Error::refused("the --alter text holds more than one statement", "pass a single ALTER's clauses; run other statements separately"));
    }
    let mut summary = AlterSummary { clauses: text.to_string(), ..Default::default() };
    for clause in split_clauses(&tokens) {
        inspect_clause(clause, &mut summary)?;
    }
    Ok(summary)
}

fn strip_alter_table_prefix<'a>(text: &'a str, table: &str) -> Result<&'a str> {
    let tokens = tokenize_with_offsets(text)?;
    let word = |i: usize, kw: &str| tokens.get(i).is_some_and(|(t, _)| t.is_word(kw));
    if !(word(0, "ALTER") && word(1, "TABLE")) {
        return Ok(text);
    }
    // The table reference is `t`, `db`.`t` or db.t (one word, split here).
    let mut next = 3;
    let mut named = tokens.get(2).and_then(|(t, _)| t.ident()).unwrap_or_default().to_string();
    if tokens.get(3).is_some_and(|(t, _)| *t == Token::Punct('.')) {
        named = tokens.get(4).and_then(|(t, _)| t.ident()).unwrap_or_default().to_string();
        next = 5;
    }
    let named = named.rsplit('.').next().unwrap_or_default();
    if named != table {
        return Err(Error::usage(format!("--alter names table `{named}` but --table is `{table}`"), "make --table and the table in --alter the same, or pass only the ALTER's clauses"));
    }
    Ok(tokens.get(next).map_or("", |&(_, offset)| text[offset..].trim()))
}

/// Splits tokens at commas outside parentheses.
fn split_clauses(tokens: &[Token]) -> Vec<&[Token]> {
    let mut clauses = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => depth -= 1,
            Token::Punct(',') if depth == 0 => {
                clauses.push(&tokens[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    clauses.push(&tokens[start..]);
    clauses
}

fn inspect_clause(clause: &[Token], summary: &mut AlterSummary) -> Result<()> {
    let word = |i: usize, kw: &str| clause.get(i).is_some_and(|t| t.is_word(kw));
    let ident = |i: usize| clause.get(i).and_then(Token::ident).map(str::to_string);
    if clause.iter().any(|t| t.is_word("FOREIGN") || t.is_word("REFERENCES")) && word(0, "ADD") {
        return Err(Error::refused(
            "the ALTER adds a foreign key; an online copy cannot keep foreign keys correct across the swap",
            "add the foreign key in a separate, native ALTER after the migration, or drop the clause",
        ));
    }
    if word(0, "ALGORITHM") || word(0, "LOCK") {
        return Err(Error::refused("the ALTER sets ALGORITHM or LOCK; alterego chooses how the shadow table is built", "remove the ALGORITHM=/LOCK= clause from --alter"));
    }
    if word(0, "RENAME") && !(word(1, "COLUMN") || word(1, "INDEX") || word(1, "KEY")) {
        return Err(Error::refused("the ALTER renames the table; an online schema change keeps the table's name", "rename the table with a separate RENAME TABLE statement"));
    }
    if word(0, "RENAME") && word(1, "COLUMN") {
        if let (Some(old), Some(new)) = (ident(2), ident(4)) {
            summary.renamed_columns.push((old, new));
        }
    }
    if word(0, "CHANGE") {
        let at = if word(1, "COLUMN") { 2 } else { 1 };
        let at = if word(at, "IF") && word(at + 1, "EXISTS") { at + 2 } else { at };
        if let (Some(old), Some(new)) = (ident(at), ident(at + 1)) {
            if !old.eq_ignore_ascii_case(&new) {
                summary.renamed_columns.push((old, new));
            }
        }
    }
    if word(0, "DROP") {
        let kinds = ["INDEX", "KEY", "PRIMARY", "FOREIGN", "CONSTRAINT", "CHECK", "PARTITION", "SYSTEM", "PERIOD"];
        if !kinds.iter().any(|k| word(1, k)) {
            let at = if word(1, "COLUMN") { 2 } else { 1 };
            let at = if word(at, "IF") && word(at + 1, "EXISTS") { at + 2 } else { at };
            if let Some(col) = ident(at) {
                summary.dropped_columns.push(col);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_renames_and_drops() {
        let s = summarize("CHANGE COLUMN `a` `b` INT, RENAME COLUMN c TO `d e`, DROP COLUMN f, DROP INDEX g, DROP h, ADD COLUMN x INT DEFAULT 1", "t").unwrap();
        assert_eq!(s.renamed_columns, vec![("a".into(), "b".into()), ("c".into(), "d e".into())]);
        assert_eq!(s.dropped_columns, vec!["f".to_string(), "h".to_string()]);
    }

    #[test]
    fn change_without_rename_is_not_a_rename() {
        let s = summarize("CHANGE a a BIGINT NOT NULL, MODIFY b TEXT", "t").unwrap();
        assert!(s.renamed_columns.is_empty());
    }

    #[test]
    fn refuses_table_rename_fk_and_algorithm() {
        assert!(summarize("RENAME TO other", "t").unwrap_err().message.contains("renames the table"));
        assert!(summarize("ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES p(id)", "t").unwrap_err().message.contains("foreign key"));
        assert!(summarize("ADD COLUMN a INT, ALGORITHM=INPLACE", "t").unwrap_err().message.contains("ALGORITHM"));
        assert!(summarize("ADD a INT; DROP TABLE x", "t").unwrap_err().message.contains("more than one statement"));
        assert!(summarize("RENAME INDEX a TO b", "t").is_ok());
    }

    #[test]
    fn quoting_and_comments_do_not_confuse_clauses() {
        let s = summarize("ADD COLUMN `x,y` VARCHAR(10) DEFAULT 'a, RENAME TO z' /* , DROP q */, DROP `w``v`", "t").unwrap();
        assert_eq!(s.dropped_columns, vec!["w`v".to_string()]);
        assert!(s.renamed_columns.is_empty());
    }

    #[test]
    fn strips_alter_table_prefix() {
        let s = summarize("ALTER TABLE `shop`.`orders` ADD COLUMN n INT", "orders").unwrap();
        assert_eq!(s.clauses, "ADD COLUMN n INT");
        let s = summarize("alter table orders drop column n;", "orders").unwrap();
        assert_eq!(s.clauses, "drop column n");
        assert_eq!(summarize("ALTER TABLE other ADD n INT", "orders").unwrap_err().kind, crate::error::ExitKind::Usage);
    }

    #[test]
    fn unterminated_quote_is_refused() {
        assert!(summarize("ADD COLUMN `x INT", "t").is_err());
    }
}
