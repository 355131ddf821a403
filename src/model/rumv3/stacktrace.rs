//! RUM v3 stack frames (`st`) of errors and spans: wire type, validation and mapping.

use crate::model::json::rules::*;
use crate::model::json::{JInt, JStr, JVec, json_struct};
use crate::model::map::*;

json_struct! {
    /// A RUM stack frame.
    pub struct Frame<'a>: "rumv3.stacktraceFrame" {
        /// Absolute path.
        ap: Option<JStr<'a>> = "ap" / "AbsPath",
        /// Class name.
        cn: Option<JStr<'a>> = "cn" / "Classname",
        /// Context line.
        cli: Option<JStr<'a>> = "cli" / "ContextLine",
        /// File name.
        f: Option<JStr<'a>> = "f" / "Filename",
        /// Function.
        r#fn: Option<JStr<'a>> = "fn" / "Function",
        /// Module.
        mo: Option<JStr<'a>> = "mo" / "Module",
        /// Lines after.
        poc: JVec<JStr<'a>> = "poc" / "PostContext",
        /// Lines before.
        prc: JVec<JStr<'a>> = "prc" / "PreContext",
        /// Column.
        co: Option<JInt> = "co" / "ColumnNumber",
        /// Line.
        li: Option<JInt> = "li" / "LineNumber",
    }
}

pub(super) fn validate_frames(f: &[Frame<'_>]) -> VResult {
    each(f, "st", |f| required(&f.f, "f"))
}

pub(super) fn map_frames<'a>(f: &[Frame<'a>]) -> Vec<crate::model::event::Frame<'a>> {
    f.iter()
        .map(|f| crate::model::event::Frame {
            abs_path: st(&f.ap),
            classname: st(&f.cn),
            colno: f.co.map(|v| v.0 as u32),
            context_line: st(&f.cli),
            filename: st(&f.f),
            function: st(&f.r#fn),
            lineno: f.li.map(|v| v.0 as u32),
            module: st(&f.mo),
            post_context: f.poc.iter().map(|s| s.0.clone()).collect(),
            pre_context: f.prc.iter().map(|s| s.0.clone()).collect(),
            ..Default::default()
        })
        .collect()
}
