//! sigil-server (in progress)
