//! aigw-runtime (being written).
