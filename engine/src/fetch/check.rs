//! Test settings (placeholder).
