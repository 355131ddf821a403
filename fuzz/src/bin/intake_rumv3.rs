//! AFL wrapper of [`apmgate_fuzz::intake_rumv3`].

fn main() {
    afl::fuzz!(|data: &[u8]| apmgate_fuzz::intake_rumv3(data));
}
