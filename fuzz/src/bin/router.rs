//! AFL wrapper of [`apmgate_fuzz::router`].

fn main() {
    afl::fuzz!(|data: &[u8]| apmgate_fuzz::router(data));
}
