//! gh-ost's `--include-triggers`: the original table's triggers are created on the new table
//! at the swap, each under the name `--trigger-suffix` gives it (the old names stay with the
//! old table, and trigger names are unique in a database).
//!
//! Invariants: triggers exist on the shadow table only between the last replay and the
//! RENAME. A trigger there would fire on every replayed change and write its effects a second
//! time (the binlog already holds them, as changes to the tables the trigger wrote). So they
//! are created under the cut-over's lock, once everything written to the original has been
//! replayed and the applier is held; the cut-over drops them again before it lets the applier
//! go when the swap did not happen, and a resumed run drops any it finds on the shadow. Each is
//! created with its own definer, sql_mode and collation, in its action order. The names are
//! checked before anything is created: they fit MySQL's 64 characters and no trigger in the
//! database has one of them yet.

use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::config::TriggerNaming;
use crate::error::{Context, Error, Result};
use crate::plan::TableNames;
use crate::server::with_sql_mode;
use crate::sql::{qualified, quote_ident};

/// The longest trigger name the servers take.
const MAX_NAME: usize = 64;

/// A trigger's name on the new table: with `--trigger-suffix` appended, or, with
/// `--remove-trigger-suffix-if-exists`, without it when the name already ends in it (so that a
/// table migrated twice goes back to its first names).
pub fn new_name(naming: &TriggerNaming, name: &str) -> String {
    match name.strip_suffix(naming.suffix.as_str()) {
        Some(stripped) if naming.remove_suffix_if_exists && !stripped.is_empty() => stripped.to_string(),
        _ => format!("{name}{}", naming.suffix),
    }
}

/// One trigger of the original table, as `information_schema.TRIGGERS` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub name: String,
    /// BEFORE or AFTER.
    pub timing: String,
    /// INSERT, UPDATE or DELETE.
    pub event: String,
    /// The body: one statement, or BEGIN ... END.
    pub statement: String,
    /// `user@host` (or a role's name).
    pub definer: String,
    pub sql_mode: String,
    pub collation_connection: String,
}

impl Trigger {
    /// The definer as a CREATE TRIGGER clause takes it: each part quoted as an identifier,
    /// which account names allow, so no string literal is built.
    fn definer_clause(&self) -> String {
        match self.definer.rsplit_once('@') {
            Some((user, host)) => format!("{}@{}", quote_ident(user), quote_ident(host)),
            None => quote_ident(&self.definer),
        }
    }
}

/// The triggers to carry to the new table, with their new names.
#[derive(Debug, Clone, Default)]
pub struct Carried {
    pub triggers: Vec<(Trigger, String)>,
}

/// The triggers on `database`.`table`, in the order they fire.
pub async fn read(conn: &mut Conn, database: &str, table: &str) -> Result<Vec<Trigger>> {
    let rows: Vec<(String, String, String, String, String, String, String)> = conn
        .exec(
            "SELECT TRIGGER_NAME, ACTION_TIMING, EVENT_MANIPULATION, ACTION_STATEMENT, DEFINER, SQL_MODE, COLLATION_CONNECTION FROM information_schema.TRIGGERS \
             WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? ORDER BY ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER",
            (database, table),
        )
        .await
        .context(|| format!("reading the triggers of {}", qualified(database, table)))?;
    Ok(rows.into_iter().map(|(name, timing, event, statement, definer, sql_mode, collation_connection)| Trigger { name, timing, event, statement, definer, sql_mode, collation_connection }).collect())
}

/// The original's triggers with their new names, refused when a name would be too long or is
/// taken in the database (by a trigger on any table).
pub async fn plan(conn: &mut Conn, names: &TableNames, naming: &TriggerNaming) -> Result<Carried> {
    let triggers = read(conn, &names.database, &names.original).await?;
    let renamed: Vec<(Trigger, String)> = triggers
        .into_iter()
        .map(|t| {
            let n = new_name(naming, &t.name);
            (t, n)
        })
        .collect();
    let too_long: Vec<&str> = renamed.iter().map(|(_, n)| n.as_str()).filter(|n| n.chars().count() > MAX_NAME).collect();
    if !too_long.is_empty() {
        return Err(Error::refused(
            format!("the new table's trigger names would be longer than {MAX_NAME} characters: {}", too_long.join(", ")),
            "use a shorter --trigger-suffix, or rename those triggers first",
        ));
    }
    let mut taken = Vec::new();
    for (_, new_name) in &renamed {
        let found: Option<String> = conn
            .exec_first("SELECT EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? AND TRIGGER_NAME = ?", (&names.database, new_name))
            .await
            .context(|| "looking for triggers with the new names".into())?;
        if let Some(table) = found {
            taken.push(format!("{new_name} (on {table})"));
        }
    }
    if !taken.is_empty() {
        return Err(Error::refused(
            format!("triggers with the new table's trigger names already exist in {}: {}", quote_ident(&names.database), taken.join(", ")),
            "use another --trigger-suffix, or drop those triggers (a run that was stopped may have left them)",
        ));
    }
    Ok(Carried { triggers: renamed })
}

