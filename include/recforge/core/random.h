// Small, fast, seedable random number generation. Every stochastic step takes a
// seed; per-thread / per-block streams are derived with DeriveSeed so that the same
// seed and thread count give the same result.
#pragma once

#include <cstdint>

namespace recforge {

// SplitMix64 finaliser: a good 64-bit mixer, used to derive independent seeds.
inline std::uint64_t Mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

inline std::uint64_t DeriveSeed(std::uint64_t seed, std::uint64_t stream) {
  return Mix64(seed ^ Mix64(stream + 0x632be59bd9b4e019ULL));
}

// xoshiro256** generator. Not thread-safe: one per thread.
class Rng {
 public:
  using result_type = std::uint64_t;
  explicit Rng(std::uint64_t seed = 42) { Seed(seed); }

  void Seed(std::uint64_t seed) {
    for (auto& word : state_) {
      seed = Mix64(seed);
      word = seed;
    }
  }
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return ~result_type{0}; }

  result_type operator()() {
    const std::uint64_t result = Rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = Rotl(state_[3], 45);
    return result;
  }
  // Uniform integer in [0, bound) without modulo bias worth caring about (Lemire).
  std::uint64_t Below(std::uint64_t bound) {
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>((*this)()) * bound) >> 64);
  }
  // Uniform double in [0, 1).
  double Uniform() { return static_cast<double>((*this)() >> 11) * 0x1.0p-53; }
  // Uniform float in [0, 1).
  float UniformFloat() { return static_cast<float>((*this)() >> 40) * 0x1.0p-24f; }

 private:
  static std::uint64_t Rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t state_[4];
};

}  // namespace recforge
