//! The metadata line (`metadata` in v2, `m` in RUM v3): the wire types, their validation and
//! their mapping onto the base event that every event of the request starts from.
//!
//! RUM v3 sends a subset (labels, service, user, network) under abbreviated keys: the shared
//! objects are declared once for both protocols; cloud, system and process are v2's alone.

use crate::model::event::*;
use crate::model::json::rules::*;
use crate::model::json::{IsSet, JAny, JInt, JMap, JStr, JVec, LabelIn, Protocol, json_struct};
use crate::model::map::*;

json_struct! {
    /// The first line of a request: `{"metadata": {...}}`, in RUM v3 `{"m": {...}}`.
    pub struct MetadataRoot<'a, P>: "v2.metadataRoot" | "rumv3.metadataRoot" {
        /// What every event of the request starts from.
        metadata: Metadata<'a, P> = "metadata" | "m" / "Metadata",
    }
}

json_struct! {
    /// Metadata shared by the events of one request; an event's own context overrides it.
    pub struct Metadata<'a, P>: "v2.metadata" | "rumv3.metadata" {
        /// Labels written on every event of the request (`labels.*`, `numeric_labels.*`); the
        /// event's own labels win.
        labels: JMap<'a, LabelIn<'a>> = "labels" | "l" / "Labels",
        /// The monitored service and the agent that reports it (required).
        service: MetadataService<'a, P> = "service" | "se" / "Service",
        /// Where the service runs in a cloud (`cloud.*`; v2 only).
        cloud: MetadataCloud<'a> = "cloud" | _ / "Cloud",
        /// The host, container and Kubernetes pod (`host.*`, `container.id`, `kubernetes.*`; v2
        /// only).
        system: MetadataSystem<'a> = "system" | _ / "System",
        /// The user on whose behalf the service runs (`user.*`).
        user: User<'a, P> = "user" | "u" / "User",
        /// The network the agent is on (`network.connection.type`).
        network: Network<'a, P> = "network" | "n" / "Network",
        /// The monitored process (`process.*`; v2 only).
        process: MetadataProcess<'a> = "process" | _ / "Process",
    }
}

json_struct! {
    /// `metadata.service`: the monitored service.
    pub struct MetadataService<'a, P>: "v2.metadataService" | "rumv3.metadataService" {
        /// The agent reporting the service (`agent.*`; required).
        agent: MetadataServiceAgent<'a, P> = "agent" | "a" / "Agent",
        /// `service.environment`, e.g. `production`.
        environment: Option<JStr<'a>> = "environment" | "en" / "Environment",
        /// The application framework (`service.framework.*`).
        framework: NameVersionIn<'a, P> = "framework" | "fw" / "Framework",
        /// An immutable id of the service; accepted, not indexed (v2 only).
        id: Option<JStr<'a>> = "id" | _ / "ID",
        /// The programming language (`service.language.*`).
        language: NameVersionIn<'a, P> = "language" | "la" / "Language",
        /// `service.name` (required): letters, digits, spaces, `_` and `-`.
        name: Option<JStr<'a>> = "name" | "n" / "Name",
        /// The service instance (`service.node.name`; v2 only).
        node: ServiceNode<'a> = "node" | _ / "Node",
        /// The language runtime (`service.runtime.*`).
        runtime: NameVersionIn<'a, P> = "runtime" | "ru" / "Runtime",
        /// `service.version`, e.g. a release or commit.
        version: Option<JStr<'a>> = "version" | "ve" / "Version",
    }
}

json_struct! {
    /// `metadata.service.agent`: the APM agent (RUM v3 sends a name and a version only).
    pub struct MetadataServiceAgent<'a, P>: "v2.metadataServiceAgent" | "rumv3.nameVersion" {
        /// How the agent was started, e.g. `javaagent-flag` (`agent.activation_method`; v2 only).
        activation_method: Option<JStr<'a>> = "activation_method" | _ / "ActivationMethod",
        /// Identifies this agent's process run (`agent.ephemeral_id`; v2 only).
        ephemeral_id: Option<JStr<'a>> = "ephemeral_id" | _ / "EphemeralID",
        /// `agent.name`, e.g. `java` or `rum-js` (required); anonymous RUM access checks it.
        name: Option<JStr<'a>> = "name" | "n" / "Name",
        /// `agent.version` (required).
        version: Option<JStr<'a>> = "version" | "ve" / "Version",
    }
}

