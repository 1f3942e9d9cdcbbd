//! The one deterministic generator of the framework's property and fuzz
//! tests (`adapter_props.rs`, `fuzz_requests.rs`, `envelope_props.rs`):
//! xorshift64*, no dependency, the same sequence for a seed on every run.

/// xorshift64* seeded with a non-zero value.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}
