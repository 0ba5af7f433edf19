//! Seeded random numbers as netem draws them: uniform `u32`s, and
//! "correlated" ones that blend each draw with the previous one
//! (`get_crandom` in sch_netem.c). [`Taus113`] is the kernel's own
//! generator, seeded as netem seeds it, so that a seeded profile makes the
//! decisions Linux's netem makes with the same seed.

/// xoshiro128++: small, fast, and the same sequence for the same seed on
/// every platform.
#[derive(Debug, Clone)]
pub struct Prng {
    s: [u32; 4],
}

impl Prng {
    pub fn new(seed: u64) -> Self {
        // SplitMix64 spreads any seed, 0 included, over the whole state.
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^ (x >> 31)
        };
        let (a, b) = (next(), next());
        Prng {
            s: [a as u32, (a >> 32) as u32, b as u32, (b >> 32) as u32],
        }
    }

    pub fn next_u32(&mut self) -> u32 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(7).wrapping_add(s[0]);
        let t = s[1] << 9;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(11);
        result
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u32) -> u32 {
        ((self.next_u32() as u64 * n as u64) >> 32) as u32
    }
}

/// The kernel's `prandom_u32_state` (L'Ecuyer's taus113), which netem
/// draws its decisions from, seeded by `seed N`, in kernels that take it.
#[derive(Debug, Clone)]
pub struct Taus113 {
    s: [u32; 4],
}

impl Taus113 {
    /// As `prandom_seed_state`: the 64-bit seed folded to 32 bits, each
    /// component raised above its minimum, no warm-up.
    pub fn from_netem_seed(seed: u64) -> Self {
        let i = ((seed >> 32) ^ (seed << 10) ^ seed) as u32;
        let floor = |x: u32, m: u32| if x < m { x + m } else { x };
        Taus113 {
            s: [floor(i, 2), floor(i, 8), floor(i, 16), floor(i, 128)],
        }
    }

    pub fn next_u32(&mut self) -> u32 {
        fn step(s: u32, a: u32, b: u32, c: u32, d: u32) -> u32 {
            ((s & c) << d) ^ (((s << a) ^ s) >> b)
        }
        let s = &mut self.s;
        s[0] = step(s[0], 6, 13, 4_294_967_294, 18);
        s[1] = step(s[1], 2, 27, 4_294_967_288, 2);
        s[2] = step(s[2], 13, 21, 4_294_967_280, 7);
        s[3] = step(s[3], 3, 12, 4_294_967_168, 13);
        s[0] ^ s[1] ^ s[2] ^ s[3]
    }
}

/// A probability as netem holds it: a fraction of `u32::MAX`.
pub fn scaled(p: f64) -> u32 {
    (p.clamp(0.0, 1.0) * u32::MAX as f64).round() as u32
}

/// netem's correlated random source: each value is
/// `(1 - rho) * fresh + rho * last`. With rho 0 it is the fresh draw.
#[derive(Debug, Clone, Default)]
pub struct Correlated {
    rho: u32,
    last: u32,
}

impl Correlated {
    /// `first` stands for the previous value before there was one (netem
    /// takes it from the kernel's unseeded entropy).
    pub fn new(correlation: f64, first: u32) -> Self {
        Correlated {
            rho: scaled(correlation),
            last: first,
        }
    }

    /// Blends a fresh uniform draw with the last value.
    pub fn blend(&mut self, fresh: u32) -> u32 {
        if self.rho == 0 {
            return fresh;
        }
        let rho = self.rho as u64 + 1;
        let answer = ((fresh as u64 * ((1u64 << 32) - rho) + self.last as u64 * rho) >> 32) as u32;
        self.last = answer;
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_other_seed_other_sequence() {
        let (mut a, mut b, mut c) = (Prng::new(7), Prng::new(7), Prng::new(8));
        let xs: Vec<u32> = (0..100).map(|_| a.next_u32()).collect();
        let ys: Vec<u32> = (0..100).map(|_| b.next_u32()).collect();
        let zs: Vec<u32> = (0..100).map(|_| c.next_u32()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn uniform_mean_is_half_range() {
        // 100k draws: the mean of U(0,1) has sd 1/sqrt(12 * 1e5) ~ 0.0009;
        // 5 sd is 0.0046.
        let mut p = Prng::new(1);
        let mean = (0..100_000)
            .map(|_| p.next_u32() as f64 / u32::MAX as f64)
            .sum::<f64>()
            / 1e5;
        assert!((mean - 0.5).abs() < 0.0046, "mean {mean}");
    }

    #[test]
    fn correlation_makes_neighbours_alike() {
        let mut p = Prng::new(3);
        let mut c = Correlated::new(0.9, p.next_u32());
        let xs: Vec<f64> = (0..20_000).map(|_| c.blend(p.next_u32()) as f64).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>();
        let cov = xs.windows(2).map(|w| (w[0] - mean) * (w[1] - mean)).sum::<f64>();
        let lag1 = cov / var;
        assert!(lag1 > 0.8, "lag-1 autocorrelation {lag1}");
    }

    #[test]
    fn taus113_matches_the_kernels_self_test() {
        // lib/random32.c's selftest: GSL's taus113 values, from the
        // selftest's LCG seeding and ten warm-up draws.
        let cases = [
            (931_557_656u32, 959u32, 2_975_593_782u32),
            (1_339_693_295, 876, 3_887_776_532),
            (1_967_883_163, 508, 10_734_624),
            (635_482_502, 779, 4_200_489_746),
        ];
        for (seed, iteration, result) in cases {
            let lcg = |x: u32| x.wrapping_mul(69069);
            let floor = |x: u32, m: u32| if x < m { x + m } else { x };
            let s1 = floor(lcg(seed), 2);
            let s2 = floor(lcg(s1), 8);
            let s3 = floor(lcg(s2), 16);
            let s4 = floor(lcg(s3), 128);
            let mut t = Taus113 { s: [s1, s2, s3, s4] };
            for _ in 0..10 + iteration - 1 {
                t.next_u32();
            }
            assert_eq!(t.next_u32(), result, "seed {seed}");
        }
    }
}
