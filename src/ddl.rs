//! Which DDL statements from the binlog change the table being migrated.
//!
//! The binlog reader meets every DDL statement run on the server while the migration runs. One
//! that changes the original table (alters, drops, renames, truncates or rebuilds it, adds an
//! index or a trigger to it, or drops its database) makes the shadow table a copy of something
//! that no longer exists, so the run stops. Every other statement, whatever the names it
//! mentions (an event, view, procedure or another table's column named like the table), does
//! not.
//!
//! Invariants: a statement is read with `sqlparser`'s MySQL dialect; what it cannot parse
//! is read by its head (the verb and the kind of object, through the same crate's tokenizer):
//! a statement on an object that cannot be a table (an event, a procedure, a view...) is not a
//! change; a trigger is one when it is created on the table; anything else is a change when it
//! names the table anywhere. So the fallback may stop a run without need, never miss a change.

use sqlparser::ast::{ObjectName, ObjectType, Statement};
use sqlparser::dialect::MySqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Word};

/// The table being migrated, and the default database the statement ran with.
struct Target<'a> {
    default_database: &'a str,
    database: &'a str,
    table: &'a str,
}

impl Target<'_> {
    /// Whether `name` (`t` or `db.t`) is the table.
    fn is(&self, name: &ObjectName) -> bool {
        let parts: Vec<&str> = name.0.iter().filter_map(|p| p.as_ident()).map(|i| i.value.as_str()).collect();
        self.is_parts(&parts)
    }

    fn is_parts(&self, parts: &[&str]) -> bool {
        match parts {
            [table] => *table == self.table && self.default_database == self.database,
            [database, table] => *database == self.database && *table == self.table,
            _ => false,
        }
    }

    fn is_database(&self, name: &ObjectName) -> bool {
        matches!(name.0.as_slice(), [part] if part.as_ident().is_some_and(|i| i.value == self.database))
    }
}

/// Whether `query`, run with `default_database` as the default, changes
/// `database`.`table`. `CREATE TABLE ... LIKE t` reads the table and is not a change; a shadow
/// table's name (`_t_gho`) is a different identifier.
pub fn changes_table(query: &str, default_database: &str, database: &str, table: &str) -> bool {
    let target = Target { default_database, database, table };
    match Parser::parse_sql(&MySqlDialect {}, query) {
        Ok(statements) => statements.iter().any(|s| parsed_changes(s, &target)),
        Err(_) => unparsed_changes(query, &target),
    }
}

fn parsed_changes(statement: &Statement, target: &Target) -> bool {
    match statement {
        Statement::AlterTable(alter) => target.is(&alter.name),
        Statement::Drop { object_type: ObjectType::Table, names, .. } => names.iter().any(|n| target.is(n)),
        Statement::Drop { object_type: ObjectType::Index, table, .. } => table.as_ref().is_some_and(|t| target.is(t)),
        Statement::Drop { object_type: ObjectType::Database | ObjectType::Schema, names, .. } => names.iter().any(|n| target.is_database(n)),
        Statement::RenameTable(renames) => renames.iter().any(|r| target.is(&r.old_name) || target.is(&r.new_name)),
        Statement::Truncate(truncate) => truncate.table_names.iter().any(|t| target.is(&t.name)),
        Statement::CreateIndex(index) => target.is(&index.table_name),
        Statement::CreateTrigger(trigger) => target.is(&trigger.table_name),
        Statement::CreateTable(create) => create.or_replace && target.is(&create.name),
        _ => false,
    }
}

/// Kinds of object a DDL statement can name that are never a table.
const NOT_TABLES: &[&str] = &["EVENT", "PROCEDURE", "FUNCTION", "VIEW", "USER", "ROLE", "SERVER", "TABLESPACE", "LOGFILE", "RESOURCE", "PACKAGE", "INSTANCE", "UNDO", "SYNONYM", "AGGREGATE"];

/// Words between the verb and the kind of object: `CREATE OR REPLACE DEFINER = x SQL SECURITY
/// INVOKER ALGORITHM = MERGE VIEW`, `ALTER ONLINE IGNORE TABLE`, `DROP TEMPORARY TABLE`.
const MODIFIERS: &[&str] = &[
    "OR",
    "REPLACE",
    "ONLINE",
    "IGNORE",
    "TEMPORARY",
    "UNIQUE",
    "FULLTEXT",
    "SPATIAL",
    "SQL",
    "SECURITY",
    "INVOKER",
    "DEFINER",
    "ALGORITHM",
    "UNDEFINED",
    "MERGE",
    "TEMPTABLE",
    "NO_WRITE_TO_BINLOG",
    "LOCAL",
];

