//! The values the throttle decides with that the run's state holds: the load limits of
//! `--max-load` and `--critical-load`, and the pace at which a replica replays the copy's
//! chunks. Plain values with no dependencies, so that the state can hold them and the
//! throttle and the copy read them.

use std::time::Duration;

/// `Threads_running=25,Threads_connected=500`: status variable thresholds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadLimits(pub Vec<(String, u64)>);

impl std::str::FromStr for LoadLimits {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let limits = text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| {
                let (name, value) = part.split_once('=').ok_or_else(|| format!("`{part}` is not NAME=VALUE"))?;
                let name = name.trim();
                if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || name.is_empty() {
                    return Err(format!("`{name}` is not a status variable name"));
                }
                let value = value.trim().parse::<u64>().map_err(|_| format!("`{value}` is not a whole number"))?;
                Ok((name.to_string(), value))
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        Ok(LoadLimits(limits))
    }
}

impl std::fmt::Display for LoadLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(n, v)| format!("{n}={v}")).collect();
        write!(f, "{}", parts.join(","))
    }
}

/// How fast the slowest watched replica replays the copy's chunks, learned from when each
/// chunk's commit shows up there; it caps the chunk size so that one chunk replays there in at
/// most half of `--max-lag-millis`.
///
/// A serial replica applies a chunk as one transaction, while the heartbeat behind it waits, so
/// the lag rises for as long as the chunk takes there, after the copy has already paused: with a
/// replica 3-4 times slower than the primary (its share of 2 cores, beside the writers), one
/// 0.5 s chunk carried the lag 1.2 s past the limit. The replay time of chunks is measured, not
/// assumed: a chunk committed at `c` is replayed once the replica has applied a heartbeat
/// written after `c`, and it cannot have started before `c` nor before the replica was seen past
/// the chunk before it. That window is an upper bound of the time the chunk took there, so the
/// rate is a lower bound. A slower rate is taken at once; a faster one a quarter of the way at a
/// time. A window under [`ReplayPace::RESOLUTION`] (heartbeat and check intervals) measures
/// nothing but says the replica kept up: the rate grows by a quarter, so capped chunks grow
/// back.
#[derive(Debug, Default)]
pub struct ReplayPace {
    /// Chunks committed and not yet seen on the replica: (commit time, rows), in commit order.
    unseen: std::collections::VecDeque<(Duration, u64)>,
    /// When the replica was last seen past a chunk.
    last_seen: Option<Duration>,
    /// Rows per second the replica replays chunks at, when measured.
    rows_per_sec: Option<f64>,
}

impl ReplayPace {
    /// The shortest window that measures a replay time: heartbeats and lag checks each come
    /// every 100 ms.
    pub const RESOLUTION: Duration = Duration::from_millis(400);
    /// The rate short windows raise it to at most (rows per second): beyond it, no cap.
    const FASTEST: f64 = 1e9;

    /// A chunk of `rows` rows committed at `at` (time since the Unix epoch, the heartbeat's clock).
    pub fn committed(&mut self, at: Duration, rows: u64) {
        if rows > 0 {
            self.unseen.push_back((at, rows));
        }
    }

    /// The replica has applied the heartbeat written at `applied`, as read at `now`.
    pub fn replica_at(&mut self, applied: Duration, now: Duration) {
        let mut first_commit = None;
        let mut rows = 0;
        while let Some(&(commit, chunk_rows)) = self.unseen.front().filter(|(commit, _)| *commit <= applied) {
            first_commit.get_or_insert(commit);
            rows += chunk_rows;
            self.unseen.pop_front();
        }
        let Some(first_commit) = first_commit else { return };
        let started = self.last_seen.map_or(first_commit, |seen| seen.max(first_commit));
        self.last_seen = Some(now);
        let window = now.saturating_sub(started);
        let measured = rows as f64 / window.max(Self::RESOLUTION).as_secs_f64();
        let short = window < Self::RESOLUTION;
        self.rows_per_sec = match self.rows_per_sec {
            None if short => None,
            Some(rate) if short => Some((rate * 1.25).min(Self::FASTEST)),
            Some(rate) if measured >= rate => Some(rate + (measured - rate) / 4.0),
            _ => Some(measured),
        };
    }

