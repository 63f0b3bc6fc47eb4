"""Usage:
  pvc provisioner template ...
  pvc provisioner userdata ...
  pvc provisioner script ...
  pvc provisioner ova ...
  pvc provisioner profile ...
  pvc provisioner create ...
  pvc provisioner -h | --help

Commands:
  template   System, network and storage templates ('pvc provisioner template --help').
  userdata   cloud-init userdata documents ('pvc provisioner userdata --help').
  script     Install scripts ('pvc provisioner script --help').
  ova        OVA images: upload, list, remove ('pvc provisioner ova --help').
  profile    Profiles: what a VM is built from ('pvc provisioner profile --help').
  create     Build a VM from a profile ('pvc provisioner create --help').
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pvc.cli.parse import dispatch

if TYPE_CHECKING:
    from pvc.__main__ import Globals

SUBGROUPS = {
    "template": "pvc.cli.provisioner_templates",
    "userdata": "pvc.cli.provisioner_records",
    "script": "pvc.cli.provisioner_records",
    "profile": "pvc.cli.provisioner_records",
    "ova": "pvc.cli.provisioner_ova",
    "create": "pvc.cli.provisioner_create",
}


def main(args: list[str], options: Globals) -> int:
    return dispatch(__doc__, args, options, "provisioner", SUBGROUPS)
