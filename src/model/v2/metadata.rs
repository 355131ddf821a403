//! Intake v2 `metadata`: the wire types, their validation and their mapping onto the base event
//! that every event of the request starts from.

use crate::model::event::*;
use crate::model::json::rules::*;
use crate::model::json::{IsSet, JAny, JInt, JMap, JStr, JVec, LabelIn, json_struct};
use crate::model::map::*;

json_struct! {
    /// `{"metadata": {...}}`
    pub struct MetadataRoot<'a>: "v2.metadataRoot" {
        /// The metadata.
        metadata: Metadata<'a> = "metadata" / "Metadata",
    }
}

json_struct! {
    /// Metadata shared by the events of one request.
    pub struct Metadata<'a>: "v2.metadata" {
        /// Global labels.
        labels: JMap<'a, LabelIn<'a>> = "labels" / "Labels",
        /// The monitored service.
        service: MetadataService<'a> = "service" / "Service",
        /// Cloud metadata.
        cloud: MetadataCloud<'a> = "cloud" / "Cloud",
        /// System metadata.
        system: MetadataSystem<'a> = "system" / "System",
        /// User metadata.
        user: User<'a> = "user" / "User",
        /// Network metadata.
        network: Network<'a> = "network" / "Network",
        /// Process metadata.
        process: MetadataProcess<'a> = "process" / "Process",
    }
}

json_struct! {
    /// `metadata.service`
    pub struct MetadataService<'a>: "v2.metadataService" {
        /// The agent.
        agent: MetadataServiceAgent<'a> = "agent" / "Agent",
        /// Environment.
        environment: Option<JStr<'a>> = "environment" / "Environment",
        /// Framework.
        framework: NameVersionIn<'a> = "framework" / "Framework",
        /// Unique service id (not indexed).
        id: Option<JStr<'a>> = "id" / "ID",
        /// Language.
        language: NameVersionIn<'a> = "language" / "Language",
        /// Service name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Service node.
        node: ServiceNode<'a> = "node" / "Node",
        /// Runtime.
        runtime: NameVersionIn<'a> = "runtime" / "Runtime",
        /// Service version.
        version: Option<JStr<'a>> = "version" / "Version",
    }
}

json_struct! {
    /// `metadata.service.agent`
    pub struct MetadataServiceAgent<'a>: "v2.metadataServiceAgent" {
        /// Activation method.
        activation_method: Option<JStr<'a>> = "activation_method" / "ActivationMethod",
        /// Ephemeral id.
        ephemeral_id: Option<JStr<'a>> = "ephemeral_id" / "EphemeralID",
        /// Agent name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Agent version.
        version: Option<JStr<'a>> = "version" / "Version",
    }
}

json_struct! {
    /// A name and a version (framework, language, runtime).
    pub struct NameVersionIn<'a>: "v2.nameVersion" {
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Version.
        version: Option<JStr<'a>> = "version" / "Version",
    }
}

json_struct! {
    /// `service.node`
    pub struct ServiceNode<'a>: "v2.serviceNode" {
        /// Configured node name.
        configured_name: Option<JStr<'a>> = "configured_name" / "Name",
    }
}

json_struct! {
    /// `metadata.cloud`
    pub struct MetadataCloud<'a>: "v2.metadataCloud" {
        /// Account.
        account: IdName<'a> = "account" / "Account",
        /// Availability zone.
        availability_zone: Option<JStr<'a>> = "availability_zone" / "AvailabilityZone",
        /// Instance.
        instance: IdName<'a> = "instance" / "Instance",
        /// Machine.
        machine: CloudMachine<'a> = "machine" / "Machine",
        /// Project.
        project: IdName<'a> = "project" / "Project",
        /// Provider.
        provider: Option<JStr<'a>> = "provider" / "Provider",
        /// Region.
        region: Option<JStr<'a>> = "region" / "Region",
        /// Cloud service.
        service: NameOnly<'a> = "service" / "Service",
    }
}

json_struct! {
    /// An id and a name.
    pub struct IdName<'a>: "v2.idName" {
        /// Id.
        id: Option<JStr<'a>> = "id" / "ID",
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
    }
}

json_struct! {
    /// A name.
    pub struct NameOnly<'a>: "v2.nameOnly" {
        /// Name.
        name: Option<JStr<'a>> = "name" / "Name",
    }
}

