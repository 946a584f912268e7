//! alterego: online schema change for MySQL and MariaDB.
//!
//! The modules follow a row through the pipeline: the command line becomes a [`config::Config`];
//! [`server`] and [`inspect`] learn the server and the table and refuse what cannot be migrated;
//! [`tls`] says how every connection uses TLS;
//! [`alter`] and [`plan`] understand the ALTER; [`changelog`] and [`binlog`] follow every change
//! from a position taken before [`copy`] starts; [`apply`] replays the changes on the shadow
//! table; [`cutover`] swaps the tables (carrying the [`triggers`]); [`migration`] runs the phases in order, each with its
//! cleanup. See docs/architecture.md.

pub(crate) mod alter;
pub(crate) mod apply;
pub(crate) mod binlog;
pub(crate) mod changelog;
pub(crate) mod checkpoint;
pub(crate) mod compare;
pub mod config;
pub(crate) mod control;
pub(crate) mod copy;
pub(crate) mod cutover;
pub(crate) mod ddl;
pub mod error;
pub(crate) mod guard;
pub(crate) mod hooks;
pub(crate) mod indexes;
pub(crate) mod inspect;
pub(crate) mod limits;
pub(crate) mod metrics;
pub mod migration;
pub(crate) mod pending;
pub(crate) mod plan;
pub(crate) mod progress;
pub(crate) mod server;
pub(crate) mod sql;
pub(crate) mod state;
pub(crate) mod status;
pub(crate) mod throttle;
pub(crate) mod tls;
pub(crate) mod triggers;
pub(crate) mod verify;
