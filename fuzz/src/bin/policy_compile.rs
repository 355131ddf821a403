//! AFL wrapper of [`apmgate_fuzz::policy_compile`].

fn main() {
    afl::fuzz!(|data: &[u8]| apmgate_fuzz::policy_compile(data));
}