json_struct! {
    /// `cloud.machine`
    pub struct CloudMachine<'a>: "v2.metadataCloudMachine" {
        /// Machine type.
        r#type: Option<JStr<'a>> = "type" / "Type",
    }
}

json_struct! {
    /// `metadata.system`
    pub struct MetadataSystem<'a>: "v2.metadataSystem" {
        /// Architecture.
        architecture: Option<JStr<'a>> = "architecture" / "Architecture",
        /// Configured hostname.
        configured_hostname: Option<JStr<'a>> = "configured_hostname" / "ConfiguredHostname",
        /// Container.
        container: IdOnly<'a> = "container" / "Container",
        /// Detected hostname.
        detected_hostname: Option<JStr<'a>> = "detected_hostname" / "DetectedHostname",
        /// Deprecated hostname.
        hostname: Option<JStr<'a>> = "hostname" / "DeprecatedHostname",
        /// Kubernetes.
        kubernetes: MetadataKubernetes<'a> = "kubernetes" / "Kubernetes",
        /// Platform.
        platform: Option<JStr<'a>> = "platform" / "Platform",
        /// OTel host.id.
        host_id: Option<JStr<'a>> = "host_id" / "HostId",
    }
}

json_struct! {
    /// An id.
    pub struct IdOnly<'a>: "v2.idOnly" {
        /// Id.
        id: Option<JStr<'a>> = "id" / "ID",
    }
}

json_struct! {
    /// `system.kubernetes`
    pub struct MetadataKubernetes<'a>: "v2.metadataSystemKubernetes" {
        /// Namespace.
        namespace: Option<JStr<'a>> = "namespace" / "Namespace",
        /// Node.
        node: NameOnly<'a> = "node" / "Node",
        /// Pod.
        pod: KubernetesPod<'a> = "pod" / "Pod",
    }
}

json_struct! {
    /// `kubernetes.pod`
    pub struct KubernetesPod<'a>: "v2.metadataSystemKubernetesPod" {
        /// Pod name.
        name: Option<JStr<'a>> = "name" / "Name",
        /// Pod uid.
        uid: Option<JStr<'a>> = "uid" / "UID",
    }
}

json_struct! {
    /// `user` (metadata or event context)
    pub struct User<'a>: "v2.user" {
        /// Domain.
        domain: Option<JStr<'a>> = "domain" / "Domain",
        /// Id: a string or an integer.
        id: Option<JAny> = "id" / "ID",
        /// Email.
        email: Option<JStr<'a>> = "email" / "Email",
        /// User name.
        username: Option<JStr<'a>> = "username" / "Name",
    }
}

json_struct! {
    /// `network`
    pub struct Network<'a>: "v2.network" {
        /// Connection.
        connection: NetworkConnection<'a> = "connection" / "Connection",
    }
}

json_struct! {
    /// `network.connection`
    pub struct NetworkConnection<'a>: "v2.networkConnection" {
        /// Connection type.
        r#type: Option<JStr<'a>> = "type" / "Type",
    }
}

json_struct! {
    /// `metadata.process`
    pub struct MetadataProcess<'a>: "v2.metadataProcess" {
        /// Command line.
        argv: JVec<JStr<'a>> = "argv" / "Argv",
        /// Title.
        title: Option<JStr<'a>> = "title" / "Title",
        /// Process id.
        pid: Option<JInt> = "pid" / "Pid",
        /// Parent process id.
        ppid: Option<JInt> = "ppid" / "Ppid",
    }
}

/// Validates metadata as APM Server does.
pub fn validate_metadata_root(m: &MetadataRoot<'_>) -> VResult {
    nested(&m.metadata, "metadata", validate_metadata)?;
    required(&m.metadata, "metadata")
}

