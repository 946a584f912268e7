//! Which keys the copy has not reached yet, and which it is copying right now: written by the
//! copy, read by the applier (to leave out or hold back changes) and kept in the run's state.
//! Its own module, below both, so neither imports the other for it.

use mysql_async::Value;

/// Which rows of a key of one integer column the copy has not reached, and which it is copying
/// right now; the applier skips changes to the first and holds changes to the second until
/// their chunk commits. Only for a key of one integer column, the one kind whose order Rust can
/// know without the server's collations.
///
/// Invariants: it is published before the applier replays anything (the applier waits for it);
/// `after` only grows, moved before each range is handed out, so a key found pending when a
/// change is skipped is read by its chunk after that change committed; a range is marked as
/// being copied before its chunk's statement starts and unmarked after the chunk commits, so a
/// change committed after the chunk's snapshot is replayed after the chunk, never under it.
#[derive(Debug, Default)]
pub struct PendingKeys {
    state: std::sync::Mutex<KeyState>,
}

/// A view of [`PendingKeys`] at one moment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyState {
    pub pending: Pending,
    /// Ranges (after, up to] whose chunks are being copied.
    copying: Vec<(Option<i128>, i128)>,
}

impl KeyState {
    /// Nothing pending, nothing being copied: every change is replayed at once.
    pub fn nothing() -> KeyState {
        KeyState { pending: Pending::Nothing, copying: Vec::new() }
    }

    /// Whether any range is being copied: if not, no change waits.
    pub fn copies_any(&self) -> bool {
        !self.copying.is_empty()
    }

    /// Whether a change to the row with this key must wait for a chunk being copied.
    pub fn is_being_copied(&self, key: &[Value]) -> bool {
        self.copying.iter().any(|&(after, up_to)| in_range(key, after, up_to))
    }
}

/// Whether a key of one integer column lies in (after, up_to].
fn in_range(key: &[Value], after: Option<i128>, up_to: i128) -> bool {
    match key {
        [value] => integer(value).is_some_and(|k| k <= up_to && after.is_none_or(|a| k > a)),
        _ => false,
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// The copy has not started: the applier must wait.
    #[default]
    Unknown,
    /// Nothing is skipped: the copy is over, or the key is not one integer column.
    Nothing,
    /// Keys with `after < key <= up_to` (`after` None: from the lowest).
    Keys { after: Option<i128>, up_to: i128 },
}

impl Pending {
    /// Whether a change to the row with this key can be skipped.
    pub fn contains(&self, key: &[Value]) -> bool {
        let Pending::Keys { after, up_to } = *self else { return false };
        in_range(key, after, up_to)
    }
}

impl PendingKeys {
    pub fn get(&self) -> KeyState {
        self.state.lock().expect("pending keys lock").clone()
    }

    pub fn set(&self, pending: Pending) {
        self.state.lock().expect("pending keys lock").pending = pending;
    }

    /// Moves the start of the pending keys to `upper` (the upper bound of a range about to be
    /// handed out); the copy is over once it reaches the top.
    pub fn hand_out(&self, upper: &[Value]) {
        let mut state = self.state.lock().expect("pending keys lock");
        if let (Pending::Keys { up_to, .. }, [value]) = (state.pending, upper) {
            state.pending = match integer(value) {
                Some(k) if k < up_to => Pending::Keys { after: Some(k), up_to },
                _ => Pending::Nothing,
            };
        }
    }

    /// Marks a range as being copied (before its chunk's statement starts).
    pub fn start_copying(&self, lower: Option<&[Value]>, upper: &[Value]) {
        if let Some(range) = integer_range(lower, upper) {
            self.state.lock().expect("pending keys lock").copying.push(range);
        }
    }

    /// Unmarks a range once its chunk has committed (or failed).
    pub fn done_copying(&self, lower: Option<&[Value]>, upper: &[Value]) {
        if let Some(range) = integer_range(lower, upper) {
            self.state.lock().expect("pending keys lock").copying.retain(|r| *r != range);
        }
    }
}

fn integer_range(lower: Option<&[Value]>, upper: &[Value]) -> Option<(Option<i128>, i128)> {
    let bound = |key: &[Value]| match key {
        [value] => integer(value),
        _ => None,
    };
    let lower = match lower {
        Some(l) => Some(bound(l)?),
        None => None,
    };
    Some((lower, bound(upper)?))
}

/// A key value as an integer, when it is one (the only kind of key whose order is known here).
pub fn integer(value: &Value) -> Option<i128> {
    match value {
        Value::Int(i) => Some(i128::from(*i)),
        Value::UInt(u) => Some(i128::from(*u)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_keys_are_those_not_handed_out() {
        let keys = PendingKeys::default();
        assert_eq!(keys.get().pending, Pending::Unknown);
        assert!(!keys.get().pending.contains(&[Value::Int(5)]));
        keys.set(Pending::Keys { after: None, up_to: 100 });
        assert!(keys.get().pending.contains(&[Value::Int(-5)]));
        assert!(keys.get().pending.contains(&[Value::UInt(100)]));
        assert!(!keys.get().pending.contains(&[Value::Int(101)]), "rows above the copy's top come only from the binlog");
        keys.hand_out(&[Value::Int(40)]);
        assert!(!keys.get().pending.contains(&[Value::Int(40)]));
        assert!(keys.get().pending.contains(&[Value::Int(41)]));
        assert!(!keys.get().pending.contains(&[Value::Bytes(b"41".to_vec())]), "only integers are compared");
        assert!(!keys.get().pending.contains(&[Value::Int(41), Value::Int(1)]), "only one-column keys");
        keys.hand_out(&[Value::Int(100)]);
        assert_eq!(keys.get().pending, Pending::Nothing);
    }

    #[test]
    fn ranges_being_copied_hold_their_changes() {
        let keys = PendingKeys::default();
        keys.start_copying(None, &[Value::Int(10)]);
        keys.start_copying(Some(&[Value::Int(20)]), &[Value::Int(30)]);
        let state = keys.get();
        assert!(state.is_being_copied(&[Value::Int(-3)]) && state.is_being_copied(&[Value::Int(10)]));
        assert!(!state.is_being_copied(&[Value::Int(15)]) && !state.is_being_copied(&[Value::Int(20)]));
        assert!(state.is_being_copied(&[Value::UInt(21)]) && state.is_being_copied(&[Value::Int(30)]));
        keys.done_copying(None, &[Value::Int(10)]);
        assert!(!keys.get().is_being_copied(&[Value::Int(5)]));
        assert!(keys.get().is_being_copied(&[Value::Int(25)]));
        keys.start_copying(None, &[Value::Bytes(b"x".to_vec())]);
        assert!(!keys.get().is_being_copied(&[Value::Bytes(b"a".to_vec())]), "only integer keys are tracked");
    }
}