json_struct! {
    /// A name and a version: a service's framework, language or runtime.
    pub struct NameVersionIn<'a, P>: "v2.nameVersion" | "rumv3.nameVersion" {
        /// The name, e.g. `python`.
        name: Option<JStr<'a>> = "name" | "n" / "Name",
        /// The version, e.g. `3.12.1`.
        version: Option<JStr<'a>> = "version" | "ve" / "Version",
    }
}

json_struct! {
    /// `service.node`: one instance of a service.
    pub struct ServiceNode<'a>: "v2.serviceNode" {
        /// `service.node.name` as configured in the agent; without it, apmgate derives one
        /// from the container id or the host name.
        configured_name: Option<JStr<'a>> = "configured_name" / "Name",
    }
}

json_struct! {
    /// `metadata.cloud`: where the service runs in a cloud.
    pub struct MetadataCloud<'a>: "v2.metadataCloud" {
        /// The cloud account (`cloud.account.id`, `cloud.account.name`).
        account: IdName<'a> = "account" / "Account",
        /// `cloud.availability_zone`.
        availability_zone: Option<JStr<'a>> = "availability_zone" / "AvailabilityZone",
        /// The VM or instance (`cloud.instance.id`, `cloud.instance.name`).
        instance: IdName<'a> = "instance" / "Instance",
        /// The machine (`cloud.machine.type`).
        machine: CloudMachine<'a> = "machine" / "Machine",
        /// The cloud project (`cloud.project.id`, `cloud.project.name`).
        project: IdName<'a> = "project" / "Project",
        /// `cloud.provider`, e.g. `aws` (required).
        provider: Option<JStr<'a>> = "provider" / "Provider",
        /// `cloud.region`.
        region: Option<JStr<'a>> = "region" / "Region",
        /// The cloud service, e.g. `lambda` (`cloud.service.name`).
        service: NameOnly<'a> = "service" / "Service",
    }
}

json_struct! {
    /// Something a cloud identifies by an id and a name (account, instance, project).
    pub struct IdName<'a>: "v2.idName" {
        /// The provider's id of it.
        id: Option<JStr<'a>> = "id" / "ID",
        /// Its human-readable name.
        name: Option<JStr<'a>> = "name" / "Name",
    }
}

json_struct! {
    /// Something known by a name alone (a cloud service, a Kubernetes node, a queue).
    pub struct NameOnly<'a>: "v2.nameOnly" {
        /// Its name.
        name: Option<JStr<'a>> = "name" / "Name",
    }
}

json_struct! {
    /// `cloud.machine`: the instance's machine.
    pub struct CloudMachine<'a>: "v2.metadataCloudMachine" {
        /// `cloud.machine.type`, e.g. `t2.medium`.
        r#type: Option<JStr<'a>> = "type" / "Type",
    }
}

json_struct! {
    /// `metadata.system`: the host, container and pod the service runs on.
    pub struct MetadataSystem<'a>: "v2.metadataSystem" {
        /// `host.architecture`, e.g. `x86_64`.
        architecture: Option<JStr<'a>> = "architecture" / "Architecture",
        /// `host.name` as configured in the agent.
        configured_hostname: Option<JStr<'a>> = "configured_hostname" / "ConfiguredHostname",
        /// The container (`container.id`).
        container: IdOnly<'a> = "container" / "Container",
        /// `host.hostname` as the agent detected it.
        detected_hostname: Option<JStr<'a>> = "detected_hostname" / "DetectedHostname",
        /// The host name of agents older than `configured_hostname` and `detected_hostname`,
        /// used when neither is sent.
        hostname: Option<JStr<'a>> = "hostname" / "DeprecatedHostname",
        /// The Kubernetes pod (`kubernetes.*`).
        kubernetes: MetadataKubernetes<'a> = "kubernetes" / "Kubernetes",
        /// `host.os.platform`, e.g. `linux`.
        platform: Option<JStr<'a>> = "platform" / "Platform",
        /// `host.id`, as OpenTelemetry's `host.id`.
        host_id: Option<JStr<'a>> = "host_id" / "HostId",
    }
}

