//! gh-ost's StatsD metrics (`--statsd-addr`, `--statsd-tags`): every second, the run's progress,
//! binlog backlog, replica lag and throttle state as DogStatsD gauges under gh-ost's names
//! (`gh_ost.row_copy.rows_copied`...), so that dashboards built for gh-ost show alterego's runs.
//!
//! Invariants: metrics go out as UDP or Unix datagrams and never hold the run up (a send that
//! fails is dropped); they carry counts, times and the tags given, never a name or value from
//! the tables or a credential.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cadence::{Gauged, StatsdClient};

use crate::config::StatsdSettings;
use crate::error::{Error, Result};
use crate::state::RunState;

/// How often the gauges are sent.
const INTERVAL: Duration = Duration::from_secs(1);

/// gh-ost's namespace: metric names start with it.
const NAMESPACE: &str = "gh_ost";

/// Connects to the StatsD endpoint and sends the gauges until the run stops, and once more
/// then (the task ends within a tenth of a second of the stop: await it for the last values).
/// An address that is not `host:port` or a socket path is a usage error.
pub fn spawn(settings: &StatsdSettings, state: Arc<RunState>) -> Result<tokio::task::JoinHandle<()>> {
    let client = client(settings)?;
    Ok(tokio::spawn(async move {
        let mut next = std::time::Instant::now();
        while !state.stopping() {
            if std::time::Instant::now() >= next {
                send_gauges(&client, &state);
                next += INTERVAL;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        send_gauges(&client, &state);
    }))
}

fn client(settings: &StatsdSettings) -> Result<StatsdClient> {
    let unusable = |e: std::io::Error| Error::usage(format!("--statsd-addr {}: {e}", settings.addr), "give --statsd-addr as host:port (UDP) or the path of a Unix datagram socket");
    let mut builder = if settings.addr.starts_with('/') {
        let socket = std::os::unix::net::UnixDatagram::unbound().map_err(unusable)?;
        socket.set_nonblocking(true).map_err(unusable)?;
        StatsdClient::builder(NAMESPACE, cadence::UnixMetricSink::from(&settings.addr, socket))
    } else {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").map_err(unusable)?;
        socket.set_nonblocking(true).map_err(unusable)?;
        let sink = cadence::UdpMetricSink::from(settings.addr.as_str(), socket).map_err(|e| unusable(std::io::Error::other(e.to_string())))?;
        StatsdClient::builder(NAMESPACE, sink)
    };
    for tag in &settings.tags {
        builder = match tag.split_once(':') {
            Some((key, value)) => builder.with_tag(key, value),
            None => builder.with_tag_value(tag),
        };
    }
    Ok(builder.with_error_handler(|e| tracing::debug!("statsd: {e}")).build())
}

fn send_gauges(client: &StatsdClient, state: &RunState) {
    let count = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed) as f64;
    let throttled = state.throttle_reason().is_some();
    let gauges = [
        ("row_copy.rows_copied", count(&state.rows_copied)),
        ("row_copy.rows_estimate", count(&state.rows_estimated)),
        ("dml.events_applied", count(&state.changes_applied)),
        ("binlog.backlog_size", count(&state.backlog)),
        ("throttle.active", if throttled { 1.0 } else { 0.0 }),
    ];
    // A failed send goes to the client's error handler; the run goes on without it.
    for (name, value) in gauges {
        client.gauge_with_tags(name, value).send();
    }
    if let Some(ms) = *state.replica_lag_ms.lock().expect("lag lock") {
        client.gauge_with_tags("lag.replication_seconds", ms as f64 / 1000.0).with_tag("throttled", if throttled { "true" } else { "false" }).send();
    }
}
