//! Unit tests of profile parsing, merging and validation.
