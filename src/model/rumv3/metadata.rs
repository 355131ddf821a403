//! RUM v3 metadata (`m`): the abbreviated wire types, their validation and their mapping onto
//! the base event.

use crate::model::event::*;
use crate::model::json::rules::*;
use crate::model::json::{JAny, JMap, JStr, LabelIn, json_struct};
use crate::model::map::*;

json_struct! {
    /// `{"m": {...}}`
    pub struct MetadataRoot<'a>: "rumv3.metadataRoot" {
        /// The metadata.
        m: Metadata<'a> = "m" / "Metadata",
    }
}

json_struct! {
    /// RUM metadata.
    pub struct Metadata<'a>: "rumv3.metadata" {
        /// Labels.
        l: JMap<'a, LabelIn<'a>> = "l" / "Labels",
        /// Service.
        se: MetadataService<'a> = "se" / "Service",
        /// User.
        u: User<'a> = "u" / "User",
        /// Network.
        n: Network<'a> = "n" / "Network",
    }
}

json_struct! {
    /// `m.se`
    pub struct MetadataService<'a>: "rumv3.metadataService" {
        /// Agent.
        a: NameVersion3<'a> = "a" / "Agent",
        /// Environment.
        en: Option<JStr<'a>> = "en" / "Environment",
        /// Framework.
        fw: NameVersion3<'a> = "fw" / "Framework",
        /// Language.
        la: NameVersion3<'a> = "la" / "Language",
        /// Name.
        n: Option<JStr<'a>> = "n" / "Name",
        /// Runtime.
        ru: NameVersion3<'a> = "ru" / "Runtime",
        /// Version.
        ve: Option<JStr<'a>> = "ve" / "Version",
    }
}

json_struct! {
    /// A name (`n`) and version (`ve`).
    pub struct NameVersion3<'a>: "rumv3.nameVersion" {
        /// Name.
        n: Option<JStr<'a>> = "n" / "Name",
        /// Version.
        ve: Option<JStr<'a>> = "ve" / "Version",
    }
}

json_struct! {
    /// `u`
    pub struct User<'a>: "rumv3.user" {
        /// Domain.
        ud: Option<JStr<'a>> = "ud" / "Domain",
        /// Id.
        id: Option<JAny> = "id" / "ID",
        /// Email.
        em: Option<JStr<'a>> = "em" / "Email",
        /// User name.
        un: Option<JStr<'a>> = "un" / "Name",
    }
}

json_struct! {
    /// `n`
    pub struct Network<'a>: "rumv3.network" {
        /// Connection.
        c: NetworkConnection<'a> = "c" / "Connection",
    }
}

json_struct! {
    /// `n.c`
    pub struct NetworkConnection<'a>: "rumv3.networkConnection" {
        /// Type.
        t: Option<JStr<'a>> = "t" / "Type",
    }
}

pub(super) fn nv_max(v: &NameVersion3<'_>) -> VResult {
    name_version_max(&v.n, &v.ve, ["n", "ve"])
}

pub(super) fn validate_user(u: &User<'_>) -> VResult {
    user_fields(&u.ud, &u.id, &u.em, &u.un, ["ud", "id", "em", "un"])
}

/// The user a RUM v3 `u` object names, if any.
pub(super) fn map_user<'a>(u: &User<'a>) -> Option<crate::model::event::User<'a>> {
    user(&u.ud, &u.id, &u.em, &u.un)
}

/// Validates RUM v3 metadata.
pub fn validate_metadata_root(r: &MetadataRoot<'_>) -> VResult {
    nested(&r.m, "m", |m| {
        labels(&m.l.0, "l")?;
        nested(&m.se, "se", |s| {
            nested(&s.a, "a", |a| {
                max_len(&a.n, KEYWORD_MAX_LENGTH, "n")?;
                min_len1(&a.n, "n")?;
                required(&a.n, "n")?;
                max_len(&a.ve, KEYWORD_MAX_LENGTH, "ve")?;
                required(&a.ve, "ve")
            })?;
            required(&s.a, "a")?;
            max_len(&s.en, KEYWORD_MAX_LENGTH, "en")?;
            nested(&s.fw, "fw", nv_max)?;
            nested(&s.la, "la", |l| {
                max_len(&l.n, KEYWORD_MAX_LENGTH, "n")?;
                required(&l.n, "n")?;
                max_len(&l.ve, KEYWORD_MAX_LENGTH, "ve")
            })?;
            max_len(&s.n, KEYWORD_MAX_LENGTH, "n")?;
            min_len1(&s.n, "n")?;
            alnum_ext(&s.n, "n")?;
            required(&s.n, "n")?;
            nested(&s.ru, "ru", |r| {
                max_len(&r.n, KEYWORD_MAX_LENGTH, "n")?;
                required(&r.n, "n")?;
                max_len(&r.ve, KEYWORD_MAX_LENGTH, "ve")?;
                required(&r.ve, "ve")
            })?;
            max_len(&s.ve, KEYWORD_MAX_LENGTH, "ve")
        })?;
        required(&m.se, "se")?;
        nested(&m.u, "u", validate_user)?;
        nested(&m.n, "n", |n| {
            nested(&n.c, "c", |c| max_len(&c.t, KEYWORD_MAX_LENGTH, "t"))
        })
    })?;
    required(&r.m, "m")
}

pub(super) fn nv<'a>(out: &mut Option<NameVersion<'a>>, v: &NameVersion3<'a>) {
    name_version(out, &v.n, &v.ve);
}

/// Maps validated RUM v3 metadata onto a base event.
pub fn map_metadata<'a>(m: &Metadata<'a>, out: &mut ApmEvent<'a>) {
    global_labels(&m.l.0, out);
    set(&mut out.agent.name, &m.se.a.n);
    set(&mut out.agent.version, &m.se.a.ve);
    let s = &m.se;
    set(&mut out.service.environment, &s.en);
    nv(&mut out.service.framework, &s.fw);
    nv(&mut out.service.language, &s.la);
    set(&mut out.service.name, &s.n);
    nv(&mut out.service.runtime, &s.ru);
    set(&mut out.service.version, &s.ve);
    if let Some(u) = map_user(&m.u) {
        out.user = Some(u);
    }
    if let Some(t) = &m.n.c.t {
        out.network
            .get_or_insert_with(Default::default)
            .connection_type = t.0.clone();
    }
}