fn validate_metadata(m: &Metadata<'_>) -> VResult {
    labels(&m.labels.0, "labels")?;
    nested(&m.service, "service", |s| {
        nested(&s.agent, "agent", |a| {
            max_len(
                &a.activation_method,
                KEYWORD_MAX_LENGTH,
                "activation_method",
            )?;
            max_len(&a.ephemeral_id, KEYWORD_MAX_LENGTH, "ephemeral_id")?;
            max_len(&a.name, KEYWORD_MAX_LENGTH, "name")?;
            min_len1(&a.name, "name")?;
            required(&a.name, "name")?;
            max_len(&a.version, KEYWORD_MAX_LENGTH, "version")?;
            required(&a.version, "version")
        })?;
        required(&s.agent, "agent")?;
        max_len(&s.environment, KEYWORD_MAX_LENGTH, "environment")?;
        nested(&s.framework, "framework", name_version_max)?;
        nested(&s.language, "language", |l| {
            max_len(&l.name, KEYWORD_MAX_LENGTH, "name")?;
            required(&l.name, "name")?;
            max_len(&l.version, KEYWORD_MAX_LENGTH, "version")
        })?;
        max_len(&s.name, KEYWORD_MAX_LENGTH, "name")?;
        min_len1(&s.name, "name")?;
        alnum_ext(&s.name, "name")?;
        required(&s.name, "name")?;
        nested(&s.node, "node", |n| {
            max_len(&n.configured_name, KEYWORD_MAX_LENGTH, "configured_name")
        })?;
        nested(&s.runtime, "runtime", |r| {
            max_len(&r.name, KEYWORD_MAX_LENGTH, "name")?;
            required(&r.name, "name")?;
            max_len(&r.version, KEYWORD_MAX_LENGTH, "version")?;
            required(&r.version, "version")
        })?;
        max_len(&s.version, KEYWORD_MAX_LENGTH, "version")
    })?;
    required(&m.service, "service")?;
    nested(&m.cloud, "cloud", |c| {
        nested(&c.account, "account", id_name_max)?;
        max_len(
            &c.availability_zone,
            KEYWORD_MAX_LENGTH,
            "availability_zone",
        )?;
        nested(&c.instance, "instance", id_name_max)?;
        nested(&c.machine, "machine", |m| {
            max_len(&m.r#type, KEYWORD_MAX_LENGTH, "type")
        })?;
        nested(&c.project, "project", id_name_max)?;
        max_len(&c.provider, KEYWORD_MAX_LENGTH, "provider")?;
        required(&c.provider, "provider")?;
        max_len(&c.region, KEYWORD_MAX_LENGTH, "region")?;
        nested(&c.service, "service", |s| {
            max_len(&s.name, KEYWORD_MAX_LENGTH, "name")
        })
    })?;
    nested(&m.system, "system", |s| {
        max_len(&s.architecture, KEYWORD_MAX_LENGTH, "architecture")?;
        max_len(
            &s.configured_hostname,
            KEYWORD_MAX_LENGTH,
            "configured_hostname",
        )?;
        nested(&s.container, "container", |c| {
            max_len(&c.id, KEYWORD_MAX_LENGTH, "id")
        })?;
        max_len(
            &s.detected_hostname,
            KEYWORD_MAX_LENGTH,
            "detected_hostname",
        )?;
        max_len(&s.hostname, KEYWORD_MAX_LENGTH, "hostname")?;
        nested(&s.kubernetes, "kubernetes", |k| {
            max_len(&k.namespace, KEYWORD_MAX_LENGTH, "namespace")?;
            nested(&k.node, "node", |n| {
                max_len(&n.name, KEYWORD_MAX_LENGTH, "name")
            })?;
            nested(&k.pod, "pod", |p| {
                max_len(&p.name, KEYWORD_MAX_LENGTH, "name")?;
                max_len(&p.uid, KEYWORD_MAX_LENGTH, "uid")
            })
        })?;
        max_len(&s.platform, KEYWORD_MAX_LENGTH, "platform")?;
        max_len(&s.host_id, KEYWORD_MAX_LENGTH, "host_id")
    })?;
    nested(&m.user, "user", validate_user)?;
    nested(&m.network, "network", |n| {
        nested(&n.connection, "connection", |c| {
            max_len(&c.r#type, KEYWORD_MAX_LENGTH, "type")
        })
    })?;
    nested(&m.process, "process", |p| {
        max_len(&p.title, KEYWORD_MAX_LENGTH, "title")?;
        required(&p.pid, "pid")
    })
}

pub(super) fn name_version_max(v: &NameVersionIn<'_>) -> VResult {
    crate::model::json::rules::name_version_max(&v.name, &v.version, ["name", "version"])
}

fn id_name_max(v: &IdName<'_>) -> VResult {
    max_len(&v.id, KEYWORD_MAX_LENGTH, "id")?;
    max_len(&v.name, KEYWORD_MAX_LENGTH, "name")
}

pub(super) fn validate_user(u: &User<'_>) -> VResult {
    user_fields(&u.domain, &u.id, &u.email, &u.username, USER_KEYS)
}

/// The keys of a v2 user's domain, id, email and name.
const USER_KEYS: [&str; 4] = ["domain", "id", "email", "username"];

/// The user a v2 `user` object names, if any.
pub(super) fn map_user<'a>(u: &User<'a>) -> Option<crate::model::event::User<'a>> {
    user(&u.domain, &u.id, &u.email, &u.username)
}