json_struct! {
    /// Something known by an id alone (a container, an HTTP request, a cloud account).
    pub struct IdOnly<'a>: "v2.idOnly" {
        /// Its id.
        id: Option<JStr<'a>> = "id" / "ID",
    }
}

json_struct! {
    /// `system.kubernetes`: the pod the service runs in.
    pub struct MetadataKubernetes<'a>: "v2.metadataSystemKubernetes" {
        /// `kubernetes.namespace`.
        namespace: Option<JStr<'a>> = "namespace" / "Namespace",
        /// The node (`kubernetes.node.name`).
        node: NameOnly<'a> = "node" / "Node",
        /// The pod (`kubernetes.pod.*`).
        pod: KubernetesPod<'a> = "pod" / "Pod",
    }
}

json_struct! {
    /// `kubernetes.pod`: the pod the service runs in.
    pub struct KubernetesPod<'a>: "v2.metadataSystemKubernetesPod" {
        /// `kubernetes.pod.name`.
        name: Option<JStr<'a>> = "name" / "Name",
        /// `kubernetes.pod.uid`.
        uid: Option<JStr<'a>> = "uid" / "UID",
    }
}

json_struct! {
    /// A user (in metadata or an event's context); one that is sent replaces the one before it
    /// whole.
    pub struct User<'a, P>: "v2.user" | "rumv3.user" {
        /// `user.domain`, e.g. a Windows domain.
        domain: Option<JStr<'a>> = "domain" | "ud" / "Domain",
        /// `user.id`: a string or an integer.
        id: Option<JAny> = "id" | "id" / "ID",
        /// `user.email`.
        email: Option<JStr<'a>> = "email" | "em" / "Email",
        /// `user.name`.
        username: Option<JStr<'a>> = "username" | "un" / "Name",
    }
}

json_struct! {
    /// The network the agent is on.
    pub struct Network<'a, P>: "v2.network" | "rumv3.network" {
        /// The agent's connection.
        connection: NetworkConnection<'a, P> = "connection" | "c" / "Connection",
    }
}

json_struct! {
    /// The agent's network connection.
    pub struct NetworkConnection<'a, P>: "v2.networkConnection" | "rumv3.networkConnection" {
        /// `network.connection.type`, e.g. `wifi` or `4g`.
        r#type: Option<JStr<'a>> = "type" | "t" / "Type",
    }
}

json_struct! {
    /// `metadata.process`: the monitored process.
    pub struct MetadataProcess<'a>: "v2.metadataProcess" {
        /// `process.args`: the command line.
        argv: JVec<JStr<'a>> = "argv" / "Argv",
        /// `process.title`.
        title: Option<JStr<'a>> = "title" / "Title",
        /// `process.pid` (required).
        pid: Option<JInt> = "pid" / "Pid",
        /// `process.parent.pid`.
        ppid: Option<JInt> = "ppid" / "Ppid",
    }
}

impl<P: Protocol> MetadataRoot<'_, P> {
    /// Validates metadata as APM Server does.
    pub fn validate(&self) -> VResult {
        nested(&self.metadata, Self::metadata, Metadata::validate)?;
        required(&self.metadata, Self::metadata)
    }
}

impl<P: Protocol> Metadata<'_, P> {
    fn validate(&self) -> VResult {
        labels(&self.labels.0, Self::labels)?;
        nested(&self.service, Self::service, MetadataService::validate)?;
        required(&self.service, Self::service)?;
        nested(&self.cloud, Self::cloud, validate_cloud)?;
        nested(&self.system, Self::system, validate_system)?;
        nested(&self.user, Self::user, User::validate)?;
        nested(&self.network, Self::network, |n| {
            nested(&n.connection, Network::<P>::connection, |c| {
                max_len(
                    &c.r#type,
                    KEYWORD_MAX_LENGTH,
                    NetworkConnection::<P>::r#type,
                )
            })
        })?;
        nested(&self.process, Self::process, |p| {
            max_len(&p.title, KEYWORD_MAX_LENGTH, "title")?;
            required(&p.pid, "pid")
        })
    }
}