impl Carried {
    pub fn is_empty(&self) -> bool {
        self.triggers.is_empty()
    }

    /// Creates the triggers on the shadow table, in their order. Only under the cut-over's
    /// lock with the applier held (see the module's invariants).
    pub async fn create_on_shadow(&self, conn: &mut Conn, names: &TableNames) -> Result<()> {
        if self.triggers.is_empty() {
            return Ok(());
        }
        for (trigger, new_name) in &self.triggers {
            let sql = format!(
                "CREATE DEFINER = {} TRIGGER {} {} {} ON {} FOR EACH ROW {}",
                trigger.definer_clause(),
                qualified(&names.database, new_name),
                trigger.timing,
                trigger.event,
                names.q(&names.shadow),
                trigger.statement
            );
            with_sql_mode(conn, &trigger.sql_mode, async |c| {
                c.exec_drop("SET SESSION collation_connection = ?", (&trigger.collation_connection,)).await.context(|| "setting the trigger's collation".into())?;
                let created = c.query_drop(&sql).await.context(|| format!("creating trigger {new_name} on {} (from {})", names.q(&names.shadow), trigger.name));
                c.query_drop("SET NAMES utf8mb4").await.context(|| "setting the session's character set back".into())?;
                created
            })
            .await?;
        }
        tracing::info!("created the original's {} trigger(s) on the new table: {}", self.triggers.len(), self.triggers.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>().join(", "));
        Ok(())
    }
}

/// Drops every trigger on the shadow table. Returns how many there were.
pub async fn drop_from_shadow(conn: &mut Conn, names: &TableNames) -> Result<usize> {
    let found: Vec<String> = conn
        .exec("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ?", (&names.database, &names.shadow))
        .await
        .context(|| format!("reading the triggers of {}", names.q(&names.shadow)))?;
    for name in &found {
        conn.query_drop(format!("DROP TRIGGER IF EXISTS {}", qualified(&names.database, name))).await.context(|| format!("dropping trigger {name} from {}", names.q(&names.shadow)))?;
    }
    if !found.is_empty() {
        tracing::info!("dropped {} trigger(s) from {} before replaying into it again: {}", found.len(), names.q(&names.shadow), found.join(", "));
    }
    Ok(found.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_take_the_suffix_or_lose_it() {
        let naming = TriggerNaming::new("_ght".into(), true).unwrap();
        assert_eq!(new_name(&naming, "t_ai"), "t_ai_ght");
        assert_eq!(new_name(&naming, "t_ai_ght"), "t_ai");
        assert_eq!(new_name(&naming, "_ght"), "_ght_ght", "a name that is only the suffix keeps it");
        assert_eq!(new_name(&TriggerNaming::new("_ght".into(), false).unwrap(), "t_ai_ght"), "t_ai_ght_ght");
    }

    #[test]
    fn definers_are_quoted_as_identifiers() {
        let trigger = |definer: &str| Trigger {
            name: "t".into(),
            timing: "AFTER".into(),
            event: "INSERT".into(),
            statement: "SET @x = 1".into(),
            definer: definer.into(),
            sql_mode: String::new(),
            collation_connection: "utf8mb4_general_ci".into(),
        };
        assert_eq!(trigger("app@10.0.%").definer_clause(), "`app`@`10.0.%`");
        assert_eq!(trigger("we`ird@x@localhost").definer_clause(), "`we``ird@x`@`localhost`");
        assert_eq!(trigger("a_role").definer_clause(), "`a_role`");
    }
}
