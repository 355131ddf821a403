//! Stack trace frames of v2 errors and spans: wire type, validation and mapping.

use crate::model::json::rules::*;
use crate::model::json::{IsSet, JBool, JInt, JObject, JStr, JVec, json_struct};
use crate::model::map::*;

json_struct! {
    /// One stack frame.
    pub struct Frame<'a>: "v2.stacktraceFrame" {
        /// Local variables.
        vars: JObject = "vars" / "Vars",
        /// File name.
        filename: Option<JStr<'a>> = "filename" / "Filename",
        /// Absolute path.
        abs_path: Option<JStr<'a>> = "abs_path" / "AbsPath",
        /// Class name.
        classname: Option<JStr<'a>> = "classname" / "Classname",
        /// Context line.
        context_line: Option<JStr<'a>> = "context_line" / "ContextLine",
        /// Function.
        function: Option<JStr<'a>> = "function" / "Function",
        /// Module.
        module: Option<JStr<'a>> = "module" / "Module",
        /// Lines after.
        post_context: JVec<JStr<'a>> = "post_context" / "PostContext",
        /// Lines before.
        pre_context: JVec<JStr<'a>> = "pre_context" / "PreContext",
        /// Line number.
        lineno: Option<JInt> = "lineno" / "LineNumber",
        /// Column number.
        colno: Option<JInt> = "colno" / "ColumnNumber",
        /// Library frame.
        library_frame: Option<JBool> = "library_frame" / "LibraryFrame",
    }
}

pub(super) fn validate_frames(frames: &[Frame<'_>]) -> VResult {
    each(frames, "stacktrace", |f| {
        any_of(
            f.classname.is_some() || f.filename.is_some(),
            "classname;filename",
        )
    })
}

pub(super) fn map_frames<'a>(frames: &[Frame<'a>]) -> Vec<crate::model::event::Frame<'a>> {
    frames
        .iter()
        .map(|f| crate::model::event::Frame {
            abs_path: st(&f.abs_path),
            filename: st(&f.filename),
            classname: st(&f.classname),
            function: st(&f.function),
            module: st(&f.module),
            context_line: st(&f.context_line),
            lineno: f.lineno.map(|v| v.0 as u32),
            colno: f.colno.map(|v| v.0 as u32),
            pre_context: f.pre_context.iter().map(|s| s.0.clone()).collect(),
            post_context: f.post_context.iter().map(|s| s.0.clone()).collect(),
            vars: if f.vars.is_set() {
                Some(f.vars.0.clone())
            } else {
                None
            },
            library_frame: f.library_frame.is_some_and(|b| b.0),
            exclude_from_grouping: false,
            original_library_frame: None,
        })
        .collect()
}
