//! AFL wrapper of [`apmgate_fuzz::intake_v2`].

fn main() {
    afl::fuzz!(|data: &[u8]| apmgate_fuzz::intake_v2(data));
}
