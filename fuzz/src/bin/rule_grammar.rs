//! AFL wrapper of [`apmgate_fuzz::rule_grammar`].

fn main() {
    afl::fuzz!(|data: &[u8]| apmgate_fuzz::rule_grammar(data));
}
