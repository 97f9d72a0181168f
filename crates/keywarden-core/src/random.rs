//! The operating system's CSPRNG, the only source of randomness for keys and ids.

/// Fills `buf` from the OS CSPRNG.
///
/// # Panics
/// Only if the operating system cannot provide randomness at all, in which case no key could
/// be issued safely and stopping is the right answer.
pub fn fill(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}
