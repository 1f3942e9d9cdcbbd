//! The Gatehouse authentication service: every procedure of `api.md`.
