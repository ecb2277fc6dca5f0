//! sigil-eval (in progress)
