//! AFL wrapper of [`apmgate_fuzz::otlp`].

fn main() {
    afl::fuzz!(|data: &[u8]| apmgate_fuzz::otlp(data));
}
