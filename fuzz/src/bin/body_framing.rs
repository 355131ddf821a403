//! AFL wrapper of [`apmgate_fuzz::body_framing`].

fn main() {
    afl::fuzz!(|data: &[u8]| apmgate_fuzz::body_framing(data));
}