/// The fallback for what `sqlparser` cannot parse: fail safe, as the module says.
fn unparsed_changes(query: &str, target: &Target) -> bool {
    // What does not even tokenize cannot be read: taken for a change.
    let Ok(tokens) = Tokenizer::new(&MySqlDialect {}, query).tokenize() else { return true };
    let tokens: Vec<Token> = tokens.into_iter().filter(|t| !matches!(t, Token::Whitespace(_))).collect();
    let Some(Token::Word(verb)) = tokens.first() else { return false };
    if !matches!(verb.keyword, Keyword::ALTER | Keyword::CREATE | Keyword::DROP | Keyword::RENAME | Keyword::TRUNCATE | Keyword::OPTIMIZE | Keyword::REPAIR) {
        return false;
    }
    let kind = tokens[1..].iter().position(|t| match t {
        Token::Word(w) => !is_one_of(w, MODIFIERS) && !is_account_part(w),
        _ => false,
    });
    let replaces = tokens.iter().any(|t| matches!(t, Token::Word(w) if w.keyword == Keyword::REPLACE));
    match kind.map(|i| (i + 1, &tokens[i + 1])) {
        Some((_, Token::Word(w))) if is_one_of(w, NOT_TABLES) => false,
        Some((i, Token::Word(w))) if w.keyword == Keyword::TRIGGER => trigger_table(&tokens[i..]).is_none_or(|name| target.is_parts(&name)),
        Some(_) if verb.keyword == Keyword::CREATE && !replaces && !tokens.iter().any(|t| matches!(t, Token::Word(w) if matches!(w.keyword, Keyword::INDEX | Keyword::KEY))) => false,
        Some((i, Token::Word(w))) if w.keyword == Keyword::TABLE => table_names(&tokens[i + 1..]).iter().any(|name| target.is_parts(name)),
        _ => names_table(&tokens, target),
    }
}

/// The names of `[IF [NOT] EXISTS] a [, b] [TO c ...]` after `TABLE`: one for `ALTER TABLE`,
/// the list for `DROP`, `RENAME`, `OPTIMIZE` and `REPAIR`.
fn table_names(tokens: &[Token]) -> Vec<Vec<&str>> {
    let is_word = |t: &Token, k: Keyword| matches!(t, Token::Word(w) if w.keyword == k);
    let mut rest = tokens;
    while let [first, tail @ ..] = rest {
        if !(is_word(first, Keyword::IF) || is_word(first, Keyword::NOT) || is_word(first, Keyword::EXISTS)) {
            break;
        }
        rest = tail;
    }
    let mut names = Vec::new();
    loop {
        let name = qualified_name(rest);
        if name.is_empty() {
            return names;
        }
        rest = &rest[name.len() * 2 - 1..];
        names.push(name);
        match rest {
            [separator, after @ ..] if *separator == Token::Comma || is_word(separator, Keyword::TO) => rest = after,
            _ => return names,
        }
    }
}

/// Whether `word` is one of `words`, unquoted (not every word here is one of `sqlparser`'s
/// keywords).
fn is_one_of(word: &Word, words: &[&str]) -> bool {
    word.quote_style.is_none() && words.iter().any(|w| word.value.eq_ignore_ascii_case(w))
}

/// Parts of `DEFINER = user@host` that the kind search steps over (the `=`, `@` and quotes are
/// not words).
fn is_account_part(word: &Word) -> bool {
    word.quote_style.is_some() || word.keyword == Keyword::CURRENT_USER
}

/// The table of `TRIGGER name timing event ON table`: the name after the first `ON`.
fn trigger_table(tokens: &[Token]) -> Option<Vec<&str>> {
    let on = tokens.iter().position(|t| matches!(t, Token::Word(w) if w.keyword == Keyword::ON))?;
    Some(qualified_name(&tokens[on + 1..]))
}

/// The `a` or `a.b` at the start of `tokens`.
fn qualified_name(tokens: &[Token]) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = tokens;
    while let [Token::Word(w), tail @ ..] = rest {
        parts.push(w.value.as_str());
        match tail {
            [Token::Period, after @ ..] => rest = after,
            _ => break,
        }
    }
    parts
}

