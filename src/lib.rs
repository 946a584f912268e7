//! alterego: online schema change for MySQL and MariaDB.
//!
//! The modules follow a row through the pipeline: the command line becomes a [`config::Config`];
//! [`server`] and [`inspect`] learn the server and the table and refuse what cannot be migrated;
//! [`tls`] says how every connection uses TLS;
//! [`alter`] and [`plan`] understand the ALTER; [`changelog`] and [`binlog`] follow every change
//! from a position taken before [`copy`] starts; [`apply`] replays the changes on the shadow
//! table; [`cutover`] swaps the tables (carrying the [`triggers`]); [`migration`] runs the phases in order, each with its
//! cleanup. See docs/architecture.md.

pub mod alter;
pub mod apply;
pub mod binlog;
pub mod changelog;
pub mod checkpoint;
pub mod compare;
pub mod config;
pub mod control;
pub mod copy;
pub mod cutover;
pub mod ddl;
pub mod error;
pub mod hooks;
pub mod indexes;
pub mod inspect;
pub mod limits;
pub mod metrics;
pub mod migration;
pub mod pending;
pub mod plan;
pub mod progress;
pub mod server;
pub mod sql;
pub mod state;
pub mod status;
pub mod throttle;
pub mod tls;
pub mod triggers;
pub mod verify;
