//! Quotas per writer: how much one plugin (writing as the agent `plugin:<name>`) may hold in one
//! namespace: the live key-value entries and the conversation items whose last writer it is,
//! and the bytes of their JSON. The table `writer_usage` (migration 4) keeps those counts for
//! every plugin agent, in step with every change through triggers, so a check reads one row.
//! A write checked against a quota reads it inside its own transaction, on the writer, before
//! it writes: two writes that each see room for one cannot both take it, on one process or on
//! several sharing the file (each batch is a `BEGIN IMMEDIATE` transaction).

use libsql::Connection;

use crate::StoreError;

/// What one writer may hold in a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    /// The agent the quota is for, `plugin:<name>` (only plugin agents are counted); the write
    /// records it as its writer.
    pub agent: String,
    /// Entries and items together.
    pub records: u64,
    /// Bytes of their JSON (an entry's value, an item).
    pub bytes: u64,
}

/// A write its writer's quota refused (nothing was written): what the writer would have held.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} would hold {records} records of {bytes} bytes in this namespace, over its quota of {} \
     records and {} bytes",
    quota.agent,
    quota.records,
    quota.bytes
)]
pub struct QuotaExceeded {
    pub quota: Quota,
    pub records: u64,
    pub bytes: u64,
}

/// Records and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Usage {
    pub(crate) records: u64,
    pub(crate) bytes: u64,
}

impl Quota {
    /// Whether what the writer holds, less what the write replaces, plus what it adds fits.
    pub(crate) fn admit(
        &self,
        held: Usage,
        replaced: Usage,
        added: Usage,
    ) -> Result<(), QuotaExceeded> {
        let records = held.records.saturating_sub(replaced.records) + added.records;
        let bytes = held.bytes.saturating_sub(replaced.bytes) + added.bytes;
        if records > self.records || bytes > self.bytes {
            return Err(QuotaExceeded {
                quota: self.clone(),
                records,
                bytes,
            });
        }
        Ok(())
    }
}

/// Whether a write adding `added` (and replacing `replaced`, what it overwrites of the
/// writer's own) keeps the quota's writer within it in `namespace`, at `now_ms`. The kept count
/// still holds expired entries the sweeper has not deleted yet; they no longer count, and are
/// looked up only when the count alone is over.
pub(crate) async fn check(
    c: &Connection,
    namespace: &str,
    quota: &Quota,
    replaced: Usage,
    added: Usage,
    now_ms: i64,
) -> Result<Result<(), QuotaExceeded>, StoreError> {
    let held = sum(
        c,
        "SELECT records, bytes FROM writer_usage WHERE namespace = ?1 AND agent = ?2",
        (namespace, quota.agent.as_str()),
    )
    .await?;
    if quota.admit(held, replaced, added).is_ok() {
        return Ok(Ok(()));
    }
    let expired = sum(
        c,
        "SELECT COUNT(*), COALESCE(SUM(length(CAST(value AS BLOB))), 0) FROM entries
         WHERE namespace = ?1 AND agent = ?2 AND expires_at IS NOT NULL AND expires_at <= ?3",
        (namespace, quota.agent.as_str(), now_ms),
    )
    .await?;
    let live = Usage {
        records: held.records.saturating_sub(expired.records),
        bytes: held.bytes.saturating_sub(expired.bytes),
    };
    Ok(quota.admit(live, replaced, added))
}

/// The first row's two counts (none: zero).
async fn sum(
    c: &Connection,
    sql: &str,
    params: impl libsql::params::IntoParams,
) -> Result<Usage, StoreError> {
    let mut rows = c.query(sql, params).await?;
    Ok(match rows.next().await? {
        Some(row) => Usage {
            records: u64::try_from(row.get::<i64>(0)?).unwrap_or(0),
            bytes: u64::try_from(row.get::<i64>(1)?).unwrap_or(0),
        },
        None => Usage::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_fits_if_what_it_adds_and_replaces_leaves_the_writer_within_both_bounds() {
        let quota = Quota {
            agent: "plugin:p".into(),
            records: 2,
            bytes: 100,
        };
        let usage = |records, bytes| Usage { records, bytes };
        assert_eq!(quota.admit(usage(1, 50), usage(0, 0), usage(1, 50)), Ok(()));
        let over = quota.admit(usage(2, 50), usage(0, 0), usage(1, 10));
        assert_eq!(over.map_err(|e| (e.records, e.bytes)), Err((3, 60)));
        // Replacing one of its own entries: one out, one in.
        assert_eq!(
            quota.admit(usage(2, 90), usage(1, 40), usage(1, 50)),
            Ok(())
        );
        let over = quota.admit(usage(2, 90), usage(1, 40), usage(1, 51));
        assert_eq!(over.map_err(|e| e.bytes), Err(101));
    }
}
