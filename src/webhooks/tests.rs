//! Delivery end to end: a real store, real HTTP receivers on 127.0.0.1, a manual clock.