/// Whether any name in `tokens` is the table: the fail-safe reading.
fn names_table(tokens: &[Token], target: &Target) -> bool {
    (0..tokens.len()).any(|i| {
        let after_period = i > 0 && tokens[i - 1] == Token::Period;
        let name = qualified_name(&tokens[i..]);
        !after_period && (target.is_parts(&name) || name.len() > 2 && target.is_parts(&name[..2]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_orders(query: &str) -> bool {
        changes_table(query, "shop", "shop", "orders")
    }

    #[test]
    fn ddl_on_the_table_is_a_change() {
        for query in [
            "ALTER TABLE `shop`.`orders` ADD x INT",
            "ALTER TABLE orders ADD COLUMN x INT, ALGORITHM=INPLACE, LOCK=NONE",
            "ALTER ONLINE TABLE orders ADD COLUMN x INT",
            "ALTER IGNORE TABLE orders ADD UNIQUE KEY (a)",
            "alter table `shop`.`orders` engine=innodb",
            "ALTER TABLE orders COMMENT='x', ROW_FORMAT=COMPRESSED",
            "ALTER TABLE orders PARTITION BY HASH(id) PARTITIONS 4",
            "DROP TABLE `orders` /* generated by server */",
            "DROP TABLE IF EXISTS `other`,`shop`.`orders` /* generated by server */",
            "DROP INDEX i ON orders",
            "DROP DATABASE shop",
            "RENAME TABLE `orders` TO `orders_old`, `orders_new` TO `orders`",
            "TRUNCATE orders",
            "TRUNCATE TABLE shop.orders",
            "CREATE INDEX i ON orders (a)",
            "create /* x */ unique index i on `shop`.`orders` (a(10)) USING BTREE",
            "CREATE DEFINER=`root`@`localhost` TRIGGER trg BEFORE INSERT ON orders FOR EACH ROW SET NEW.a = 1",
            "CREATE TRIGGER trg AFTER UPDATE ON `shop`.`orders` FOR EACH ROW INSERT INTO log VALUES (1)",
            "CREATE OR REPLACE TABLE orders (id int primary key)",
            "OPTIMIZE TABLE orders",
            "OPTIMIZE NO_WRITE_TO_BINLOG TABLE shop.orders",
            "REPAIR TABLE orders",
        ] {
            assert!(on_orders(query), "{query}");
        }
        assert!(changes_table("drop table shop.orders", "other", "shop", "orders"));
        assert!(changes_table("ALTER TABLE `shop`.`orders` ADD x INT", "", "shop", "orders"));
    }

    #[test]
    fn statements_on_other_objects_are_not_changes() {
        for query in [
            "drop event if exists orders",
            "create event orders on schedule every 1 second do begin insert into orders values (1); end",
            "ALTER EVENT orders DISABLE",
            "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `orders_v` AS select `orders`.`id` AS `id` from `orders`",
            "DROP VIEW IF EXISTS orders_v",
            "CREATE DEFINER=`root`@`localhost` PROCEDURE orders() BEGIN DROP TABLE orders; END",
            "DROP PROCEDURE IF EXISTS orders",
            "CREATE FUNCTION orders() RETURNS INT RETURN 1",
            "ALTER TABLE customers ADD COLUMN orders INT",
            "ALTER TABLE customers ADD FULLTEXT KEY orders (a) WITH PARSER ngram",
            "ALTER TABLE customers RENAME COLUMN a TO orders",
            "ALTER TABLE `other`.`orders` ADD x INT",
            "DROP TABLE `shop`.`_orders_gho`",
            "CREATE TABLE `shop`.`_orders_gho` LIKE `shop`.`orders`",
            "CREATE TABLE x (id int) SELECT * FROM orders",
            "CREATE DEFINER=`root`@`localhost` TRIGGER trg BEFORE INSERT ON customers FOR EACH ROW SET NEW.orders = 1",
            "DROP TRIGGER IF EXISTS orders",
            "CREATE DATABASE orders",
            "DROP DATABASE other",
            "ANALYZE TABLE orders",
            "INSERT INTO t VALUES ('orders')",
            "GRANT SELECT ON shop.orders TO u",
        ] {
            assert!(!on_orders(query), "{query}");
        }
        assert!(!changes_table("TRUNCATE orders", "other", "shop", "orders"));
    }

    #[test]
    fn quoted_names_are_unquoted() {
        assert!(changes_table("ALTER TABLE `a``b` ADD x INT", "shop", "shop", "a`b"));
        assert!(changes_table("ALTER ONLINE TABLE `a``b` ADD x INT", "shop", "shop", "a`b"));
        assert!(!changes_table("ALTER TABLE `a``b` ADD x INT", "shop", "shop", "a"));
    }
}