    /// No replica's lag could be read (or none is watched): chunks committed meanwhile would be
    /// timed across the outage, so they are not timed at all, and none pile up.
    pub fn forget_unseen(&mut self) {
        self.unseen.clear();
        self.last_seen = None;
    }

    /// Rows per second the replica replays chunks at; `None` until measured.
    pub fn rows_per_sec(&self) -> Option<f64> {
        self.rows_per_sec
    }

    /// The most rows a chunk may have so that the chunks of `workers` copying at once replay on
    /// the replica in half of `max_lag`; `None` until the replica has been measured.
    pub fn chunk_cap(&self, max_lag: Duration, workers: u64) -> Option<u64> {
        self.rows_per_sec.map(|rate| ((rate * max_lag.as_secs_f64() / 2.0) as u64 / workers.max(1)).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_capped_to_what_a_slow_replica_replays_in_half_the_max_lag() {
        let ms = Duration::from_millis;
        let mut pace = ReplayPace::default();
        assert_eq!(pace.chunk_cap(ms(1500), 1), None, "nothing measured yet");
        // 40,000-row chunks every 500 ms; the replica gets past each 1750 ms after the last.
        for i in 0..4u64 {
            pace.committed(ms(500 * (i + 1)), 40_000);
        }
        pace.replica_at(ms(600), ms(2250));
        assert_eq!(pace.chunk_cap(ms(1500), 1), Some(17_142), "40,000 rows in 1.75 s, for 0.75 s");
        assert_eq!(pace.chunk_cap(ms(1500), 2), Some(8_571), "two workers share the 0.75 s");
        pace.replica_at(ms(1100), ms(4000));
        assert_eq!(pace.chunk_cap(ms(1500), 1), Some(17_142));
        // Faster now: the rate rises a quarter of the way at a time.
        pace.replica_at(ms(2100), ms(5000));
        let cap = pace.chunk_cap(ms(1500), 1).unwrap();
        assert!(cap > 17_142 && cap < 60_000 * 3 / 4, "{cap}");
        // A replica seen past a chunk at once kept up: the cap grows by a quarter.
        pace.committed(ms(6000), 1000);
        pace.replica_at(ms(6050), ms(6100));
        assert_eq!(pace.chunk_cap(ms(1500), 1), Some(cap * 5 / 4));
        let mut fast = ReplayPace::default();
        fast.committed(ms(1000), 1000);
        fast.replica_at(ms(1050), ms(1100));
        assert_eq!(fast.chunk_cap(ms(1500), 1), None, "no cap from a window under the resolution");
        fast.replica_at(ms(9000), ms(9100));
        assert_eq!(fast.chunk_cap(ms(1500), 1), None, "no chunk seen: nothing learned");
        // Chunks committed while the lag could not be read are not timed across the outage.
        let mut outage = ReplayPace::default();
        outage.committed(ms(1000), 40_000);
        outage.forget_unseen();
        outage.replica_at(ms(5000), ms(5100));
        assert_eq!(outage.rows_per_sec(), None);
    }

    #[test]
    fn parses_load_limits() {
        let l: LoadLimits = "Threads_running=25, Threads_connected=500".parse().unwrap();
        assert_eq!(l.0, vec![("Threads_running".into(), 25), ("Threads_connected".into(), 500)]);
        assert_eq!(l.to_string(), "Threads_running=25,Threads_connected=500");
        assert!("Threads_running".parse::<LoadLimits>().is_err());
        assert!("x'y=1".parse::<LoadLimits>().is_err());
        assert!("a=-1".parse::<LoadLimits>().is_err());
        assert_eq!("".parse::<LoadLimits>().unwrap(), LoadLimits::default());
    }
}
