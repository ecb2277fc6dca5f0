//! Criterion benchmarks for sigil; see BENCHMARKS.md.