impl<P: Protocol> MetadataService<'_, P> {
    fn validate(&self) -> VResult {
        nested(&self.agent, Self::agent, MetadataServiceAgent::validate)?;
        required(&self.agent, Self::agent)?;
        max_len(&self.environment, KEYWORD_MAX_LENGTH, Self::environment)?;
        nested(&self.framework, Self::framework, NameVersionIn::lengths)?;
        nested(&self.language, Self::language, NameVersionIn::name_required)?;
        max_len(&self.name, KEYWORD_MAX_LENGTH, Self::name)?;
        min_len1(&self.name, Self::name)?;
        alnum_ext(&self.name, Self::name)?;
        required(&self.name, Self::name)?;
        nested(&self.node, Self::node, |n| {
            max_len(&n.configured_name, KEYWORD_MAX_LENGTH, "configured_name")
        })?;
        nested(&self.runtime, Self::runtime, NameVersionIn::both_required)?;
        max_len(&self.version, KEYWORD_MAX_LENGTH, Self::version)
    }
}

impl<P: Protocol> MetadataServiceAgent<'_, P> {
    fn validate(&self) -> VResult {
        max_len(
            &self.activation_method,
            KEYWORD_MAX_LENGTH,
            Self::activation_method,
        )?;
        max_len(&self.ephemeral_id, KEYWORD_MAX_LENGTH, Self::ephemeral_id)?;
        max_len(&self.name, KEYWORD_MAX_LENGTH, Self::name)?;
        min_len1(&self.name, Self::name)?;
        required(&self.name, Self::name)?;
        max_len(&self.version, KEYWORD_MAX_LENGTH, Self::version)?;
        required(&self.version, Self::version)
    }
}

impl<P: Protocol> NameVersionIn<'_, P> {
    /// The name and the version are keywords: at most [`KEYWORD_MAX_LENGTH`] runes each.
    pub(crate) fn lengths(&self) -> VResult {
        name_version_max(&self.name, &self.version, [Self::name, Self::version])
    }

    /// As [`Self::lengths`], the name required (a service's language).
    fn name_required(&self) -> VResult {
        max_len(&self.name, KEYWORD_MAX_LENGTH, Self::name)?;
        required(&self.name, Self::name)?;
        max_len(&self.version, KEYWORD_MAX_LENGTH, Self::version)
    }

    /// As [`Self::lengths`], both required (a service's runtime).
    fn both_required(&self) -> VResult {
        max_len(&self.name, KEYWORD_MAX_LENGTH, Self::name)?;
        required(&self.name, Self::name)?;
        max_len(&self.version, KEYWORD_MAX_LENGTH, Self::version)?;
        required(&self.version, Self::version)
    }
}

impl<P: Protocol> User<'_, P> {
    pub(crate) fn validate(&self) -> VResult {
        user_fields(
            &self.domain,
            &self.id,
            &self.email,
            &self.username,
            [Self::domain, Self::id, Self::email, Self::username],
        )
    }
}

impl<'a, P> User<'a, P> {
    /// The user this object names, if any.
    pub(crate) fn to_event(&self) -> Option<crate::model::event::User<'a>> {
        user(&self.domain, &self.id, &self.email, &self.username)
    }
}

fn validate_cloud(c: &MetadataCloud<'_>) -> VResult {
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
}

fn validate_system(s: &MetadataSystem<'_>) -> VResult {
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
}

fn id_name_max(v: &IdName<'_>) -> VResult {
    max_len(&v.id, KEYWORD_MAX_LENGTH, "id")?;
    max_len(&v.name, KEYWORD_MAX_LENGTH, "name")
}

/// Maps validated metadata onto a base event.
pub fn map_metadata<'a, P>(m: &Metadata<'a, P>, out: &mut ApmEvent<'a>) {
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
    if let Some(u) = m.user.to_event() {
        out.user = Some(u);
    }
    if let Some(t) = &m.network.connection.r#type {
        out.network
            .get_or_insert_with(Default::default)
            .connection_type = t.0.clone();
    }
}

/// Sets a framework, language or runtime when either its name or its version is sent.
pub(crate) fn name_version<'a, P>(out: &mut Option<NameVersion<'a>>, v: &NameVersionIn<'a, P>) {
    crate::model::map::name_version(out, &v.name, &v.version);
}
