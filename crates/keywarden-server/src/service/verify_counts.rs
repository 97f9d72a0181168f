//! Verification outcomes counted for `/metrics`, by code.

use std::sync::atomic::{AtomicU64, Ordering};

use keywarden_core::verify::VerifyCode;

#[derive(Debug, Default)]
pub struct VerifyCounts {
    by_code: [AtomicU64; VerifyCode::ALL.len()],
}

impl VerifyCounts {
    pub fn count(&self, code: VerifyCode) {
        self.by_code[code as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Every code with its count, in [`VerifyCode::ALL`] order.
    pub fn snapshot(&self) -> Vec<(VerifyCode, u64)> {
        VerifyCode::ALL
            .into_iter()
            .map(|code| (code, self.by_code[code as usize].load(Ordering::Relaxed)))
            .collect()
    }
}
