"""One module per nested stack, each a pure ``build() -> Template``.

``CHILD_MODULES`` is the root's list of children in dependency order: a child may consume the
Outputs of the children above it (see ``root.py``). Columns: logical id in the root, module,
file under templates/, root Condition (or None).
"""

from __future__ import annotations

from karematch_cfn.stacks import (
    appsecret,
    audit,
    bootstrap,
    database,
    foundation,
    frontend,
    iam,
    loadbalancer,
    monitoring,
    network,
    registry,
    secrets,
    security,
    service,
)

CHILD_MODULES = [
    ("FoundationStack", foundation, "foundation.yaml", None),
    ("NetworkStack", network, "network.yaml", None),
    ("SecurityGroupsStack", security, "security.yaml", None),
    ("SecretsStack", secrets, "secrets.yaml", None),
    ("DatabaseStack", database, "database.yaml", None),
    ("AppSecretStack", appsecret, "appsecret.yaml", None),
    ("IamStack", iam, "iam.yaml", None),
    ("RegistryStack", registry, "registry.yaml", None),
    ("LoadBalancerStack", loadbalancer, "loadbalancer.yaml", None),
    ("ServiceStack", service, "service.yaml", None),
    ("FrontendStack", frontend, "frontend.yaml", None),
    ("MonitoringStack", monitoring, "monitoring.yaml", None),
    ("AuditStack", audit, "audit.yaml", "AuditEnabled"),
]

# Templates rendered beside the set but not children of the root (deployed on their own).
STANDALONE_MODULES: list = [
    ("bootstrap.yaml", bootstrap),
]
