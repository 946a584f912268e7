//! Random ALTERs that lose nothing and that alterego accepts: added, dropped, widened (integers,
//! decimals, strings, FLOAT to DOUBLE, DATE to DATETIME, more fractional digits, wider BITs) and renamed
//! columns, added and dropped indexes, a UNIQUE key that holds by construction, the primary key
//! moved to the shared unique key, and a conversion to utf8mb4.
//!
//! Invariant: each column is the subject of at most one clause (so clauses never conflict), key
//! columns are never dropped, renamed or retyped (the shared key stays), and every clause is
//! valid on the generated table; the writers are told which columns they must leave alone.

use super::schema::{quote, Column, Table};
use crate::common::workload::Rng;

pub struct Alter {
    pub clauses: Vec<String>,
    /// Columns the writers must not set: dropped or renamed.
    pub frozen: Vec<usize>,
    pub renames: bool,
}

impl Alter {
    pub fn sql(&self) -> String {
        self.clauses.join(", ")
    }
}

/// Builds clauses one by one, remembering the columns already spoken for.
struct Builder<'a> {
    table: &'a Table,
    rng: &'a mut Rng,
    alter: Alter,
    touched: Vec<usize>,
    added: usize,
    primary_moved: bool,
    converted: bool,
}

impl Builder<'_> {
    fn untouched(&self, wanted: impl Fn(&Column) -> bool) -> Vec<usize> {
        (0..self.table.columns.len()).filter(|c| !self.touched.contains(c) && wanted(&self.table.columns[*c])).collect()
    }

    fn untouched_data(&self) -> Vec<usize> {
        self.untouched(|c| c.role == super::schema::Role::Data)
    }

    /// Takes one of `candidates` for this clause, or None when there is none.
    fn take(&mut self, candidates: Vec<usize>) -> Option<usize> {
        if candidates.is_empty() {
            return None;
        }
        let column = *self.rng.pick(&candidates);
        self.touched.push(column);
        Some(column)
    }

    fn add_column(&mut self) -> Option<String> {
        self.added += 1;
        let column = Column::random_data(format!("n{}", self.added), self.rng);
        let position = match self.rng.below(5) {
            0 => " FIRST".to_string(),
            1 => {
                let after = self.take(self.untouched(|_| true))?;
                format!(" AFTER {}", quote(&self.table.columns[after].name))
            }
            _ => String::new(),
        };
        Some(format!("ADD COLUMN {}{position}", column.definition()))
    }

    fn drop_column(&mut self) -> Option<String> {
        let column = self.take(self.untouched_data())?;
        self.alter.frozen.push(column);
        Some(format!("DROP COLUMN {}", quote(&self.table.columns[column].name)))
    }

    fn widen_column(&mut self) -> Option<String> {
        let data = self.untouched_data();
        let rng = &mut *self.rng;
        let candidates: Vec<(usize, Column)> = data
            .into_iter()
            .filter_map(|c| {
                let mut column = self.table.columns[c].clone();
                match column.ty.widened(rng) {
                    // A row inserted after the swap gets the DOUBLE default, the oracle's the FLOAT one.
                    Some(wider) if column.ty.is_value_changing_widening(&wider) && column.default.is_some() => return None,
                    Some(wider) if column.nullable || rng.chance(70) => column.ty = wider,
                    _ if !column.nullable => column.nullable = true,
                    _ => return None,
                }
                Some((c, column))
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let (c, column) = self.rng.pick(&candidates).clone();
        self.touched.push(c);
        if self.table.columns[c].ty.is_value_changing_widening(&column.ty) {
            self.alter.frozen.push(c);
        }
        Some(format!("MODIFY COLUMN {}", column.definition()))
    }

    fn rename_column(&mut self) -> Option<String> {
        let c = self.take(self.untouched_data())?;
        self.alter.frozen.push(c);
        self.alter.renames = true;
        let mut column = self.table.columns[c].clone();
        let old = quote(&column.name);
        column.name += "_r";
        if self.rng.chance(50) {
            Some(format!("RENAME COLUMN {old} TO {}", quote(&column.name)))
        } else {
            Some(format!("CHANGE COLUMN {old} {}", column.definition()))
        }
    }

    fn add_index(&mut self) -> Option<String> {
        let first = self.take(self.untouched(|c| c.ty.index_part("").is_some()))?;
        let mut parts = vec![first];
        if self.rng.chance(40) {
            parts.extend(self.take(self.untouched(|c| c.ty.index_part("").is_some())));
        }
        Some(format!("ADD INDEX `a{}` ({})", self.clause_number(), self.table.index_parts(&parts)))
    }

    fn drop_index(&mut self) -> Option<String> {
        let droppable: Vec<usize> = (0..self.table.indexes.len()).filter(|&i| self.table.indexes[i].columns.iter().all(|c| !self.touched.contains(c))).collect();
        if droppable.is_empty() {
            return None;
        }
        let index = &self.table.indexes[*self.rng.pick(&droppable)];
        self.touched.extend(&index.columns);
        Some(format!("DROP INDEX {}", quote(&index.name)))
    }

    /// A UNIQUE key starting with the primary key's id-carrying column: unique by construction.
    fn add_unique(&mut self) -> Option<String> {
        let carrier = self.table.primary[0];
        let mut parts = vec![carrier];
        if self.rng.chance(50) {
            let others = self.untouched(|c| c.ty.index_part("").is_some() && !c.nullable).into_iter().filter(|&c| c != carrier).collect();
            parts.extend(self.take(others));
        }
        Some(format!("ADD UNIQUE KEY `au{}` ({})", self.clause_number(), self.table.index_parts(&parts)))
    }

    /// The primary key moves to the unique key; the old key columns keep an index for the writers.
    fn move_primary_key(&mut self) -> Option<String> {
        if self.table.unique.is_empty() || self.primary_moved {
            return None;
        }
        self.primary_moved = true;
        Some(format!("DROP PRIMARY KEY, ADD PRIMARY KEY ({}), ADD KEY `old_pk` ({})", self.table.index_parts(&self.table.unique), self.table.index_parts(&self.table.primary)))
    }

    fn convert_to_utf8mb4(&mut self) -> Option<String> {
        if self.converted || !self.table.columns.iter().any(|c| c.ty.has_narrow_charset()) {
            return None;
        }
        self.converted = true;
        Some(format!("CONVERT TO CHARACTER SET utf8mb4{}", self.rng.pick(&["", " COLLATE utf8mb4_bin", " COLLATE utf8mb4_unicode_ci"])))
    }

    fn clause_number(&self) -> usize {
        self.alter.clauses.len() + 1
    }
}

/// A random ALTER of 1 to 3 clauses for `table`.
pub fn random(table: &Table, rng: &mut Rng) -> Alter {
    let wanted = rng.between(1, 3) as usize;
    let mut builder = Builder { table, rng, alter: Alter { clauses: Vec::new(), frozen: Vec::new(), renames: false }, touched: Vec::new(), added: 0, primary_moved: false, converted: false };
    while builder.alter.clauses.len() < wanted {
        let clause = match builder.rng.below(9) {
            0 => builder.add_column(),
            1 => builder.drop_column(),
            2 => builder.widen_column(),
            3 => builder.rename_column(),
            4 => builder.add_index(),
            5 => builder.drop_index(),
            6 => builder.add_unique(),
            7 => builder.move_primary_key(),
            _ => builder.convert_to_utf8mb4(),
        };
        builder.alter.clauses.extend(clause);
    }
    builder.alter
}
