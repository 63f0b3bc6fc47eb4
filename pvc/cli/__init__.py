"""The command-line client: one module per group, each an HTTP client of the REST API.

A group module has `main(args, options) -> int`, its docopt usage as the module docstring, and
never imports kazoo, bottle or libvirt.
"""
