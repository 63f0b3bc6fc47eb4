"""The API's endpoints, one module per noun; importing a module registers its endpoints."""

import importlib

MODULES = (
    "root",
    "cluster",
    "node",
    "vm",
    "tasks",
    "storage_status",
    "storage_pool",
    "storage_volume",
    "storage_snapshot",
    "storage_upload",
    "storage_osd",
    "network",
    "network_dhcp",
    "network_acl",
    "provisioner_templates",
    "provisioner_records",
    "provisioner_create",
    "provisioner_ova",
)


def load() -> None:
    for name in MODULES:
        importlib.import_module(f"pvc.api.routes.{name}")
