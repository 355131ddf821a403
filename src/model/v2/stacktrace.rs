//! Stack trace frames of errors and spans, one declaration for v2 and RUM v3 (`st`): wire type,
//! validation and mapping.

use crate::model::json::rules::*;
use crate::model::json::{IsSet, JBool, JInt, JObject, JStr, JVec, Protocol, json_struct};
use crate::model::map::*;

json_struct! {
    /// One frame of a stack trace (of an exception, a log message or a span), innermost first.
    pub struct Frame<'a, P>: "v2.stacktraceFrame" | "rumv3.stacktraceFrame" {
        /// The frame's local variables, as the agent captured them (v2 only).
        vars: JObject = "vars" | _ / "Vars",
        /// The source file, relative to the project (RUM: the script URL).
        filename: Option<JStr<'a>> = "filename" | "f" / "Filename",
        /// The source file's absolute path; RUM source maps are looked up by it.
        abs_path: Option<JStr<'a>> = "abs_path" | "ap" / "AbsPath",
        /// The class of the method, for languages that have one (Java).
        classname: Option<JStr<'a>> = "classname" | "cn" / "Classname",
        /// The source line the frame stopped at (its context line).
        context_line: Option<JStr<'a>> = "context_line" | "cli" / "ContextLine",
        /// The function or method the frame is in.
        function: Option<JStr<'a>> = "function" | "fn" / "Function",
        /// The module or package the frame is in.
        module: Option<JStr<'a>> = "module" | "mo" / "Module",
        /// Source lines after the context line.
        post_context: JVec<JStr<'a>> = "post_context" | "poc" / "PostContext",
        /// Source lines before the context line.
        pre_context: JVec<JStr<'a>> = "pre_context" | "prc" / "PreContext",
        /// The line number of the context line.
        lineno: Option<JInt> = "lineno" | "li" / "LineNumber",
        /// The column number in that line.
        colno: Option<JInt> = "colno" | "co" / "ColumnNumber",
        /// Whether the frame is in a library rather than the application (v2 only; RUM frames
        /// are classified by `library_pattern`).
        library_frame: Option<JBool> = "library_frame" | _ / "LibraryFrame",
    }
}

/// Validates the frames of a stack trace sent under `key`: v2 wants a class name or a file name
/// in each, RUM v3 a file name.
pub(crate) fn validate_frames<P: Protocol>(frames: &[Frame<'_, P>], key: &str) -> VResult {
    each(frames, key, |f| {
        if P::RUM_V3 {
            required(&f.filename, Frame::<P>::filename)
        } else {
            any_of(
                f.classname.is_some() || f.filename.is_some(),
                &[Frame::<P>::classname, Frame::<P>::filename],
            )
        }
    })
}

/// The frames of a validated stack trace, as the event carries them. Free-form values and
/// context lines move out of the wire frames (they are not read again): a Python agent's
/// frame variables are most of an error's allocations, and cloning them doubled that.
pub(crate) fn map_frames<'a, P>(
    frames: &mut [Frame<'a, P>],
) -> Vec<crate::model::event::Frame<'a>> {
    frames
        .iter_mut()
        .map(|f| crate::model::event::Frame {
            abs_path: st(&f.abs_path),
            filename: st(&f.filename),
            classname: st(&f.classname),
            function: st(&f.function),
            module: st(&f.module),
            context_line: st(&f.context_line),
            lineno: f.lineno.map(|v| v.0 as u32),
            colno: f.colno.map(|v| v.0 as u32),
            pre_context: std::mem::take(&mut f.pre_context.0)
                .into_iter()
                .map(|s| s.0)
                .collect(),
            post_context: std::mem::take(&mut f.post_context.0)
                .into_iter()
                .map(|s| s.0)
                .collect(),
            vars: if f.vars.is_set() {
                Some(std::mem::take(&mut f.vars.0))
            } else {
                None
            },
            library_frame: f.library_frame.is_some_and(|b| b.0),
            exclude_from_grouping: false,
            original_library_frame: None,
        })
        .collect()
}
