//! aigw-server (being written).
