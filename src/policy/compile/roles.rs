//! Compiles `[role.NAME]` (privileges, inclusion, cycles) and `[allowlist.NAME]`, and resolves
//! role references of identities.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Arc;

use super::{Compiler, RoleTable};
use crate::policy::ast;
use crate::policy::compiled::*;
use crate::policy::diagnostics::Code;
use crate::policy::grammar;
use crate::policy::spanned::Sp;
use crate::policy::types::{IpSet, PrivilegeSet};

impl Compiler<'_> {
    pub(super) fn roles<'f>(&mut self, roles: &'f ast::Named<ast::Role>) -> RoleTable<'f> {
        let spans: BTreeMap<&str, Range<usize>> =
            roles.keys().map(|k| (k.as_str(), k.span.clone())).collect();
        let mut direct: BTreeMap<&str, PrivilegeSet> = BTreeMap::new();
        for (name, role) in roles {
            let mut set = PrivilegeSet::NONE;
            for p in &role.privileges {
                match grammar::parse_privilege(p) {
                    Ok(p) => set.insert(p),
                    Err(e) => self.value_error(p, Code::InvalidPrivilege, e),
                }
            }
            direct.insert(name.as_str(), set);
            for inc in &role.include {
                if !roles.contains_key(inc.as_str()) {
                    self.undefined(
                        "role",
                        inc,
                        inc.span.clone(),
                        spans.keys().copied().collect(),
                    );
                } else {
                    self.used_roles.insert(inc.value.clone());
                }
            }
        }
        // Resolve includes with cycle detection (depth-first, each cycle reported once).
        let mut resolved = BTreeMap::new();
        let mut reported: BTreeSet<String> = BTreeSet::new();
        let mut memo: HashMap<&str, PrivilegeSet> = HashMap::new();
        for name in roles.keys() {
            let mut stack = vec![name.as_str()];
            let set = self.resolve_role(
                name.as_str(),
                roles,
                &direct,
                &mut stack,
                &mut reported,
                &mut memo,
            );
            resolved.insert(name.value.clone(), set);
        }
        RoleTable { spans, resolved }
    }

    pub(super) fn resolve_role<'f>(
        &mut self,
        name: &'f str,
        roles: &'f ast::Named<ast::Role>,
        direct: &BTreeMap<&str, PrivilegeSet>,
        stack: &mut Vec<&'f str>,
        reported: &mut BTreeSet<String>,
        memo: &mut HashMap<&'f str, PrivilegeSet>,
    ) -> PrivilegeSet {
        // Each role is resolved once: without the memo, chains of roles that include several
        // others take exponential time.
        if let Some(set) = memo.get(name) {
            return *set;
        }
        let mut set = direct.get(name).copied().unwrap_or_default();
        let Some(role) = roles.get(name) else {
            return set;
        };
        for inc in &role.include {
            if let Some(pos) = stack.iter().position(|s| *s == inc.as_str()) {
                let mut cycle: Vec<&str> = stack[pos..].to_vec();
                cycle.push(inc.as_str());
                let mut key: Vec<&str> = stack[pos..].to_vec();
                key.sort_unstable();
                if reported.insert(key.join(",")) {
                    self.report(
                        Code::RoleCycle,
                        format!("roles include each other: {}", cycle.join(" -> ")),
                        inc.span.clone(),
                        "closes the cycle",
                        "role inclusion must not loop; remove one of the `include` entries",
                    );
                }
                continue;
            }
            if roles.contains_key(inc.as_str()) {
                stack.push(inc.as_str());
                let inner = self.resolve_role(inc.as_str(), roles, direct, stack, reported, memo);
                stack.pop();
                set.extend(inner);
            }
        }
        memo.insert(name, set);
        set
    }

    pub(super) fn role_refs(
        &mut self,
        list: &[Sp<String>],
        roles: &RoleTable<'_>,
    ) -> (Vec<String>, PrivilegeSet) {
        let mut names = Vec::new();
        let mut set = PrivilegeSet::NONE;
        for r in list {
            match roles.resolved.get(r.as_str()) {
                Some(p) => {
                    set.extend(*p);
                    names.push(r.value.clone());
                    self.used_roles.insert(r.value.clone());
                }
                None => self.undefined(
                    "role",
                    r,
                    r.span.clone(),
                    roles.spans.keys().copied().collect(),
                ),
            }
        }
        (names, set)
    }

    pub(super) fn allowlists(
        &mut self,
        lists: &ast::Named<ast::Allowlist>,
    ) -> BTreeMap<String, Arc<Allowlist>> {
        let mut out = BTreeMap::new();
        for (name, list) in lists {
            if list.cidrs.is_empty() {
                self.report(
                    Code::EmptyList,
                    format!("allowlist `{}` has no addresses", name.value),
                    name.span.clone(),
                    "empty",
                    "add CIDRs to `cidrs`, or remove the allowlist",
                );
            }
            let include = self.address_ranges(&list.cidrs);
            let except = self.address_ranges(&list.except);
            out.insert(
                name.value.clone(),
                Arc::new(Allowlist {
                    name: name.value.clone(),
                    set: IpSet::new(&include, &except),
                }),
            );
        }
        out
    }
}
