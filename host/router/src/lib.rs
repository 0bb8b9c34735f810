//! aigw-router (being written).