/// Maps validated metadata onto a base event.
pub fn map_metadata<'a>(m: &Metadata<'a>, out: &mut ApmEvent<'a>) {
    let c = &m.cloud;
    if c.is_set() {
        let cloud = out.cloud.get_or_insert_with(Default::default);
        set(&mut cloud.account_id, &c.account.id);
        set(&mut cloud.account_name, &c.account.name);
        set(&mut cloud.availability_zone, &c.availability_zone);
        set(&mut cloud.instance_id, &c.instance.id);
        set(&mut cloud.instance_name, &c.instance.name);
        set(&mut cloud.machine_type, &c.machine.r#type);
        set(&mut cloud.project_id, &c.project.id);
        set(&mut cloud.project_name, &c.project.name);
        set(&mut cloud.provider, &c.provider);
        set(&mut cloud.region, &c.region);
        set(&mut cloud.service_name, &c.service.name);
    }
    global_labels(&m.labels.0, out);
    let p = &m.process;
    if p.is_set() {
        let proc_ = out.process.get_or_insert_with(Default::default);
        if !p.argv.is_empty() {
            proc_.argv = p.argv.iter().map(|s| s.0.clone()).collect();
        }
        if let Some(pid) = p.pid {
            proc_.pid = pid.0 as u32;
        }
        if let Some(ppid) = p.ppid {
            proc_.ppid = ppid.0 as u32;
        }
        set(&mut proc_.title, &p.title);
    }
    let s = &m.service;
    let a = &s.agent;
    set(&mut out.agent.activation_method, &a.activation_method);
    set(&mut out.agent.ephemeral_id, &a.ephemeral_id);
    set(&mut out.agent.name, &a.name);
    set(&mut out.agent.version, &a.version);
    set(&mut out.service.environment, &s.environment);
    name_version(&mut out.service.framework, &s.framework);
    name_version(&mut out.service.language, &s.language);
    set(&mut out.service.name, &s.name);
    set(&mut out.service.node_name, &s.node.configured_name);
    name_version(&mut out.service.runtime, &s.runtime);
    set(&mut out.service.version, &s.version);

    let sys = &m.system;
    if sys.architecture.is_some()
        || sys.configured_hostname.is_some()
        || sys.detected_hostname.is_some()
        || sys.host_id.is_some()
        || sys.hostname.is_some()
        || sys.platform.is_some()
    {
        let host = out.host.get_or_insert_with(Default::default);
        set(&mut host.architecture, &sys.architecture);
        set(&mut host.name, &sys.configured_hostname);
        set(&mut host.hostname, &sys.detected_hostname);
        set(&mut host.id, &sys.host_id);
        if sys.configured_hostname.is_none() && sys.detected_hostname.is_none() {
            set(&mut host.hostname, &sys.hostname);
        }
        set(&mut host.os_platform, &sys.platform);
    }
    set(&mut out.container_id, &sys.container.id);
    let k = &sys.kubernetes;
    if k.is_set() {
        let kube = out.kubernetes.get_or_insert_with(Default::default);
        set(&mut kube.namespace, &k.namespace);
        set(&mut kube.node_name, &k.node.name);
        set(&mut kube.pod_name, &k.pod.name);
        set(&mut kube.pod_uid, &k.pod.uid);
    }
    if let Some(u) = map_user(&m.user) {
        out.user = Some(u);
    }
    if let Some(t) = &m.network.connection.r#type {
        out.network
            .get_or_insert_with(Default::default)
            .connection_type = t.0.clone();
    }
}

pub(super) fn name_version<'a>(out: &mut Option<NameVersion<'a>>, v: &NameVersionIn<'a>) {
    crate::model::map::name_version(out, &v.name, &v.version);
}
