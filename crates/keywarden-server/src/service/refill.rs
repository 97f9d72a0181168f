//! Credit refills at midnight UTC. Spending applies a due refill by itself, so this task only
//! keeps balances that nobody spends from current for readers; it also catches up at startup.

use keywarden_core::change::Change;
use keywarden_core::time::UnixMillis;

use super::Keywarden;

impl Keywarden {
    /// Applies every refill that fell due; returns how many balances changed.
    pub async fn refill_due_credits(&self) -> Result<usize, keywarden_core::store::StoreError> {
        let refilled = self.store.refill_due_credits(self.now()).await?;
        self.announce(refilled.iter().map(|d| Change::KeyChanged(*d)).collect())
            .await;
        Ok(refilled.len())
    }

    /// Milliseconds from now until just after the next midnight UTC.
    pub fn millis_until_next_refill(&self) -> i64 {
        let now = self.now();
        let next = now.start_of_utc_day().plus_millis(UnixMillis::MS_PER_DAY);
        // A little past midnight, so the clock has certainly crossed the boundary.
        (next.as_millis() - now.as_millis()).max(0) + 50
    }
}
