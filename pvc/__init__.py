"""pvc: a private cloud of KVM virtual machines, Ceph storage and Zookeeper coordination."""

__version__ = "0.1.0"
