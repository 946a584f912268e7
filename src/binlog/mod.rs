//! Reading the binlog as a replica: the stream (position, reconnects, MariaDB's own events) and
//! the decoding of row images.
//!
//! The reader turns every committed transaction that touches the original table into a
//! [`stream::Batch`] of [`stream::Change`]s, in binlog order, and hands it to the applier
//! through a bounded channel, so a slow applier slows the reader instead of growing memory.

pub mod decode;
pub mod gtid;
pub mod json;
pub mod mariadb;
pub mod stream;
